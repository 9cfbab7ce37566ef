package fleet

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/sched"
)

// Request is one container to launch.
type Request struct {
	Service string
	Spec    ganger.Spec // its Name must be unique on every daemon
	// QueueTimeout bounds the wait for room; 0: no wait.
	QueueTimeout time.Duration
	// ReadyTimeout bounds everything after room is granted: the turn on
	// the daemon, create, start, and the wait until it answers, retries on
	// another daemon included. A client waits at most QueueTimeout +
	// ReadyTimeout. If zero, 30s.
	ReadyTimeout time.Duration
	// Backoff and BackoffMax pace the readiness dials (doubling).
	Backoff, BackoffMax time.Duration
	// Keep makes a container that outlives this process: Close leaves it
	// running (an instance, with a lifetime of its own). It is removed
	// only by Destroy, or by a sweep of a later run that does not keep it.
	Keep bool
	// Daemon, if set, is where the container goes (counted against the
	// limits but never waiting: a cluster member placed by its cluster).
	Daemon string
	// NoReady returns once the container has started, without dialling
	// it: a cluster member's readiness is what its ganger-init reports.
	NoReady bool
	Log     *slog.Logger // if nil, the fleet's
}

// defaultReadyTimeout is the ready budget of a Request that sets none.
const defaultReadyTimeout = 30 * time.Second

// placeAttempts is how many daemons a launch tries when one fails a call.
const placeAttempts = 3

// logLines is how much of a container's output an early exit reports.
const logLines = 10

var (
	errQueueWait = ganger.Fail(ganger.QueueTimeout, errors.New("no room within the queue timeout"))
	errNotReady  = ganger.Fail(ganger.NotReady, errors.New("container not ready within the ready timeout"))
)

// Launch waits for room (in the service's queue, up to QueueTimeout, and
// until ctx ends: a client leaving), then creates and starts a container
// on the daemon placement chose and waits until it answers. If the daemon
// fails a call and turns out to be down, it tries another, within the same
// ready budget. On success the container holds the connection that proved
// it ready (see Dial). On error nothing is left: what was created is being
// removed. The error carries the outcome (ganger.OutcomeOf).
//
// ctx ending never cuts a Docker call short: a create in flight finishes
// and its container is removed, never started; a launch still waiting for
// its turn on the daemon costs no call at all.
func (f *Fleet) Launch(ctx context.Context, r Request) (*Container, error) {
	if r.Log == nil {
		r.Log = f.log
	}
	if r.ReadyTimeout <= 0 {
		r.ReadyTimeout = defaultReadyTimeout
	}
	var lease *sched.Lease
	var err error
	if r.Daemon != "" {
		if f.member(r.Daemon) == nil {
			return nil, ganger.Fail(ganger.CreateFailed, errors.New("no daemon "+r.Daemon))
		}
		lease = f.sched.Take(r.Service, r.Daemon)
		ctx, cancel := context.WithTimeoutCause(ctx, r.ReadyTimeout, errNotReady)
		defer cancel()
		return f.boot(ctx, lease, r)
	}
	qctx, cancel := context.WithTimeoutCause(ctx, max(r.QueueTimeout, time.Nanosecond), errQueueWait)
	lease, err = f.acquire(qctx, r.Service)
	cancel()
	if err != nil {
		return nil, err
	}
	ctx, cancel = context.WithTimeoutCause(ctx, r.ReadyTimeout, errNotReady)
	defer cancel()
	for attempt := 1; ; attempt++ {
		c, err := f.boot(ctx, lease, r)
		if err == nil {
			return c, nil
		}
		if attempt == placeAttempts || ctx.Err() != nil || !daemonsFault(err) || !f.suspect(lease.Daemon()) {
			return nil, err
		}
		r.Log.Warn("daemon failed and is down; trying another", "daemon", lease.Daemon(), "err", err)
		if lease, err = f.acquire(ctx, r.Service); err != nil {
			return nil, err
		}
	}
}

// daemonsFault reports whether a failed launch may be the daemon's doing.
func daemonsFault(err error) bool {
	o := ganger.OutcomeOf(err, "")
	return o == ganger.CreateFailed || o == ganger.StartFailed
}

// acquire waits for a slot until ctx ends.
func (f *Fleet) acquire(ctx context.Context, service string) (*sched.Lease, error) {
	t0 := time.Now()
	lease, err := f.sched.Acquire(ctx, service)
	f.m.QueueWait.WithLabelValues(service).Observe(time.Since(t0).Seconds())
	switch {
	case errors.Is(err, sched.ErrQueueFull):
		return nil, ganger.Fail(ganger.QueueFull, err)
	case err != nil && ctx.Err() != nil:
		return nil, context.Cause(ctx)
	}
	return lease, err
}

// boot makes one container on the lease's daemon and waits until it
// answers, or destroys it.
func (f *Fleet) boot(ctx context.Context, lease *sched.Lease, r Request) (*Container, error) {
	m := f.member(lease.Daemon())
	if m == nil { // removed since placement
		lease.Release()
		return nil, ganger.Fail(ganger.CreateFailed, errors.New("daemon "+lease.Daemon()+" was removed"))
	}
	c := f.track(m, lease, r.Service, r.Spec.Name)
	c.keep = r.Keep
	op := make(chan error, 1)
	f.work.Go(func() { op <- c.createAndStart(ctx, r.Spec) })
	var err error
	select {
	case err = <-op:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	if err == nil && !r.NoReady {
		err = c.ready(ctx, r)
	}
	var exit *ExitError
	switch {
	case errors.As(err, &exit): // its output first, then it goes
		if r.Spec.Init.Enabled() {
			m.forgetInits(r.Spec.Init.Digest) // in case its volume went: asked again at the next launch
		}
		f.removals.Go(func() {
			exit.Output()
			c.Destroy()
		})
		return nil, err
	case err != nil:
		c.Destroy()
		return nil, err
	}
	f.m.ContainerStart.WithLabelValues(r.Service, c.Daemon()).Observe(time.Since(c.born).Seconds())
	return c, nil
}

// createAndStart waits until ganger-init is on the daemon if the spec runs
// under it (at once, unless the daemon has only just joined), waits for a
// turn on the daemon, then creates and starts the container. Its calls run
// to the end whatever happens to ctx (bounded by callTimeout for a stuck
// daemon); ctx only decides whether the next call is made.
func (c *Container) createAndStart(ctx context.Context, spec ganger.Spec) error {
	defer close(c.booted)
	if spec.Init.Enabled() {
		if err := c.m.ensureInit(ctx, spec.Init); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return ganger.Fail(ganger.CreateFailed, err)
		}
	}
	if err := c.m.gate.enter(ctx); err != nil {
		return context.Cause(ctx)
	}
	defer c.m.gate.leave()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	c.mu.Lock()
	c.created = true
	c.mu.Unlock()
	id, err := c.m.b.Create(cctx, spec)
	if err != nil && c.f.isolatedGone(spec, err) { // another node removed it as unused
		if err = c.m.b.EnsureNetwork(cctx, c.f.isolatedSpec(spec.Network)); err == nil {
			id, err = c.m.b.Create(cctx, spec)
		}
	}
	if err != nil {
		c.mu.Lock()
		c.uncertain = cctx.Err() != nil
		c.mu.Unlock()
		return ganger.Fail(callOutcome(err, ganger.CreateFailed), err)
	}
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
	c.m.await(c)
	if ctx.Err() != nil {
		return context.Cause(ctx) // left during create: removed, never started
	}
	addr, err := c.m.b.Start(cctx, id, spec.Port)
	if err != nil {
		return ganger.Fail(callOutcome(err, ganger.StartFailed), err)
	}
	c.mu.Lock()
	c.addr = addr
	c.mu.Unlock()
	return nil
}

func callOutcome(err error, o ganger.Outcome) ganger.Outcome {
	if OutOfFiles(err) {
		return ganger.NoFiles
	}
	return o
}

// ready dials the container until a connect succeeds, with a doubling
// backoff, and gives up when ctx ends or the container exits. The
// connection that succeeds is kept for the container's first user.
func (c *Container) ready(ctx context.Context, r Request) error {
	backoff := max(r.Backoff, time.Millisecond)
	d := net.Dialer{Timeout: time.Second}
	addr := c.Addr()
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.mu.Lock()
			c.warm = conn.(*net.TCPConn)
			c.mu.Unlock()
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-c.Exited():
			t.Stop()
			return ganger.Fail(ganger.Exited, &ExitError{Exit: c.Exit(), output: c.lastOutput})
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
		backoff = min(backoff*2, max(r.BackoffMax, backoff))
	}
}

func (c *Container) lastOutput() string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	logs, err := c.m.b.Logs(ctx, c.ID(), logLines)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	return logs
}

// isolatedGone reports whether a create failed for want of one of Ganger's
// own networks, or because two nodes made it at once (see EnsureNetwork).
func (f *Fleet) isolatedGone(spec ganger.Spec, err error) bool {
	msg := err.Error()
	return f.isolatedSpec(spec.Network).Name != "" && strings.Contains(msg, "network") &&
		(strings.Contains(msg, "not found") || strings.Contains(msg, "ambiguous"))
}

// isolatedSpec is the spec of the node's isolated network of that name, or
// none if the name is not one of them.
func (f *Fleet) isolatedSpec(name string) ganger.NetworkSpec {
	for _, n := range ganger.IsolatedNetworks(f.opt.Node) {
		if n.Name == name {
			return n
		}
	}
	return ganger.NetworkSpec{}
}
