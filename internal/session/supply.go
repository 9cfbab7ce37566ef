package session

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/view"
)

// supply gives sessions ready containers and takes them back. Each
// service has one, by its mode.
type supply interface {
	// hit returns a container ready at once and a connection to it, or
	// none (a miss) without waiting: no Docker call, no start.
	hit(cf *conf, log *slog.Logger) (c *container, conn *net.TCPConn, from string, err error)
	// get returns a ready container and a connection to it for a session.
	// from says where it came from: "new", "pool" or "shared".
	get(gone context.Context, cf *conf, session string, log *slog.Logger) (c *container, conn *net.TCPConn, from string, err error)
	// put takes a container back after a session; reusable says the
	// session ended cleanly, so the container may serve again.
	put(c *container, reusable bool, log *slog.Logger)
	// replied says a session's container has sent its first reply: the
	// background work held back so as not to compete with that first
	// exchange (a refill's create and start) may begin.
	replied()
	// perSession reports whether each container serves one session only.
	perSession() bool
	// view is what an operator sees of the pool, or nil without one.
	view() *view.Pool
	start()   // begin background work
	refresh() // a new configuration: replace what was made from the old
	stop()    // shutdown: destroy every container held
}

func newSupply(s *Service) supply {
	if s.conf.Load().cfg.Mode == ganger.Shared {
		return newShared(s)
	}
	return newPool(s)
}

// container is a fleet container as a supply holds it. The fields below
// conf are guarded by the supply that holds it.
type container struct {
	*fleet.Container
	conf *conf     // the configuration it was made from
	made time.Time // when it was ready

	uses    int  // sessions it has served
	dead    bool // it exited
	unwatch func()
}

// launch has the fleet make a container for the service, named after id,
// waiting at most queue for room; gone ending (the client leaving)
// abandons it.
func (s *Service) launch(gone context.Context, cf *conf, id string, queue time.Duration, log *slog.Logger) (*container, error) {
	r := cf.cfg.Ready
	fc, err := s.env.Fleet.Launch(gone, fleet.Request{
		Service:      s.name,
		Spec:         s.sessionSpec(cf, id),
		QueueTimeout: queue,
		ReadyTimeout: r.Timeout.D(),
		Backoff:      r.Backoff.D(),
		BackoffMax:   r.BackoffMax.D(),
		Log:          log,
	})
	if err != nil {
		return nil, err
	}
	return &container{Container: fc, conf: cf, made: s.now()}, nil
}

// watch calls exited once, in its own goroutine, if c exits before ctx
// ends. It holds no goroutine while it waits.
func watch(ctx context.Context, c *container, exited func()) {
	stop := context.AfterFunc(c.Life(), func() {
		if ctx.Err() == nil {
			exited()
		}
	})
	context.AfterFunc(ctx, func() { stop() })
}
