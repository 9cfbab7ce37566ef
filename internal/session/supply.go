package session

import (
	"context"
	"log/slog"
	"net"
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
	if s.conf.Load().cfg.Mode == "shared" {
		return newShared(s)
	}
	return newPool(s)
}
