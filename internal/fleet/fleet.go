package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/metrics"
	"github.com/ganger-dev/ganger/internal/sched"
	"github.com/ganger-dev/ganger/internal/view"
)

// Options configure a Fleet. Zero values take the defaults named.
type Options struct {
	Node    string // the ganger.owner label of this node's containers
	Log     *slog.Logger
	Metrics *metrics.Metrics // if nil, a fresh set
	// MaxSessions caps this node's containers over every daemon; 0: none.
	MaxSessions int
	Health      Health
	// Reconcile is how often each daemon is swept of what nothing owns;
	// 0: only at start-up, when a daemon rejoins, and at shutdown.
	Reconcile time.Duration
	// Keep, if set, is asked by every sweep about each container of this
	// node that the fleet does not own: true leaves it (an instance that a
	// live record owns, made by an earlier run and not adopted yet).
	Keep func(ganger.Managed) bool
	// Dynamic: daemons come and go while the fleet runs (discovery). It
	// then starts with none answering, and an image on no daemon yet is
	// not an error.
	Dynamic bool
}

// Health says how daemons are watched.
type Health struct {
	Interval time.Duration // between pings; if zero, 2s
	Timeout  time.Duration // of one ping; if zero, 2s
	Failures int           // failed pings in a row that mark a daemon down; if zero, 3
}

// Daemon is one daemon to add to the fleet.
type Daemon struct {
	Name          string
	Backend       Backend
	MaxContainers int // this node's containers there (plus other nodes')
	MaxStarts     int // creates and starts in flight; if zero, 8
}

// Image is one service's image, to be present on every daemon that runs
// the service, and the network its containers join: one of Ganger's own
// is made on each daemon when a service needs it.
type Image struct {
	Service string
	Ref     string
	Pull    ganger.PullPolicy
	Network string
}

// Fleet is the set of daemons of one node and every container it owns on
// them. Create it with New, add daemons, Start it, then Close it.
type Fleet struct {
	opt   Options
	log   *slog.Logger
	sched *sched.Scheduler
	m     *metrics.Metrics

	ctx      context.Context // the fleet's life: background work ends with it
	cancel   context.CancelFunc
	loops    sync.WaitGroup // per-daemon health and event loops, the reconciler
	work     sync.WaitGroup // create/start calls in flight
	removals sync.WaitGroup
	prep     sync.WaitGroup // ganger-init being provided

	mu      sync.Mutex
	members map[string]*member
	order   []string // names, in the order added
	owned   map[Ref]*Container
	retired []*member // removed; their backends close with the fleet
	images  []Image
	inits   map[string]ganger.Init // by digest: what daemons are given as they join
	running bool                   // Start has run: new daemons get loops at once
}

// Ref names one container: its daemon and its name there.
type Ref struct {
	Daemon string
	Name   string
}

func (r Ref) String() string { return r.Daemon + "/" + r.Name }

// New returns an empty fleet.
func New(opt Options) *Fleet {
	if opt.Health.Interval <= 0 {
		opt.Health.Interval = 2 * time.Second
	}
	if opt.Health.Timeout <= 0 {
		opt.Health.Timeout = 2 * time.Second
	}
	if opt.Health.Failures <= 0 {
		opt.Health.Failures = 3
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = metrics.New()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fleet{
		opt: opt, log: opt.Log.With("component", "fleet"), sched: sched.New(opt.MaxSessions), m: opt.Metrics,
		ctx: ctx, cancel: cancel, members: map[string]*member{}, owned: map[Ref]*Container{}, inits: map[string]ganger.Init{},
	}
}

// Node is the owner id of this node's containers.
func (f *Fleet) Node() string { return f.opt.Node }

// Metrics are the node's metrics.
func (f *Fleet) Metrics() *metrics.Metrics { return f.m }

// Sched is the scheduler the fleet places with; services register their
// limits there.
func (f *Fleet) Sched() *sched.Scheduler { return f.sched }

// Add adds a daemon, down until it joins: at once if the fleet is running
// (its health loop joins it), else at Start.
func (f *Fleet) Add(d Daemon) error {
	if d.MaxStarts <= 0 {
		d.MaxStarts = 8
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.members[d.Name]; ok {
		return fmt.Errorf("daemon %s: added twice", d.Name)
	}
	m := &member{f: f, name: d.Name, b: d.Backend, gate: newGate(d.MaxStarts), watch: map[string]*Container{}, inits: map[string]*provision{}}
	f.members[d.Name] = m
	f.order = append(f.order, d.Name)
	f.sched.AddDaemon(d.Name, d.MaxContainers)
	if f.running {
		f.startLoops(m)
	}
	return nil
}

// Remove takes a daemon out: nothing new is placed there and its loops
// stop. Containers still there stay owned: their sessions go on and end as
// their connections do, and each is removed as usual when its holder lets
// go of it; the backend is closed when the fleet is.
func (f *Fleet) Remove(name string) error {
	f.mu.Lock()
	m := f.members[name]
	if m == nil {
		f.mu.Unlock()
		return fmt.Errorf("daemon %s: %w", name, ErrNoDaemon)
	}
	delete(f.members, name)
	f.order = slices.DeleteFunc(f.order, func(n string) bool { return n == name })
	stop := m.stop // nil until Start: no loops yet
	f.mu.Unlock()
	f.sched.SetUp(name, false)
	f.sched.RemoveDaemon(name)
	if stop != nil {
		stop()
	}
	f.mu.Lock()
	f.retired = append(f.retired, m)
	f.mu.Unlock()
	f.log.Info("daemon removed", "daemon", name)
	return nil
}

// ErrNoDaemon means no daemon has the name given.
var ErrNoDaemon = errors.New("no such daemon")

func (f *Fleet) member(name string) *member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[name]
}

func (f *Fleet) memberList() []*member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.memberListLocked()
}

// memberListLocked is memberList for a caller that holds f.mu.
func (f *Fleet) memberListLocked() []*member {
	out := make([]*member, 0, len(f.order))
	for _, n := range f.order {
		out = append(out, f.members[n])
	}
	return out
}

// SetImages records the images services need now; a daemon that joins
// makes each present. See also Prepare.
func (f *Fleet) SetImages(imgs []Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images = slices.Clone(imgs)
}

func (f *Fleet) imageList() []Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.images)
}

// Start joins every daemon that answers (sweeping this node's leftovers
// there and making the images present), then starts the health loops, the
// event streams and the reconciler. It fails if no daemon answers, if two
// daemons are one engine, or if a service's image is on no daemon that
// answers.
func (f *Fleet) Start(ctx context.Context) error {
	var errs []error
	imageErrs := map[string][]error{}
	members := f.memberList()
	for _, m := range members {
		ierrs, err := m.join(ctx, "start-up")
		if errors.Is(err, errSameEngine) {
			return err
		}
		if err != nil {
			f.log.Warn("daemon not used for now; health checks will retry", "daemon", m.name, "err", err)
			errs = append(errs, err)
		}
		for svc, e := range ierrs {
			imageErrs[svc] = append(imageErrs[svc], e)
		}
	}
	switch {
	case f.opt.Dynamic && len(errs) == len(members):
		f.log.Warn("no daemon answers yet; discovered hosts will be used as they join", "listed", len(members))
	case len(errs) == len(members):
		return fmt.Errorf("no daemon answers: %w", errors.Join(errs...))
	}
	for _, img := range f.imageList() {
		if !f.opt.Dynamic && !f.imageSomewhere(img.Service) {
			return fmt.Errorf("service %s: image %s is on no daemon that answers: %w", img.Service, img.Ref, errors.Join(imageErrs[img.Service]...))
		}
	}
	f.mu.Lock()
	f.running = true
	for _, m := range members {
		if f.members[m.name] == m { // not removed while it joined
			f.startLoops(m)
		}
	}
	f.mu.Unlock()
	if f.opt.Reconcile > 0 {
		f.loops.Go(func() { tick(f.ctx, f.opt.Reconcile, f.reconcile) })
	}
	return nil
}

func (f *Fleet) imageSomewhere(service string) bool {
	for _, d := range f.sched.Daemons() {
		if d.Up && f.sched.HasImage(d.Name, service) {
			return true
		}
	}
	return false
}

// startLoops starts m's health loop and event stream. The caller holds f.mu.
func (f *Fleet) startLoops(m *member) {
	ctx, cancel := context.WithCancel(f.ctx)
	m.stop = cancel
	f.loops.Go(func() { m.healthLoop(ctx) })
	f.loops.Go(func() { m.eventLoop(ctx) })
}

// Prepare makes each image present on every daemon that is up, per its
// pull policy, and fails if one is on none. Only then does placement learn
// where each image is: a Prepare that fails changes nothing.
func (f *Fleet) Prepare(ctx context.Context, imgs []Image) error {
	type has struct {
		daemon, service string
		ok              bool
	}
	var found []has
	for _, img := range imgs {
		var errs []error
		ok := false
		for _, m := range f.memberList() {
			if !f.isUp(m.name) {
				continue
			}
			err := m.b.EnsureImage(ctx, img.Ref, img.Pull)
			if n := f.isolatedSpec(img.Network); err == nil && n.Name != "" {
				err = m.b.EnsureNetwork(ctx, n)
			}
			found = append(found, has{m.name, img.Service, err == nil})
			if err != nil {
				errs = append(errs, err)
			}
			ok = ok || err == nil
		}
		if !ok {
			return fmt.Errorf("service %s: image %s is on no daemon that answers: %w", img.Service, img.Ref, errors.Join(errs...))
		}
	}
	for _, h := range found {
		f.sched.SetImage(h.daemon, h.service, h.ok)
	}
	return nil
}

func (f *Fleet) isUp(name string) bool {
	for _, d := range f.sched.Daemons() {
		if d.Name == name {
			return d.Up
		}
	}
	return false
}

// Ready reports whether some daemon is up.
func (f *Fleet) Ready() bool {
	for _, d := range f.sched.Daemons() {
		if d.Up {
			return true
		}
	}
	return false
}

// Drain stops (on) or resumes (off) new containers on a daemon; live ones
// finish.
func (f *Fleet) Drain(name string, on bool) error { return f.DrainFor(name, DrainOperator, on) }

// Why a daemon is drained. Each holder sets and clears its own: the
// daemon takes no new container while any holds.
const (
	DrainOperator  = "operator"  // the API, ganger ctl drain
	DrainAgent     = "agent"     // its agent is stopping
	DrainLost      = "lost"      // its etcd key is gone past lost_grace
	DrainAutoscale = "autoscale" // on its way out
)

// DrainFor sets or clears one reason for a daemon to take no new
// container.
func (f *Fleet) DrainFor(name, reason string, on bool) error {
	m := f.member(name)
	if m == nil {
		return fmt.Errorf("daemon %s: %w", name, ErrNoDaemon)
	}
	m.mu.Lock()
	if m.drains == nil {
		m.drains = map[string]bool{}
	}
	if on {
		m.drains[reason] = true
	} else {
		delete(m.drains, reason)
	}
	drained := len(m.drains) > 0
	m.mu.Unlock()
	f.sched.SetDrained(name, drained)
	f.log.Info("daemon drain changed", "daemon", name, "reason", reason, "on", on, "drained", drained)
	return nil
}

// Daemons returns every daemon as an operator sees it, in the order added.
func (f *Fleet) Daemons() []view.Daemon {
	states := map[string]sched.DaemonState{}
	for _, d := range f.sched.Daemons() {
		states[d.Name] = d
	}
	var out []view.Daemon
	for _, m := range f.memberList() {
		st := states[m.name]
		e := m.engineInfo()
		held, waiting := m.gate.counts()
		out = append(out, view.Daemon{
			Name: m.name, Up: st.Up, APIVersion: e.APIVersion, EngineID: e.ID,
			Containers: st.Used, Others: st.Others, Max: st.Max, Drained: st.Drained,
			Starting: held, Waiting: waiting,
		})
	}
	return out
}

// Owned returns the references of every container this node owns now:
// starting, ready, in use, or being removed.
func (f *Fleet) Owned() []Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Keys(f.owned))
}

func (f *Fleet) owns(r Ref) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owned[r] != nil
}

// WaitRemovals waits until every removal begun has finished (or given
// up), or ctx ends.
func (f *Fleet) WaitRemovals(ctx context.Context) error {
	done := make(chan struct{})
	go func() { f.work.Wait(); f.removals.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the background work, destroys every container still owned
// but those launched to be kept (Request.Keep),
// waits for removals until ctx ends, sweeps every daemon that is up once
// more, and closes the backends. Callers stop their services first.
func (f *Fleet) Close(ctx context.Context) {
	f.mu.Lock()
	left := slices.Collect(maps.Values(f.owned))
	f.mu.Unlock()
	for _, c := range left {
		if !c.keep { // a kept container outlives this process
			c.Destroy()
		}
	}
	if err := f.WaitRemovals(ctx); err != nil {
		f.log.Error("container removal did not finish", "err", err)
	}
	f.cancel()
	f.loops.Wait()
	f.prep.Wait()
	for _, m := range f.memberList() {
		if !f.isUp(m.name) && !m.answers(ctx) { // marked down, but it may answer now
			f.log.Warn("daemon down at shutdown: its leftovers are swept at the next start", "daemon", m.name)
			continue
		}
		if _, err := f.sweep(ctx, m, "shutdown"); err != nil {
			f.log.Error("final sweep failed", "daemon", m.name, "err", err)
		}
		f.removeNetworks(ctx, m)
	}
	f.mu.Lock()
	all := append(f.retired, f.memberListLocked()...)
	f.mu.Unlock()
	for _, m := range all {
		m.b.Close()
	}
}

// removeNetworks removes this node's networks from the daemon, once none
// of its containers is left there (a container created and not started
// yet is no endpoint, and removing its network would fail its start).
func (f *Fleet) removeNetworks(ctx context.Context, m *member) {
	list, err := m.b.ListManaged(ctx, f.opt.Node)
	if err != nil || len(list) > 0 {
		return
	}
	for _, n := range ganger.IsolatedNetworks(f.opt.Node) {
		if err := m.b.RemoveNetwork(ctx, n.Name); err != nil {
			f.log.Warn("cannot remove network; the next start-up of this node reuses it", "daemon", m.name, "network", n.Name, "err", err)
		}
	}
}

// tick calls fn every interval until ctx ends.
func tick(ctx context.Context, every time.Duration, fn func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
