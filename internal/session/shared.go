package session

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// shared is the supply of shared mode: concurrent sessions share up to
// shared.replicas containers, each serving at most
// shared.max_sessions_per_container at once. The first session starts a
// container and later ones wait for that same start; a container with no
// open connection for shared.idle_stop is stopped and removed.
type shared struct {
	s       *Service
	mu      sync.Mutex
	cs      []*sharedC
	changed chan struct{} // closed, and replaced, when room may have appeared
	stopped bool
	wg      sync.WaitGroup
}

// sharedC is one shared container, starting or ready.
type sharedC struct {
	*container
	ready chan struct{} // closed when the start is over
	err   error         // why the start failed
	idle  *time.Timer   // idle_stop, armed while no connection is open
}

func newShared(s *Service) *shared { return &shared{s: s, changed: make(chan struct{})} }

func (p *shared) perSession() bool { return false }
func (p *shared) start()           {}

func (p *shared) get(gone context.Context, cf *conf, session string, log *slog.Logger) (*container, *net.TCPConn, string, error) {
	ctx, cancel := context.WithTimeoutCause(gone, max(cf.cfg.Queue.Timeout.D(), time.Nanosecond), errQueueWait)
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
			p.put(sc.container, true, log)
			return nil, nil, "", context.Cause(ctx)
		}
		if sc.err != nil {
			p.put(sc.container, false, log)
			return nil, nil, "", sc.err
		}
		p.mu.Lock()
		warm := sc.takeWarm()
		p.mu.Unlock()
		conn, err := dialWarm(warm, sc.addr)
		if err == nil {
			return sc.container, conn, "shared", nil
		}
		log.Warn("shared container does not answer; destroying it", "container", sc.id, "err", err)
		p.kill(sc)
		p.put(sc.container, false, log)
	}
}

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
		if sc.conf.gen != cf.gen || sc.dead {
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
		best = &sharedC{container: &container{conf: cf}, ready: make(chan struct{})}
		p.cs = append(p.cs, best)
		p.wg.Go(func() { p.boot(best) })
	}
	if best == nil {
		return nil, p.changed
	}
	best.conns++
	if best.idle != nil {
		best.idle.Stop()
		best.idle = nil
	}
	return best, nil
}

// boot starts a shared container for everyone waiting on it. It does not
// depend on the client that asked first: that one may leave.
func (p *shared) boot(sc *sharedC) {
	log := p.s.log.With("shared", true)
	c, err := p.s.launch(p.s.ctx, sc.conf, newID(), log)
	p.mu.Lock()
	if err != nil {
		sc.err, sc.dead = err, true
		p.cs = slices.DeleteFunc(p.cs, func(x *sharedC) bool { return x == sc })
	} else {
		conns := sc.conns
		*sc.container = *c
		sc.conns = conns
		log.Info("shared: container ready", "daemon", c.daemon(), "container", shortID(c.id))
		ctx, cancel := context.WithCancel(p.s.ctx)
		sc.unwatch = cancel
		p.s.watch(ctx, sc.container, func() { p.exited(sc) })
	}
	close(sc.ready)
	p.signal()
	p.mu.Unlock()
}

// exited drops a shared container that exited; its sessions end as their
// connections close.
func (p *shared) exited(sc *sharedC) {
	p.s.log.Warn("shared container exited", "container", sc.id)
	p.kill(sc)
	p.mu.Lock()
	idleNow := sc.conns == 0
	p.mu.Unlock()
	if idleNow {
		p.s.destroy(sc.container, p.s.log)
	}
}

// kill takes sc out of service: no new session picks it.
func (p *shared) kill(sc *sharedC) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sc.dead = true
	p.cs = slices.DeleteFunc(p.cs, func(x *sharedC) bool { return x == sc })
	p.signal()
}

func (p *shared) put(c *container, reusable bool, log *slog.Logger) {
	p.mu.Lock()
	i := slices.IndexFunc(p.cs, func(x *sharedC) bool { return x.container == c })
	c.conns--
	var sc *sharedC
	if i >= 0 {
		sc = p.cs[i]
	}
	destroy := c.conns == 0 && (sc == nil || c.conf.gen != p.s.conf.Load().gen || p.stopped) && c.id != ""
	if destroy && sc != nil {
		p.cs = slices.Delete(p.cs, i, i+1)
	}
	if !destroy && sc != nil && c.conns == 0 && !sc.dead {
		p.armIdle(sc)
	}
	p.signal()
	p.mu.Unlock()
	if destroy {
		if c.unwatch != nil {
			c.unwatch()
		}
		p.s.destroy(c, log)
	}
}

// armIdle stops and removes sc after idle_stop with no connection. The
// caller holds p.mu.
func (p *shared) armIdle(sc *sharedC) {
	d := sc.conf.cfg.Shared.IdleStop.D()
	if d <= 0 {
		return
	}
	sc.idle = time.AfterFunc(d, func() {
		p.mu.Lock()
		i := slices.Index(p.cs, sc)
		gone := i >= 0 && sc.conns == 0
		if gone {
			p.cs = slices.Delete(p.cs, i, i+1)
		}
		p.mu.Unlock()
		if gone {
			p.s.log.Info("shared: container idle; stopping it", "container", shortID(sc.id), "idle_stop", d)
			sc.unwatch()
			p.s.destroy(sc.container, p.s.log)
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
	var idle []*sharedC
	p.cs = slices.DeleteFunc(p.cs, func(sc *sharedC) bool {
		if sc.conf.gen == cf.gen {
			return false
		}
		sc.dead = true
		if sc.conns == 0 && sc.id != "" {
			idle = append(idle, sc)
		}
		return true
	})
	p.signal()
	p.mu.Unlock()
	for _, sc := range idle {
		p.stopIdle(sc)
	}
}

func (p *shared) stopIdle(sc *sharedC) {
	if sc.idle != nil {
		sc.idle.Stop()
	}
	sc.unwatch()
	p.s.destroy(sc.container, p.s.log)
}

func (p *shared) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.wg.Wait() // starts end: the service's context is cancelled
	p.mu.Lock()
	cs := p.cs
	p.cs = nil
	p.mu.Unlock()
	for _, sc := range cs { // every start is over, and failed ones left the list
		p.stopIdle(sc)
	}
}

func (p *shared) ready() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sc := range p.cs {
		if sc.id != "" && !sc.dead {
			n++
		}
	}
	return n, 0
}
