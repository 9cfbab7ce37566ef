package clusterd

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/cluster"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/initproto"
)

// Template is a member's file template (config.ParseClusterFile).
type Template = template.Template

// ControlPort is where each member's ganger-init listens for Ganger's
// process commands (with a token of the member's own), inside its
// container.
const ControlPort = 5481

// StopGrace is how long a member that leaves or is replaced has to stop
// after SIGTERM before it is killed: ganger-init's default shutdown_grace
// (5s) with room to spare.
const StopGrace = 10 * time.Second

// PollWait is how long a member's poll waits for a change before the
// same view goes back (under the API's write timeout).
const PollWait = 20 * time.Second

// Service is one mode: cluster service as the Manager runs it.
type Service struct {
	Name string
	// Spec is the members' template: image, network, limits, labels
	// (managed, service, owner), Init with init_config's YAML. Name,
	// Port, Publish, Env additions and Volumes are set per member.
	Spec    ganger.Spec
	Ports   []int // container ports, published for peers on other daemons
	Cluster cluster.Spec
	Files   map[string]*Template // init_config.files, by path
	// VolumePath mounts a volume per ordinal there; "" none.
	VolumePath string
	// API is the URL members reach Ganger's API at; "" is http://<the
	// gateway of the member's network>:APIPort.
	API     string
	APIPort string
	Ready   time.Duration // a member's launch budget (create and start)
}

// Env is what a Manager works with.
type Env struct {
	Fleet *fleet.Fleet
	Store Store
	Clock cluster.Clock // nil: the wall clock
	Log   *slog.Logger
}

// Errors the API maps to answers (404, 403, 400, 409).
var (
	ErrUnknown   = errors.New("no such cluster")
	ErrNoMember  = errors.New("no such member")
	ErrToken     = errors.New("this token is not the member's")
	ErrNotLive   = errors.New("the member has no running container")
	ErrBadReport = errors.New("bad report")
)

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) TimerAt(when time.Time) (<-chan time.Time, func() bool) {
	t := time.NewTimer(time.Until(when))
	return t.C, t.Stop
}

// Manager runs a node's clusters.
type Manager struct {
	env    Env
	node   string
	log    *slog.Logger
	runs   map[string]*run // fixed at NewManager
	loaded map[string]Record
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewManager returns a Manager of the services over env, for the node.
func NewManager(node string, env Env, svcs []Service) *Manager {
	if env.Clock == nil {
		env.Clock = realClock{}
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{env: env, node: node, log: env.Log.With("component", "clusters"),
		runs: map[string]*run{}, loaded: map[string]Record{}, ctx: ctx, cancel: cancel}
	for i := range svcs {
		s := &svcs[i]
		m.runs[s.Name] = &run{m: m, svc: s, log: m.log.With("cluster", s.Name),
			held: map[int]*held{}, busy: map[int64]bool{}, reports: map[int]initproto.Report{},
			notify: make(chan struct{}), wake: make(chan struct{}, 1), fails: map[int]int{}}
	}
	return m
}

// Load reads this node's records, so that Keep answers before the fleet's
// start-up sweep. Call it before the fleet starts.
func (m *Manager) Load(ctx context.Context) error {
	recs, err := m.env.Store.Clusters(ctx, m.node)
	if err != nil {
		return fmt.Errorf("clusters: %w", err)
	}
	for _, r := range recs {
		m.loaded[r.Name] = r
	}
	return nil
}

// Keep is the fleet's sweep hook: a member of a configured cluster stays
// (its cluster's loop removes what none of its members is).
func (m *Manager) Keep(c ganger.Managed) bool {
	name := c.Labels[ganger.LabelCluster]
	return name != "" && m.runs[name] != nil
}

// Start takes back the clusters of an earlier run (members whose
// containers still run adopted as they were; the others started again),
// starts the new ones, and runs every cluster's loop. Records of clusters
// no longer configured are dropped (their containers are the sweep's).
// Call it after the fleet started.
func (m *Manager) Start(ctx context.Context) error {
	for name := range m.loaded {
		if m.runs[name] == nil {
			if err := m.env.Store.DeleteCluster(ctx, m.node, name); err != nil {
				m.log.Warn("cannot drop the record of a cluster no longer configured", "cluster", name, "err", err)
			}
		}
	}
	listed := m.listAll(ctx)
	for _, name := range slices.Sorted(maps.Keys(m.runs)) {
		r := m.runs[name]
		rec, ok := m.loaded[name]
		var err error
		if ok {
			err = r.restore(ctx, rec, listed)
		} else {
			err = r.fresh(listed)
		}
		if err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
	}
	for _, r := range m.runs {
		r.pushDeps(true)
	}
	for _, r := range m.runs {
		m.wg.Go(func() { r.loop(m.ctx) })
	}
	return nil
}

// listAll lists this node's cluster members on every daemon that answers.
func (m *Manager) listAll(ctx context.Context) map[string][]ganger.Managed {
	out := map[string][]ganger.Managed{}
	for _, d := range m.env.Fleet.Daemons() {
		l, err := m.env.Fleet.Listed(ctx, d.Name)
		if err != nil {
			m.log.Warn("cannot list a daemon's containers: its cluster members are started again elsewhere", "daemon", d.Name, "err", err)
			continue
		}
		out[d.Name] = slices.DeleteFunc(l, func(c ganger.Managed) bool { return c.Labels[ganger.LabelCluster] == "" })
	}
	return out
}

// Close stops the loops; members keep running, and the next start takes
// them back.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

func (m *Manager) run(name string) (*run, error) {
	r := m.runs[name]
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	return r, nil
}

// Names are the clusters, sorted.
func (m *Manager) Names() []string { return slices.Sorted(maps.Keys(m.runs)) }

// Scale sets a cluster's size; members are added or removed one at a time.
func (m *Manager) Scale(name string, n int) error {
	r, err := m.run(name)
	if err != nil {
		return err
	}
	if err := r.c.Scale(n); err != nil {
		return err
	}
	r.log.Info("scaling", "size", n)
	r.poke()
	return nil
}

// Replace replaces a member: same ordinal, new incarnation.
func (m *Manager) Replace(name string, ordinal int) error {
	r, err := m.run(name)
	if err != nil {
		return err
	}
	if err := r.c.ReplaceMember(ordinal); err != nil {
		if errors.Is(err, cluster.ErrNoMember) {
			return fmt.Errorf("%w: %s %d", ErrNoMember, name, ordinal)
		}
		return err
	}
	r.log.Info("member replaced at an operator's request", "ordinal", ordinal)
	r.poke()
	return nil
}

// View long-polls a member's view: it answers at once when the view
// differs from (after, released), else when it does, else after PollWait
// or when ctx ends, with the view as it is.
func (m *Manager) View(ctx context.Context, name string, ordinal int, token string, after int64, released bool) (initproto.View, error) {
	r, err := m.run(name)
	if err != nil {
		return initproto.View{}, err
	}
	if err := r.auth(ordinal, token); err != nil {
		return initproto.View{}, err
	}
	t := time.NewTimer(PollWait)
	defer t.Stop()
	for {
		ch := r.changes()
		v := r.view(ordinal)
		// A member whose start Ganger has not recorded yet waits: its
		// report would come before Ganger knows it runs.
		// Nor one whose epoch is not in the store yet: a Ganger that
		// crashed then would not know the epoch members apply.
		mem, _ := r.member(ordinal)
		if mem.State != cluster.Pending && v.Epoch <= r.savedEpoch() && (v.Epoch != after || v.Release != released) {
			return v, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return v, nil
		case <-ctx.Done():
			return v, nil
		}
	}
}

// Report takes a member's report.
func (m *Manager) Report(name string, ordinal int, token string, rep initproto.Report) error {
	r, err := m.run(name)
	if err != nil {
		return err
	}
	inc, err := r.incarnation(ordinal, token)
	if err != nil {
		return err
	}
	if !slices.Contains([]string{cluster.StateWaiting, cluster.StateConfigured, cluster.StateFailed}, rep.State) {
		return fmt.Errorf("%w: state %q: want waiting, configured or failed", ErrBadReport, rep.State)
	}
	if err := r.c.MemberReported(ordinal, inc, rep); err != nil {
		return err
	}
	r.mu.Lock()
	prev := r.reports[ordinal]
	r.reports[ordinal] = rep
	r.mu.Unlock()
	if prev.State != rep.State || prev.Epoch != rep.Epoch {
		lvl := slog.LevelInfo
		if rep.State == cluster.StateFailed {
			lvl = slog.LevelWarn
		}
		r.log.Log(context.Background(), lvl, "member reported", "ordinal", ordinal, "incarnation", inc,
			"epoch", rep.Epoch, "state", rep.State, "reason", rep.Reason)
	}
	r.poke()
	return nil
}

// Control is a client of a member's ganger-init, for an operator's
// process commands (status, log, restart, signal).
func (m *Manager) Control(name string, ordinal int) (*initproto.Client, error) {
	r, err := m.run(name)
	if err != nil {
		return nil, err
	}
	mem, ok := r.member(ordinal)
	if !ok {
		return nil, fmt.Errorf("%w: %s %d", ErrNoMember, name, ordinal)
	}
	r.mu.Lock()
	h := r.held[ordinal]
	r.mu.Unlock()
	if h == nil || h.inc != mem.Incarnation || h.c.Addr() == "" {
		return nil, fmt.Errorf("%w: %s %d", ErrNotLive, name, ordinal)
	}
	return initproto.NewTCP(h.c.Addr(), r.token("control", ordinal, h.inc)), nil
}

// run is one cluster.
type run struct {
	m      *Manager
	svc    *Service
	log    *slog.Logger
	c      *cluster.Cluster
	secret []byte

	mu        sync.Mutex
	held      map[int]*held // running containers by ordinal
	busy      map[int64]bool
	reports   map[int]initproto.Report // the last of each ordinal
	notify    chan struct{}            // closed at each change
	fails     map[int]int              // failed starts in a row, by ordinal
	renderErr string
	deps      initproto.Peers // last given to dependents
	logged    int64           // the last epoch logged
	saved     int64           // the last epoch in the store: no member sees a later one
	wake      chan struct{}
}

type held struct {
	inc      int64
	c        *fleet.Container
	stopping bool
}

func (r *run) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *run) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notify
}

// fresh starts a cluster with no record: new secret, members from
// ordinal 0. Containers of an earlier cluster of that name are removed.
func (r *run) fresh(listed map[string][]ganger.Managed) error {
	r.secret = make([]byte, 32)
	rand.Read(r.secret)
	c, err := cluster.New(r.svc.Cluster, r.m.env.Clock, 0)
	if err != nil {
		return err
	}
	r.c = c
	r.removeStrays(listed, nil)
	r.log.Info("cluster starting", "size", r.svc.Cluster.Size)
	return nil
}

// restore takes a cluster back from its record.
func (r *run) restore(ctx context.Context, rec Record, listed map[string][]ganger.Managed) error {
	secret, err := hex.DecodeString(rec.Secret)
	if err != nil || len(secret) < 16 {
		return fmt.Errorf("the stored secret is unusable")
	}
	r.secret = secret
	var saved []cluster.Saved
	alive := map[string]bool{}
	leader := -1
	for _, mr := range rec.Members {
		if mr.Leader {
			leader = mr.Ordinal
		}
		st := map[string]cluster.State{"pending": cluster.Pending, "running": cluster.Running, "leaving": cluster.Leaving}[mr.State]
		s := cluster.Saved{Member: cluster.Member{Ordinal: mr.Ordinal, Incarnation: mr.Incarnation,
			Info:  cluster.Info{Daemon: mr.Daemon, Container: mr.Container, IP: mr.IP, Host: mr.Host, Ports: mr.Ports},
			State: st, Healthy: mr.Healthy, Ready: mr.Ready, Acked: mr.Acked, Pin: mr.Pin, LeaveEpoch: mr.LeaveEpoch}}
		if st != cluster.Pending {
			i := slices.IndexFunc(listed[mr.Daemon], func(c ganger.Managed) bool { return c.ID == mr.Container })
			if i >= 0 && listed[mr.Daemon][i].Running() {
				c, err := r.m.env.Fleet.Adopt(ctx, mr.Daemon, r.svc.Name, listed[mr.Daemon][i], ControlPort)
				if err == nil {
					s.Alive = true
					alive[mr.Container] = true
					r.hold(mr.Ordinal, mr.Incarnation, c)
				} else {
					r.log.Warn("cannot take a member back: it is started again", "ordinal", mr.Ordinal, "err", err)
				}
			}
		}
		saved = append(saved, s)
	}
	c, err := cluster.Restore(r.svc.Cluster, r.m.env.Clock, rec.LastInc, rec.Size, rec.Epoch, leader, saved)
	if err != nil {
		return err
	}
	r.c = c
	r.saved = rec.Epoch
	r.removeStrays(listed, alive)
	r.log.Info("cluster taken back", "epoch", rec.Epoch, "members", len(rec.Members), "alive", len(alive))
	return nil
}

// removeStrays removes this cluster's containers that are no member.
func (r *run) removeStrays(listed map[string][]ganger.Managed, keep map[string]bool) {
	for d, l := range listed {
		for _, c := range l {
			if c.Labels[ganger.LabelCluster] != r.svc.Name || keep[c.ID] {
				continue
			}
			r.log.Info("removing a container of the cluster that is no member", "daemon", d, "container", c.Name)
			if err := r.m.env.Fleet.RemoveOther(context.Background(), d, c.ID); err != nil {
				r.log.Warn("cannot remove a stray member container", "daemon", d, "container", c.Name, "err", err)
			}
		}
	}
}

// loop carries out the plan, saves the record and wakes the polls after
// each change, until ctx ends.
func (r *run) loop(ctx context.Context) {
	retry := time.NewTicker(2 * time.Second) // a start that found no daemon is tried again
	defer retry.Stop()
	for {
		r.act(ctx)
		r.changed(ctx)
		ch, stop := r.c.Timer()
		select {
		case <-ctx.Done():
			stop()
			return
		case <-r.wake:
		case <-retry.C:
		case now := <-ch:
			r.c.Tick(now)
		}
		stop()
	}
}

// changed saves the record, wakes the polls and tells dependents.
func (r *run) changed(ctx context.Context) {
	if v := r.c.View(-1); v.Epoch != r.logged {
		r.logged = v.Epoch
		leader, peers := -1, make([]string, 0, len(v.Peers))
		if v.Leader != nil {
			leader = v.Leader.Ordinal
		}
		for _, p := range v.Peers {
			peers = append(peers, fmt.Sprintf("%d/%d", p.Ordinal, p.Incarnation))
		}
		r.log.Info("epoch published", "epoch", v.Epoch, "leader", leader, "peers", strings.Join(peers, " "))
	}
	r.save(ctx)
	r.mu.Lock()
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
	r.pushDeps(false)
}

// pushDeps gives the clusters that depend on this one its members, when
// they changed (or always with force).
func (r *run) pushDeps(force bool) {
	v := r.c.View(-1)
	p := initproto.Peers{Epoch: v.Epoch, Peers: v.Peers}
	for _, mem := range r.c.Members() {
		if mem.State == cluster.Running && mem.Ready {
			p.Ready++
		}
	}
	r.mu.Lock()
	same := r.deps.Epoch == p.Epoch && r.deps.Ready == p.Ready && len(r.deps.Peers) == len(p.Peers)
	r.deps = p
	r.mu.Unlock()
	if same && !force {
		return
	}
	for _, o := range r.m.runs {
		if o.c == nil {
			continue
		}
		for _, d := range o.svc.Cluster.DependsOn {
			if d.Cluster == r.svc.Name {
				o.c.SetDep(r.svc.Name, p)
				o.poke()
			}
		}
	}
}

func (r *run) save(ctx context.Context) {
	rec := Record{Node: r.m.node, Name: r.svc.Name, Size: r.c.Target(), LastInc: r.c.LastIncarnation(),
		Epoch: r.c.Epoch(), Secret: hex.EncodeToString(r.secret), UpdatedAt: r.m.env.Clock.Now()}
	lead := -1
	if l, ok := r.c.Leader(); ok {
		lead = l.Ordinal
	}
	for _, mem := range r.c.Members() {
		rec.Members = append(rec.Members, MemberRecord{Leader: mem.Ordinal == lead, Ordinal: mem.Ordinal, Incarnation: mem.Incarnation,
			State: mem.State.String(), Daemon: mem.Daemon, Container: mem.Container, IP: mem.IP, Host: mem.Host,
			Ports: mem.Ports, Pin: mem.Pin, Ready: mem.Ready, Healthy: mem.Healthy, Acked: mem.Acked, LeaveEpoch: mem.LeaveEpoch})
	}
	if err := r.m.env.Store.SaveCluster(context.WithoutCancel(ctx), rec); err != nil {
		r.log.Error("cannot save the cluster's record: its new epoch is held back from members until it is saved", "err", err)
		return
	}
	r.mu.Lock()
	r.saved = max(r.saved, rec.Epoch)
	r.mu.Unlock()
}

func (r *run) savedEpoch() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.saved
}

// act starts what the plan asks that is not under way.
func (r *run) act(ctx context.Context) {
	var daemons []string
	for _, d := range r.m.env.Fleet.Daemons() {
		if d.Up && !d.Drained {
			daemons = append(daemons, d.Name)
		}
	}
	for _, a := range r.c.Plan(daemons) {
		if a.Kind != cluster.Stop && a.Daemon == "" {
			continue // no daemon up: tried again
		}
		r.mu.Lock()
		if r.busy[a.Incarnation] {
			r.mu.Unlock()
			continue
		}
		r.busy[a.Incarnation] = true
		r.mu.Unlock()
		r.m.wg.Go(func() {
			defer func() {
				r.mu.Lock()
				delete(r.busy, a.Incarnation)
				r.mu.Unlock()
				r.poke()
			}()
			if a.Kind == cluster.Stop {
				r.stop(ctx, a)
			} else {
				r.start(ctx, a)
			}
		})
	}
}

// start removes the container a replacement replaces, then launches the
// member on its daemon.
func (r *run) start(ctx context.Context, a cluster.Action) {
	if a.Old != nil {
		r.removeOld(ctx, a.Ordinal, *a.Old)
	}
	r.mu.Lock()
	fails := r.fails[a.Ordinal]
	r.mu.Unlock()
	if fails > 0 { // a start that keeps failing (a bad image, say) is paced
		d := min(time.Second<<min(fails-1, 5), 30*time.Second)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
	c, info, err := r.launch(ctx, a)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.fails[a.Ordinal]++
		r.mu.Unlock()
		r.log.Warn("member failed to start: started again", "ordinal", a.Ordinal, "incarnation", a.Incarnation, "daemon", a.Daemon, "err", err)
		r.c.MemberDied(a.Ordinal, a.Incarnation)
		return
	}
	if err := r.c.MemberStarted(a.Ordinal, a.Incarnation, info); err != nil {
		r.log.Warn("a started member is no longer wanted", "ordinal", a.Ordinal, "err", err)
		c.Destroy()
		return
	}
	r.mu.Lock()
	r.fails[a.Ordinal] = 0
	delete(r.reports, a.Ordinal) // the last incarnation's
	r.mu.Unlock()
	r.hold(a.Ordinal, a.Incarnation, c)
	r.log.Info("member started", "ordinal", a.Ordinal, "incarnation", a.Incarnation, "daemon", info.Daemon, "ip", info.IP)
}

// hold watches a member's container: its death is the member's.
func (r *run) hold(ordinal int, inc int64, c *fleet.Container) {
	h := &held{inc: inc, c: c}
	r.mu.Lock()
	r.held[ordinal] = h
	r.mu.Unlock()
	context.AfterFunc(c.Life(), func() {
		r.mu.Lock()
		stopping := h.stopping
		if r.held[ordinal] == h {
			delete(r.held, ordinal)
		}
		r.mu.Unlock()
		if stopping {
			return
		}
		if r.m.ctx.Err() != nil {
			return // Ganger stops: the container was left, not lost
		}
		r.log.Warn("member died: started again", "ordinal", ordinal, "incarnation", inc, "exit", c.Exit())
		c.Destroy()
		if err := r.c.MemberDied(ordinal, inc); err == nil {
			r.poke()
		}
	})
}

// stop removes a member that leaves, then drops its ordinal.
func (r *run) stop(ctx context.Context, a cluster.Action) {
	r.removeOld(ctx, a.Ordinal, cluster.Old{Incarnation: a.Incarnation, Daemon: a.Daemon, Container: a.Container})
	if err := r.c.MemberDied(a.Ordinal, a.Incarnation); err == nil {
		r.log.Info("member stopped: the cluster is smaller", "ordinal", a.Ordinal, "incarnation", a.Incarnation)
	}
}

// removeOld removes a member's container and waits until it is gone.
func (r *run) removeOld(ctx context.Context, ordinal int, old cluster.Old) {
	r.mu.Lock()
	h := r.held[ordinal]
	if h != nil && h.inc == old.Incarnation {
		h.stopping = true
	} else {
		h = nil
	}
	r.mu.Unlock()
	if h != nil {
		// Stopped first, as its processes expect (ganger-init stops them
		// in order, each with its grace), then removed.
		if err := h.c.Stop(ctx, StopGrace); err != nil {
			r.log.Warn("cannot stop a member gracefully: it is removed", "ordinal", ordinal, "err", err)
		}
		h.c.Destroy()
		select {
		case <-h.c.Gone():
		case <-ctx.Done():
		}
		return
	}
	if old.Container != "" {
		if err := r.m.env.Fleet.RemoveOther(ctx, old.Daemon, old.Container); err != nil {
			r.log.Warn("cannot remove a replaced member's container", "ordinal", ordinal, "container", old.Container, "err", err)
		}
	}
}

// launch creates and starts a member's container on its daemon.
func (r *run) launch(ctx context.Context, a cluster.Action) (*fleet.Container, cluster.Info, error) {
	svc := r.svc
	spec := svc.Spec
	// The node in the names: two nodes may run clusters of one name on a
	// daemon.
	spec.Name = fmt.Sprintf("ganger-%s-%s-%d-%d", r.m.node, svc.Name, a.Ordinal, a.Incarnation)
	spec.Labels = maps.Clone(svc.Spec.Labels)
	spec.Labels[ganger.LabelCluster] = svc.Name
	spec.Labels[ganger.LabelOrdinal] = strconv.Itoa(a.Ordinal)
	spec.Labels[ganger.LabelIncarnation] = strconv.FormatInt(a.Incarnation, 10)
	spec.Port, spec.Publish = ControlPort, slices.Clone(svc.Ports)
	api := svc.API
	if api == "" {
		gw, err := r.m.env.Fleet.NetworkGateway(ctx, a.Daemon, spec.Network)
		if err != nil {
			return nil, cluster.Info{}, fmt.Errorf("the API's address for members: %w", err)
		}
		api = "http://" + gw + ":" + svc.APIPort
	}
	spec.Env = append(slices.Clone(svc.Spec.Env),
		"GANGER_CLUSTER_API="+api, "GANGER_CLUSTER="+svc.Name, "GANGER_ORDINAL="+strconv.Itoa(a.Ordinal),
		"GANGER_CLUSTER_TOKEN="+r.token("member", a.Ordinal, a.Incarnation))
	cfg, err := withControl(svc.Spec.Init.Config, r.token("control", a.Ordinal, a.Incarnation))
	if err != nil {
		return nil, cluster.Info{}, err
	}
	spec.Init.Config = cfg
	if svc.VolumePath != "" {
		spec.Volumes = []ganger.Volume{{Name: VolumeName(r.m.node, svc.Name, a.Ordinal), Target: svc.VolumePath,
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: r.m.node,
				ganger.LabelCluster: svc.Name, ganger.LabelOrdinal: strconv.Itoa(a.Ordinal)}}}
	}
	c, err := r.m.env.Fleet.Launch(ctx, fleet.Request{Service: svc.Name, Spec: spec, Daemon: a.Daemon,
		NoReady: true, Keep: true, ReadyTimeout: svc.Ready, Log: r.log})
	if err != nil {
		return nil, cluster.Info{}, err
	}
	info := cluster.Info{Daemon: c.Daemon(), Container: c.ID(), Host: c.Host()}
	ni, err := c.NetInfo(ctx)
	if err != nil {
		c.Destroy()
		return nil, cluster.Info{}, err
	}
	info.IP = ni.IP
	if len(svc.Ports) > 0 {
		pub, err := c.Published(ctx)
		if err != nil {
			c.Destroy()
			return nil, cluster.Info{}, err
		}
		info.Ports = map[string]int{}
		for _, p := range svc.Ports {
			info.Ports[strconv.Itoa(p)] = pub[p]
		}
	}
	return c, info, nil
}

// VolumeName is the volume of a cluster member's ordinal (volumes:
// per_ordinal).
func VolumeName(node, cluster string, ordinal int) string {
	return fmt.Sprintf("ganger-%s-%s-%d", node, cluster, ordinal)
}

// withControl sets ganger-init's TCP control in its config: Ganger's
// process commands reach the member there, with its token.
func withControl(config, token string) (string, error) {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(config), &doc); err != nil {
		return "", fmt.Errorf("init_config: %w", err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	doc["control"] = map[string]any{"listen": ":" + strconv.Itoa(ControlPort), "token": token}
	b, err := yaml.Marshal(doc)
	return string(b), err
}

// token is the member's token of a kind ("member" for its view and
// reports, "control" for its ganger-init's control).
func (r *run) token(kind string, ordinal int, inc int64) string {
	h := hmac.New(sha256.New, r.secret)
	fmt.Fprintf(h, "%s/%s/%d/%d", kind, r.svc.Name, ordinal, inc)
	return hex.EncodeToString(h.Sum(nil))
}

// incarnation checks token against the member holding ordinal and
// returns its incarnation.
func (r *run) incarnation(ordinal int, token string) (int64, error) {
	mem, ok := r.member(ordinal)
	if !ok {
		return 0, fmt.Errorf("%w: %s %d", ErrNoMember, r.svc.Name, ordinal)
	}
	want := r.token("member", ordinal, mem.Incarnation)
	if subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		return 0, ErrToken
	}
	return mem.Incarnation, nil
}

func (r *run) auth(ordinal int, token string) error {
	_, err := r.incarnation(ordinal, token)
	return err
}

func (r *run) member(ordinal int) (cluster.Member, bool) {
	ms := r.c.Members()
	if ordinal < 0 || ordinal >= len(ms) {
		return cluster.Member{}, false
	}
	return ms[ordinal], true
}

// viewData is what a member's file templates see.
type viewData struct {
	Cluster string
	Epoch   int64
	Self    initproto.Member
	Peers   []initproto.Member
	Leader  *initproto.Member
	Deps    map[string]initproto.Peers
}

// view is the member's view with its files rendered; a template that
// fails holds the member back (not released) and says why in the status.
func (r *run) view(ordinal int) initproto.View {
	v := r.c.View(ordinal)
	if !v.Release || len(r.svc.Files) == 0 {
		return v
	}
	data := viewData{Cluster: v.Cluster, Epoch: v.Epoch, Self: v.Self, Peers: v.Peers, Leader: v.Leader, Deps: v.Deps}
	if data.Deps == nil {
		data.Deps = map[string]initproto.Peers{}
	}
	v.Files = map[string]string{}
	for path, t := range r.svc.Files {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			msg := fmt.Sprintf("render %s for member %d at epoch %d: %v", path, ordinal, v.Epoch, err)
			r.mu.Lock()
			if r.renderErr != msg {
				r.log.Error("cannot render a member's file: the member is held back", "err", err, "file", path, "ordinal", ordinal)
			}
			r.renderErr = msg
			r.mu.Unlock()
			v.Release, v.Files = false, nil
			return v
		}
		v.Files[path] = b.String()
	}
	r.mu.Lock()
	r.renderErr = ""
	r.mu.Unlock()
	return v
}
