package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/sched"
)

// container is one running container of a service: what a session borrows
// (the design's lease) and gives back, to be destroyed or reused.
type container struct {
	conf  *conf        // the configuration it was made from
	lease *sched.Lease // its slot on its daemon
	name  string       // container name, unique on its daemon
	id    string       // container id (or name, if create was cut short)
	addr  string       // where Ganger dials it
	warm  *net.TCPConn // the readiness connection, kept for its first session
	born  time.Time

	// Guarded by the supply that holds the container.
	uses    int  // sessions it has served
	conns   int  // live sessions (shared mode)
	dead    bool // it exited, or its daemon went down
	unwatch func()
}

func (c *container) daemon() string { return c.lease.Daemon() }

// exitError is a container that exited before it was ready.
type exitError struct {
	exit ganger.Exit
	logs string
}

func (e *exitError) Error() string {
	return fmt.Sprintf("container exited with code %d before it was ready", e.exit.Code)
}
func (e *exitError) Unwrap() error { return errExited }

// launch waits in the queue for room (gone bounds the wait: the client
// leaving, the queue timeout), then creates and starts a container on the
// daemon the scheduler chose and waits until it answers. If that daemon
// fails a call and turns out to be down, it tries another. On error no
// container is left: anything created is being removed.
func (s *Service) launch(gone context.Context, cf *conf, id string, log *slog.Logger) (*container, error) {
	for attempt := 1; ; attempt++ {
		lease, err := s.acquire(gone, cf)
		if err != nil {
			return nil, err
		}
		c := &container{conf: cf, lease: lease, born: time.Now()}
		ctx, cancel := context.WithTimeoutCause(gone, cf.cfg.Ready.Timeout.D(), errNotReady)
		err = s.boot(ctx, c, id)
		cancel()
		if err == nil {
			s.cluster.Metrics.ContainerStart.WithLabelValues(s.name, c.daemon()).Observe(time.Since(c.born).Seconds())
			return c, nil
		}
		s.destroy(c, log)
		var se stepError
		if attempt == placeAttempts || gone.Err() != nil || !errors.As(err, &se) || !s.cluster.suspect(c.daemon()) {
			return nil, err
		}
		log.Warn("daemon failed and is down; trying another", "daemon", c.daemon(), "err", err)
	}
}

// acquire waits in the service's queue, up to its timeout, for a slot.
func (s *Service) acquire(gone context.Context, cf *conf) (*sched.Lease, error) {
	q := cf.cfg.Queue
	ctx, cancel := context.WithTimeoutCause(gone, max(q.Timeout.D(), time.Nanosecond), errQueueWait)
	defer cancel()
	t0 := time.Now()
	lease, err := s.cluster.Sched.Acquire(ctx, s.name)
	s.cluster.Metrics.QueueWait.WithLabelValues(s.name).Observe(time.Since(t0).Seconds())
	if err != nil && ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return lease, err
}

// boot creates and starts c and waits until it answers; the connection
// that proved it is kept in c.warm.
func (s *Service) boot(ctx context.Context, c *container, id string) error {
	b := s.cluster.Backend(c.daemon())
	spec := s.sessionSpec(c.conf, id)
	c.name, c.id = spec.Name, spec.Name // removal by name covers a create cut short
	s.setLive(c.daemon(), c.name, true)
	cid, err := b.Create(ctx, spec)
	if err != nil {
		return stepError{outcomeCreate, err}
	}
	c.id = cid
	c.addr, err = b.Start(ctx, cid, spec.Port)
	if err != nil {
		return stepError{outcomeStart, err}
	}
	c.warm, err = s.ready(ctx, c)
	return err
}

// ready dials c until a connect succeeds, with a doubling backoff, and
// gives up when ctx ends or the container exits. The exit is watched beside
// the dials, not before them, and only until ready.
func (s *Service) ready(ctx context.Context, c *container) (*net.TCPConn, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := s.cluster.Backend(c.daemon())
	go func() {
		select {
		case e := <-b.Wait(ctx, c.id):
			if e.Err != nil { // the watch failed, not the container
				cancel(stepError{outcomeStart, fmt.Errorf("watch container: %w", e.Err)})
				return
			}
			cancel(&exitError{exit: e, logs: s.lastOutput(b, c.id)})
		case <-ctx.Done():
		}
	}()
	r := c.conf.cfg.Ready
	backoff := r.Backoff.D()
	d := net.Dialer{Timeout: time.Second}
	for {
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err == nil {
			return conn.(*net.TCPConn), nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		}
		backoff = min(backoff*2, r.BackoffMax.D())
	}
}

func (s *Service) lastOutput(b Backend, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	logs, err := b.Logs(ctx, id, logLines)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	return logs
}

// dial opens a new connection to a ready container, or hands over the warm
// one if it is still open. A failed dial means the container is gone. The
// caller must own c (a pooled container) or hold its supply's lock only
// around takeWarm (a shared one).
func (c *container) dial() (*net.TCPConn, error) { return dialWarm(c.takeWarm(), c.addr) }

func (c *container) takeWarm() *net.TCPConn {
	w := c.warm
	c.warm = nil
	return w
}

func dialWarm(w *net.TCPConn, addr string) (*net.TCPConn, error) {
	if w != nil {
		if alive(w) {
			return w, nil
		}
		w.Close()
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// destroy removes c in the background, forced and retried, and frees its
// slot once it is gone. The container counts as the service's until then.
func (s *Service) destroy(c *container, log *slog.Logger) {
	if c.warm != nil {
		c.warm.Close()
	}
	s.cleanup.Add(1)
	go s.remove(c, log)
}

// watch calls gone once if c exits (or its watch fails) before ctx ends.
func (s *Service) watch(ctx context.Context, c *container, gone func()) {
	go func() {
		select {
		case <-s.cluster.Backend(c.daemon()).Wait(ctx, c.id):
			gone()
		case <-ctx.Done():
		}
	}()
}
