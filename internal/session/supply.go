package session

import (
	"context"
	"log/slog"
	"net"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
)

// supply gives sessions ready containers and takes them back. Each
// service has one, by its mode.
type supply interface {
	// get returns a ready container and a connection to it for a session.
	// from says where it came from: "new", "pool" or "shared".
	get(gone context.Context, cf *conf, session string, log *slog.Logger) (c *container, conn *net.TCPConn, from string, err error)
	// put takes a container back after a session; reusable says the
	// session ended cleanly, so the container may serve again.
	put(c *container, reusable bool, log *slog.Logger)
	// perSession reports whether each container serves one session only.
	perSession() bool
	// ready returns the containers ready and waiting, and how many are meant to.
	ready() (n, target int)
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
	conf *conf // the configuration it was made from

	uses    int  // sessions it has served
	dead    bool // it exited
	unwatch func()
}

// launch has the fleet make a container for the service, named after id;
// gone ending (the client leaving) abandons it.
func (s *Service) launch(gone context.Context, cf *conf, id string, log *slog.Logger) (*container, error) {
	r := cf.cfg.Ready
	fc, err := s.env.Fleet.Launch(gone, fleet.Request{
		Service:      s.name,
		Spec:         s.sessionSpec(cf, id),
		QueueTimeout: cf.cfg.Queue.Timeout.D(),
		ReadyTimeout: r.Timeout.D(),
		Backoff:      r.Backoff.D(),
		BackoffMax:   r.BackoffMax.D(),
		Log:          log,
	})
	if err != nil {
		return nil, err
	}
	return &container{Container: fc, conf: cf}, nil
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
