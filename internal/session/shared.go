package session

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/view"
)

// shared is the supply of shared mode: concurrent sessions share up to
// shared.replicas containers, each serving at most
// shared.max_sessions_per_container at once. The first session starts a
// container and later ones wait for that same start; a container with no
// open connection for shared.idle_stop is stopped and removed.
type shared struct {
	s       *Service
	mu      sync.Mutex
	cs      []*sharedC              // in service: starting or ready
	held    map[*container]*sharedC // every started one not yet destroyed
	changed chan struct{}           // closed, and replaced, when room may have appeared
	stopped bool
	wg      sync.WaitGroup
}

// sharedC is one shared container, starting or ready. Its fields are
// guarded by the shared's mu, but for ready and err, set once by boot.
type sharedC struct {
	conf  *conf
	c     *container    // nil until its start is over
	ready chan struct{} // closed when the start is over
	err   error         // why the start failed
	conns int           // sessions on it
	out   bool          // out of service: no new session picks it
	idle  *time.Timer   // idle_stop, armed while no connection is open
}

func newShared(s *Service) *shared {
	return &shared{s: s, changed: make(chan struct{}), held: map[*container]*sharedC{}}
}

func (p *shared) perSession() bool { return false }
func (p *shared) start()           {}
func (p *shared) replied()         {}
func (p *shared) view() *view.Pool { return nil }

func (p *shared) get(gone context.Context, cf *conf, session string, log *slog.Logger) (*container, *net.TCPConn, string, error) {
	ctx, cancel := context.WithTimeoutCause(gone, max(cf.cfg.Queue.Timeout.D(), time.Nanosecond), errSharedWait)
	defer cancel()
	for {
		sc, wait := p.pick(cf)
		if sc == nil {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, nil, "", context.Cause(ctx)
			}
		}
		select {
		case <-sc.ready:
		case <-ctx.Done():
			p.release(sc)
			return nil, nil, "", context.Cause(ctx)
		}
		if sc.err != nil {
			p.release(sc)
			return nil, nil, "", sc.err
		}
		conn, err := sc.c.Dial()
		if err == nil {
			return sc.c, conn, "shared", nil
		}
		p.release(sc)
		if fleet.OutOfFiles(err) { // Ganger's limit, not the container's fault
			return nil, nil, "", ganger.Fail(ganger.NoFiles, err)
		}
		log.Warn("shared container does not answer; destroying it", "container", shortID(sc.c.ID()), "err", err)
		p.retire(sc)
	}
}

// hit takes a ready shared container with room, if there is one.
func (p *shared) hit(cf *conf, log *slog.Logger) (*container, *net.TCPConn, string, error) {
	sc := p.pickReady(cf)
	if sc == nil {
		return nil, nil, "", nil
	}
	conn, err := sc.c.Dial()
	if err == nil {
		return sc.c, conn, "shared", nil
	}
	p.release(sc)
	if fleet.OutOfFiles(err) {
		return nil, nil, "", ganger.Fail(ganger.NoFiles, err)
	}
	log.Warn("shared container does not answer; destroying it", "container", shortID(sc.c.ID()), "err", err)
	p.retire(sc)
	return nil, nil, "", nil
}

var errSharedWait = ganger.Fail(ganger.QueueTimeout, errors.New("no shared container with room within the queue timeout"))

// pick counts the session on a container of generation cf with room:
// the least loaded ready one, else one starting, else a new one if there
// are fewer than replicas. With none, it returns a channel that is closed
// when room may have appeared.
func (p *shared) pick(cf *conf) (*sharedC, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := cf.cfg.Shared.MaxSessionsPerContainer
	var best *sharedC
	n := 0
	for _, sc := range p.cs {
		if sc.conf.gen != cf.gen {
			continue
		}
		n++
		if limit > 0 && sc.conns >= limit {
			continue
		}
		if best == nil || sc.conns < best.conns {
			best = sc
		}
	}
	if best == nil && n < cf.cfg.Shared.Replicas && !p.stopped {
		best = &sharedC{conf: cf, ready: make(chan struct{})}
		p.cs = append(p.cs, best)
		p.wg.Go(func() { p.boot(best) })
	}
	if best == nil {
		return nil, p.changed
	}
	p.count(best)
	return best, nil
}

// count adds a session to sc. The caller holds p.mu.
func (p *shared) count(sc *sharedC) {
	sc.conns++
	if sc.idle != nil {
		sc.idle.Stop()
		sc.idle = nil
	}
}

// pickReady counts the session on the least loaded container of
// generation cf that is ready and has room, or returns nil.
func (p *shared) pickReady(cf *conf) *sharedC {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := cf.cfg.Shared.MaxSessionsPerContainer
	var best *sharedC
	for _, sc := range p.cs {
		if sc.conf.gen != cf.gen || sc.c == nil || (limit > 0 && sc.conns >= limit) {
			continue
		}
		if best == nil || sc.conns < best.conns {
			best = sc
		}
	}
	if best == nil {
		return nil
	}
	p.count(best)
	return best
}

// boot starts a shared container for everyone waiting on it. It does not
// depend on the client that asked first: that one may leave.
func (p *shared) boot(sc *sharedC) {
	log := p.s.log.With("shared", true)
	c, err := p.s.launch(p.s.ctx, sc.conf, newID(), sc.conf.cfg.Queue.Timeout.D(), log)
	p.mu.Lock()
	sc.c, sc.err = c, err
	unused := false
	if err != nil {
		p.takeOut(sc)
	} else {
		log.Info("shared: container ready", "daemon", c.Daemon(), "container", shortID(c.ID()))
		p.held[c] = sc
		ctx, cancel := context.WithCancel(p.s.ctx)
		c.unwatch = cancel
		watch(ctx, c, func() { p.exited(sc) })
		if sc.conns == 0 { // everyone who waited left
			unused = sc.out
			p.armIdle(sc)
		}
	}
	close(sc.ready)
	p.signal()
	p.mu.Unlock()
	if unused { // retired while it started
		p.destroy(sc)
	}
}

// exited takes a shared container that exited out of service; its
// sessions end (they watch it too), and the last one out destroys it.
func (p *shared) exited(sc *sharedC) {
	p.s.log.Warn("shared container exited", "container", shortID(sc.c.ID()))
	p.retire(sc)
}

// takeOut stops new sessions picking sc. The caller holds p.mu.
func (p *shared) takeOut(sc *sharedC) {
	sc.out = true
	p.cs = slices.DeleteFunc(p.cs, func(x *sharedC) bool { return x == sc })
}

// retire takes sc out of service and destroys it once no session is on it.
func (p *shared) retire(sc *sharedC) {
	p.mu.Lock()
	p.takeOut(sc)
	idle := sc.conns == 0
	p.signal()
	p.mu.Unlock()
	if idle {
		p.destroy(sc)
	}
}

// release ends one session's hold on sc.
func (p *shared) release(sc *sharedC) {
	p.mu.Lock()
	sc.conns--
	last := sc.conns == 0
	destroy := last && sc.c != nil && (sc.out || sc.conf.gen != p.s.conf.Load().gen || p.stopped)
	if destroy {
		p.takeOut(sc)
	} else if last && sc.c != nil {
		p.armIdle(sc)
	}
	p.signal()
	p.mu.Unlock()
	if destroy {
		p.destroy(sc)
	}
}

func (p *shared) put(c *container, reusable bool, log *slog.Logger) {
	p.mu.Lock()
	sc := p.held[c]
	p.mu.Unlock()
	if sc != nil {
		p.release(sc)
		return
	}
	c.Destroy() // not ours any more: destroying is idempotent
}

// destroy destroys sc's container; a second call does nothing.
func (p *shared) destroy(sc *sharedC) {
	p.mu.Lock()
	if sc.idle != nil {
		sc.idle.Stop()
	}
	_, held := p.held[sc.c]
	delete(p.held, sc.c)
	p.mu.Unlock()
	if held {
		if sc.c.unwatch != nil {
			sc.c.unwatch()
		}
		sc.c.Destroy()
	}
}

// armIdle stops and removes sc after idle_stop with no connection. The
// caller holds p.mu.
func (p *shared) armIdle(sc *sharedC) {
	d := sc.conf.cfg.Shared.IdleStop.D()
	if d <= 0 || sc.out {
		return
	}
	sc.idle = time.AfterFunc(d, func() {
		p.mu.Lock()
		idle := !sc.out && sc.conns == 0
		if idle {
			p.takeOut(sc)
		}
		p.mu.Unlock()
		if idle {
			p.s.log.Info("shared: container idle; stopping it", "container", shortID(sc.c.ID()), "idle_stop", d)
			p.destroy(sc)
		}
	})
}

// signal wakes the sessions waiting for room. The caller holds p.mu.
func (p *shared) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// refresh retires the containers of older configurations: no new session
// picks them, and each is removed when its last session ends.
func (p *shared) refresh() {
	cf := p.s.conf.Load()
	p.mu.Lock()
	var old []*sharedC
	for _, sc := range p.cs {
		if sc.conf.gen != cf.gen {
			old = append(old, sc)
		}
	}
	p.mu.Unlock()
	for _, sc := range old {
		p.retire(sc) // one still starting is destroyed when its start is over
	}
}

func (p *shared) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.wg.Wait() // starts end: the service's context is cancelled
	p.mu.Lock()
	cs := slices.Clone(p.cs)
	p.mu.Unlock()
	for _, sc := range cs { // every start is over, and failed ones left the list
		p.retire(sc)
	}
}

// ready returns how many shared containers are ready.
func (p *shared) ready() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sc := range p.cs {
		if sc.c != nil {
			n++
		}
	}
	return n
}
