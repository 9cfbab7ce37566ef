package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
)

// errSameEngine means two configured daemons are one engine.
var errSameEngine = errors.New("the same engine is listed twice")

// member is one daemon of the fleet: its backend, its gate, and what the
// fleet knows of it beyond placement (which the scheduler keeps: up,
// drained, capacity, images).
type member struct {
	f    *Fleet
	name string
	b    Backend
	gate *gate
	stop context.CancelFunc // ends its loops

	mu      sync.Mutex
	fails   int // failed pings in a row
	engine  ganger.Engine
	watch   map[string]*Container // by container id: those whose exit is awaited
	unowned map[string]bool       // by name: seen unowned by the last reconcile
	inits   map[string]*provision // by digest: ganger-init provided here, or being
	drains  map[string]bool       // why it takes no new container (see DrainFor)
}

func (m *member) engineInfo() ganger.Engine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.engine
}

// join readies a daemon that answers and puts it to use: it must not be
// an engine that another daemon of the fleet already is; this node's
// containers there that nothing owns are removed; each service's image is
// made present (a service whose image it cannot get does not use it), and
// each ganger-init known (see PrepareInit); then it is marked up. It
// returns the image errors by service.
func (m *member) join(ctx context.Context, when string) (map[string]error, error) {
	f := m.f
	pctx, cancel := context.WithTimeout(ctx, f.opt.Health.Timeout)
	e, err := m.b.Engine(pctx)
	cancel()
	if err != nil {
		return nil, err
	}
	if other := f.sameEngine(m, e.Identity()); other != "" {
		return nil, fmt.Errorf("daemons %s and %s are one engine (id %s): %w; list it once", other, m.name, e.ID, errSameEngine)
	}
	m.mu.Lock()
	m.engine = e
	m.mu.Unlock()
	f.log.Info("daemon answers", "daemon", m.name, "api_version", e.APIVersion, "engine", e.ID, "when", when)
	if _, err := f.sweep(ctx, m, when); err != nil {
		return nil, err
	}
	for _, img := range f.imageList() { // Ganger's own networks, as services need them
		if n := f.isolatedSpec(img.Network); n.Name != "" {
			if err := m.b.EnsureNetwork(ctx, n); err != nil {
				return nil, err
			}
		}
	}
	ierrs := map[string]error{}
	for _, img := range f.imageList() {
		err := m.b.EnsureImage(ctx, img.Ref, img.Pull)
		if err != nil {
			f.log.Error("daemon cannot get the image: not used for this service", "daemon", m.name, "service", img.Service, "image", img.Ref, "err", err)
			ierrs[img.Service] = err
		}
		f.sched.SetImage(m.name, img.Service, err == nil)
	}
	m.provideInits(ctx)
	m.mu.Lock()
	m.fails = 0
	m.mu.Unlock()
	f.sched.SetUp(m.name, true)
	return ierrs, nil
}

// sameEngine returns the name of another daemon whose engine has the
// identity given, if any.
func (f *Fleet) sameEngine(m *member, identity string) string {
	if identity == "" {
		return ""
	}
	for _, o := range f.memberList() {
		if o != m && o.engineInfo().Identity() == identity {
			return o.name
		}
	}
	return ""
}

// healthLoop pings the daemon every interval. After Failures failed pings
// in a row it is marked down: no new container goes there, and sessions
// on it go on (proxying never goes through the daemon). When it answers
// again it rejoins.
func (m *member) healthLoop(ctx context.Context) {
	step := func() {
		if m.f.isUp(m.name) {
			m.check(ctx, m.f.opt.Health.Failures)
			return
		}
		if _, err := m.join(ctx, "recovery"); err == nil {
			m.f.log.Info("daemon up again", "daemon", m.name)
		} else if errors.Is(err, errSameEngine) {
			m.f.log.Error("daemon not used", "daemon", m.name, "err", err)
		}
	}
	if !m.f.isUp(m.name) {
		step() // a daemon added at run time (a discovered host) joins at once
	}
	tick(ctx, m.f.opt.Health.Interval, step)
}

// check pings an up daemon once and marks it down if that makes failures
// failed pings in a row. Running out of file descriptors is Ganger's own
// limit and counts for nothing. It reports whether the daemon is down.
func (m *member) check(ctx context.Context, failures int) bool {
	f := m.f
	pctx, cancel := context.WithTimeout(ctx, f.opt.Health.Timeout)
	_, err := m.b.Ping(pctx)
	cancel()
	if OutOfFiles(err) {
		f.log.Warn("cannot ping the daemon: Ganger is out of file descriptors (not the daemon's fault)", "daemon", m.name)
		return !f.isUp(m.name)
	}
	m.mu.Lock()
	if err == nil {
		m.fails = 0
	} else {
		m.fails++
	}
	fails := m.fails
	m.mu.Unlock()
	up := f.isUp(m.name)
	if err != nil && up && fails >= failures && ctx.Err() == nil {
		f.sched.SetUp(m.name, false)
		f.log.Warn("daemon down: no new containers there until it answers again; sessions on it go on", "daemon", m.name, "err", err)
		return true
	}
	return !up
}

// answers pings the daemon once, within the health timeout.
func (m *member) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, m.f.opt.Health.Timeout)
	defer cancel()
	_, err := m.b.Ping(ctx)
	return err == nil
}

// suspect is told that a call to the daemon failed: one failed ping now
// is enough to mark it down, so the caller can go elsewhere.
func (f *Fleet) suspect(name string) bool {
	m := f.member(name)
	return m != nil && m.check(f.ctx, 1)
}

// eventLoop keeps one event stream open to the daemon for this node's
// containers, reconnecting with a capped backoff. After each connect it
// checks the containers whose exit it awaits against a listing, for the
// events it may have missed while the stream was down.
func (m *member) eventLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		evs, errc := m.b.Events(sctx, m.f.opt.Node)
		connected := time.Now()
		if err := m.catchUp(sctx); err == nil {
			for e := range evs {
				m.deliver(e)
			}
		}
		cancel()
		var err error
		select {
		case err = <-errc:
		default:
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(connected) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		if err != nil && m.f.isUp(m.name) {
			m.f.log.Debug("event stream ended; reconnecting", "daemon", m.name, "err", err, "retry_in", backoff)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// catchUp reports the exit of every awaited container that a listing
// shows gone or no longer running.
func (m *member) catchUp(ctx context.Context) error {
	m.mu.Lock()
	awaited := slices.Collect(maps.Values(m.watch))
	m.mu.Unlock()
	if len(awaited) == 0 {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, m.f.opt.Health.Timeout*5)
	list, err := m.b.ListManaged(lctx, m.f.opt.Node)
	cancel()
	if err != nil {
		return err
	}
	state := map[string]ganger.Managed{}
	for _, c := range list {
		state[c.ID] = c
	}
	for _, c := range awaited {
		if st, ok := state[c.ID()]; !ok || !st.Running() {
			c.died(ganger.Exit{Code: -1, Err: errors.New("found " + orGone(st.State) + " after the event stream reconnected")})
		}
	}
	return nil
}

func orGone(s string) string {
	if s == "" {
		return "gone"
	}
	return s
}

func (m *member) deliver(e ganger.Event) {
	m.mu.Lock()
	c := m.watch[e.ID]
	m.mu.Unlock()
	if c == nil {
		return
	}
	if e.Action == "destroy" {
		e.Exit = ganger.Exit{Code: -1, Err: errors.New("container removed")}
	}
	c.died(e.Exit)
}

func (m *member) await(c *Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watch[c.ID()] = c
}

func (m *member) forget(c *Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watch[c.ID()] == c {
		delete(m.watch, c.ID())
	}
}
