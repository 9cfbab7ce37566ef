package session

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/view"
)

// pool is the per-connection supply: a fresh container per session, unless
// a ready one waits in the pool (kept warm and refilled in the background:
// pool.min of them, or as many as demand needs with pool.adaptive) or was
// given back for reuse (reuse > 1). A container serves one session at a
// time, never two. The pool takes only room no client waits for: it
// starts nothing while one does, and gives an idle container back when
// one starts waiting.
type pool struct {
	s        *Service
	z        *sizer
	mu       sync.Mutex
	idle     []*container // ready, oldest first
	starting int
	stopped  bool
	wake     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	hits     atomic.Int64
	misses   atomic.Int64
	unhook   func()
}

func newPool(s *Service) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{s: s, z: newSizer(), wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, unhook: func() {}}
}

func (p *pool) perSession() bool {
	c := p.s.conf.Load().cfg
	return c.Reuse == 1 && c.Pool.Min == 0 && !c.Pool.Adaptive
}

// hit takes a ready container from the pool, if one answers. With a pool,
// every call is an arrival the adaptive pool counts, and a hit or a miss.
func (p *pool) hit(cf *conf, log *slog.Logger) (*container, *net.TCPConn, string, error) {
	pooled := cf.cfg.Pool.Max > 0 // a service with no pool measures nothing
	if pooled {
		p.z.arrive(p.s.now())
	}
	c, conn, err := p.takeAnswering(cf, log)
	if pooled && err == nil {
		m := p.s.env.Fleet.Metrics()
		if c != nil {
			p.hits.Add(1)
			m.PoolHits.WithLabelValues(p.s.name).Inc()
		} else {
			p.misses.Add(1)
			m.PoolMisses.WithLabelValues(p.s.name).Inc()
		}
	}
	if c == nil {
		if cf.cfg.Pool.Adaptive {
			p.poke() // demand rose: the target may have too
		}
		return nil, nil, "", err
	}
	return c, conn, "pool", nil
}

func (p *pool) takeAnswering(cf *conf, log *slog.Logger) (*container, *net.TCPConn, error) {
	for c := p.take(cf); c != nil; c = p.take(cf) {
		conn, err := c.Dial()
		if err == nil {
			c.uses++
			return c, conn, nil
		}
		if fleet.OutOfFiles(err) { // Ganger's limit, not the container's fault
			p.mu.Lock()
			p.park(c)
			p.mu.Unlock()
			return nil, nil, ganger.Fail(ganger.NoFiles, err)
		}
		log.Warn("pooled container does not answer; destroying it", "container", shortID(c.ID()), "err", err)
		c.Destroy()
	}
	return nil, nil, nil
}

func (p *pool) get(gone context.Context, cf *conf, session string, log *slog.Logger) (*container, *net.TCPConn, string, error) {
	if c, conn, err := p.takeAnswering(cf, log); c != nil || err != nil {
		return c, conn, "pool", err // a refill became ready meanwhile
	}
	id := session
	if !p.perSession() {
		id = newID()
	}
	c, err := p.launch(gone, cf, id, cf.cfg.Queue.Timeout.D(), log)
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

// launch starts a container and records how long it took, for the
// adaptive pool.
func (p *pool) launch(ctx context.Context, cf *conf, id string, queue time.Duration, log *slog.Logger) (*container, error) {
	t0 := p.s.now()
	c, err := p.s.launch(ctx, cf, id, queue, log)
	if err == nil {
		now := p.s.now()
		p.z.started(c.Daemon(), now.Sub(t0), now)
	}
	return c, err
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
	time.AfterFunc(refillHold, p.poke) // or sooner: see replied
	return c
}

// refillHold is the longest a refill waits for the first reply of the
// session that took a pooled container. A create and start take a few
// hundred milliseconds of the daemon's CPU; begun at the very moment the
// session's first request goes through, they would add milliseconds to
// its reply (measured: BenchmarkPoolHit). A first reply comes within a
// millisecond or two; a refill a few milliseconds later costs nothing.
const refillHold = 20 * time.Millisecond

func (p *pool) replied() { p.poke() }

func (p *pool) put(c *container, reusable bool, log *slog.Logger) {
	cf := p.s.conf.Load()
	p.mu.Lock()
	keep := reusable && !c.dead && !p.stopped && c.uses < cf.cfg.Reuse && c.conf.gen == cf.gen &&
		len(p.idle) < p.cap(cf) && !p.old(c, cf)
	if keep {
		p.park(c)
	}
	p.mu.Unlock()
	if !keep {
		c.Destroy()
	}
	p.poke()
}

// cap is the most idle containers kept: pool.max, or with an adaptive
// pool its target, at least 1 for reuse.
func (p *pool) cap(cf *conf) int {
	if !cf.cfg.Pool.Adaptive {
		return cf.cfg.Pool.Max
	}
	return max(p.target(cf), min(cf.cfg.Pool.Max, 1))
}

// target is how many containers the pool keeps ready now.
func (p *pool) target(cf *conf) int {
	pc := cf.cfg.Pool
	if !pc.Adaptive {
		return pc.Min
	}
	return p.z.target(p.s.now(), pc.Min, pc.Max)
}

// old reports whether c has passed pool.max_age.
func (p *pool) old(c *container, cf *conf) bool {
	age := cf.cfg.Pool.MaxAge.D()
	return age > 0 && p.s.now().Sub(c.made) >= age
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
	p.unhook = p.s.env.Fleet.Sched().OnStarved(p.s.name, p.yield)
	p.wg.Go(p.refill)
	p.poke()
}

// yield gives the oldest idle container back: a client waits for room.
func (p *pool) yield() {
	p.mu.Lock()
	var c *container
	if len(p.idle) > 0 {
		c = p.idle[0]
		p.idle = p.idle[1:]
	}
	p.mu.Unlock()
	if c != nil {
		p.s.log.Info("pool: a client waits for room; giving a pooled container back", "container", shortID(c.ID()))
		c.unwatch()
		c.Destroy()
	}
}

// tick is how often the pool looks at its target and its containers' age
// without being woken.
const tick = time.Second

// refill keeps the target of containers ready or starting, woken whenever
// the pool changes (and, if adaptive or with max_age, every tick): it starts what is missing, all at once,
// and destroys what is over an adaptive target or past max_age. A start
// that fails is retried after a pause, not at once. While a client waits
// for room, it starts nothing.
func (p *pool) refill() {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		cf := p.s.conf.Load()
		var ticks <-chan time.Time // only a pool that changes with time ticks
		if cf.cfg.Pool.Adaptive || cf.cfg.Pool.MaxAge > 0 {
			ticks = t.C
		}
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		case <-ticks:
		}
		cf = p.s.conf.Load()
		target := p.target(cf)
		p.trim(cf, target)
		if p.s.env.Fleet.Sched().Starved(p.s.name) {
			continue
		}
		p.mu.Lock()
		need := target - p.starting
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

// trim destroys idle containers past max_age, and with an adaptive pool
// the oldest of those over its target.
func (p *pool) trim(cf *conf, target int) {
	p.mu.Lock()
	var out []*container
	p.idle = slices.DeleteFunc(p.idle, func(c *container) bool {
		if p.old(c, cf) {
			out = append(out, c)
			return true
		}
		return false
	})
	aged := len(out)
	if cf.cfg.Pool.Adaptive && len(p.idle) > target {
		n := len(p.idle) - target
		out = append(out, p.idle[:n]...)
		p.idle = slices.Delete(p.idle, 0, n)
	}
	p.mu.Unlock()
	for i, c := range out {
		if i < aged {
			p.s.log.Info("pool: container past max_age; replacing it", "container", shortID(c.ID()), "max_age", cf.cfg.Pool.MaxAge.D())
		}
		c.unwatch()
		c.Destroy()
	}
}

// warm starts one pool container. It waits for no room: with none, it
// fails at once and is retried later.
func (p *pool) warm(cf *conf) {
	log := p.s.log.With("pool", true)
	c, err := p.launch(p.ctx, cf, newID(), 0, log)
	p.mu.Lock()
	p.starting--
	ok := err == nil && !p.stopped && cf.gen == p.s.conf.Load().gen && !p.s.env.Fleet.Sched().Starved(p.s.name)
	if ok {
		c.made = p.s.now()
		p.park(c)
		log.Info("pool: container ready", "daemon", c.Daemon(), "container", shortID(c.ID()), "idle", len(p.idle))
	}
	p.mu.Unlock()
	switch {
	case ok:
		return
	case err == nil:
		c.Destroy() // stopped, made from an old configuration, or a client needs the room
	case p.ctx.Err() == nil:
		level := slog.LevelWarn
		if o := ganger.OutcomeOf(err, ""); o == ganger.QueueTimeout || o == ganger.QueueFull {
			level = slog.LevelDebug // no room: normal at capacity
		}
		log.Log(context.Background(), level, "pool: cannot start a container; retrying in a second", "err", err)
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
	p.unhook()
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

// view is what an operator sees of the pool, or nil if the service keeps
// none.
func (p *pool) view() *view.Pool {
	cf := p.s.conf.Load()
	pc := cf.cfg.Pool
	if pc.Max == 0 {
		return nil
	}
	now := p.s.now()
	d := p.z.demand(now)
	p.mu.Lock()
	v := &view.Pool{Min: pc.Min, Max: pc.Max, Adaptive: pc.Adaptive, Ready: len(p.idle), Starting: p.starting,
		ArrivalRate: d.Rate, Hits: p.hits.Load(), Misses: p.misses.Load(), MaxAge: pc.MaxAge.D().Seconds(),
		StartSeconds: map[string]float64{}}
	p.mu.Unlock()
	v.Target = p.target(cf)
	for name, t := range d.Starts {
		v.StartSeconds[name] = t.Seconds()
	}
	return v
}
