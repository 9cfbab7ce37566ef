package session

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
)

// pool is the per-connection supply: a fresh container per session, unless
// a ready one waits in the pool (pool.min kept warm, refilled in the
// background) or was given back for reuse (reuse > 1). A container serves
// one session at a time, never two.
type pool struct {
	s        *Service
	mu       sync.Mutex
	idle     []*container // ready, oldest first
	starting int
	stopped  bool
	wake     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func newPool(s *Service) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{s: s, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

func (p *pool) perSession() bool {
	c := p.s.conf.Load().cfg
	return c.Reuse == 1 && c.Pool.Min == 0
}

func (p *pool) get(gone context.Context, cf *conf, session string, log *slog.Logger) (*container, *net.TCPConn, string, error) {
	for c := p.take(cf); c != nil; c = p.take(cf) {
		conn, err := c.Dial()
		if err == nil {
			c.uses++
			return c, conn, "pool", nil
		}
		if fleet.OutOfFiles(err) { // Ganger's limit, not the container's fault
			p.mu.Lock()
			p.park(c)
			p.mu.Unlock()
			return nil, nil, "", ganger.Fail(ganger.NoFiles, err)
		}
		log.Warn("pooled container does not answer; destroying it", "container", shortID(c.ID()), "err", err)
		c.Destroy()
	}
	id := session
	if !p.perSession() {
		id = newID()
	}
	c, err := p.s.launch(gone, cf, id, log)
	if err != nil {
		return nil, nil, "", err
	}
	conn, err := c.Dial()
	if err != nil {
		c.Destroy()
		return nil, nil, "", ganger.Fail(ganger.NotReady, err)
	}
	c.uses = 1
	return c, conn, "new", nil
}

// take removes the oldest ready container of generation cf from the pool.
func (p *pool) take(cf *conf) *container {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.idle, func(c *container) bool { return c.conf.gen == cf.gen && !c.dead })
	if i < 0 {
		return nil
	}
	c := p.idle[i]
	p.idle = slices.Delete(p.idle, i, i+1)
	c.unwatch()
	p.poke()
	return c
}

func (p *pool) put(c *container, reusable bool, log *slog.Logger) {
	cf := p.s.conf.Load()
	p.mu.Lock()
	keep := reusable && !c.dead && !p.stopped && c.uses < cf.cfg.Reuse && c.conf.gen == cf.gen && len(p.idle) < cf.cfg.Pool.Max
	if keep {
		p.park(c)
	}
	p.mu.Unlock()
	if !keep {
		c.Destroy()
	}
	p.poke()
}

// park puts a ready container in the pool and watches it: one that exits
// there is destroyed and replaced. The caller holds p.mu.
func (p *pool) park(c *container) {
	ctx, cancel := context.WithCancel(p.ctx)
	c.unwatch = cancel
	p.idle = append(p.idle, c)
	watch(ctx, c, func() {
		p.mu.Lock()
		i := slices.Index(p.idle, c)
		if i >= 0 {
			p.idle = slices.Delete(p.idle, i, i+1)
			c.dead = true
		}
		p.mu.Unlock()
		if i >= 0 {
			p.s.log.Warn("pooled container exited; replacing it", "container", shortID(c.ID()))
			cancel()
			c.Destroy()
			p.poke()
		}
	})
}

func (p *pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pool) start() {
	p.wg.Go(p.refill)
	p.poke()
}

// refill keeps pool.min containers ready or starting, woken whenever the
// pool changes. A start that fails is retried after a pause, not at once.
func (p *pool) refill() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		}
		cf := p.s.conf.Load()
		p.mu.Lock()
		need := cf.cfg.Pool.Min - p.starting
		for _, c := range p.idle {
			if c.conf.gen == cf.gen {
				need--
			}
		}
		p.starting += max(need, 0)
		p.mu.Unlock()
		for range need {
			p.wg.Go(func() { p.warm(cf) })
		}
	}
}

// warm starts one pool container.
func (p *pool) warm(cf *conf) {
	log := p.s.log.With("pool", true)
	c, err := p.s.launch(p.ctx, cf, newID(), log)
	p.mu.Lock()
	p.starting--
	ok := err == nil && !p.stopped && cf.gen == p.s.conf.Load().gen
	if ok {
		p.park(c)
		log.Info("pool: container ready", "daemon", c.Daemon(), "container", shortID(c.ID()), "idle", len(p.idle))
	}
	p.mu.Unlock()
	switch {
	case ok:
		return
	case err == nil:
		c.Destroy() // stopped, or made from an old configuration
	case p.ctx.Err() == nil:
		log.Warn("pool: cannot start a container; retrying in a second", "err", err)
		select {
		case <-time.After(time.Second):
		case <-p.ctx.Done():
		}
	}
	p.poke()
}

func (p *pool) refresh() {
	cf := p.s.conf.Load()
	p.mu.Lock()
	var old []*container
	p.idle = slices.DeleteFunc(p.idle, func(c *container) bool {
		if c.conf.gen != cf.gen {
			old = append(old, c)
			return true
		}
		return false
	})
	p.mu.Unlock()
	for _, c := range old {
		c.unwatch()
		c.Destroy()
	}
	p.poke()
}

func (p *pool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.unwatch()
		c.Destroy()
	}
}

func (p *pool) ready() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.s.conf.Load().cfg.Pool.Min
}
