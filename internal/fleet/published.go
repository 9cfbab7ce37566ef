package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/ganger-dev/ganger"
)

// Published returns the host port its daemon bound each published port of
// the container to (container port → host port): those of its
// Spec.Publish, and its Spec.Port when the daemon dials published ports.
// Clients reach them at Host. It fails before the container is created,
// and when it is not running.
func (c *Container) Published(ctx context.Context) (map[int]int, error) {
	id := c.ID()
	if id == "" {
		return nil, fmt.Errorf("published ports of %s on %s: not created yet", c.ref.Name, c.ref.Daemon)
	}
	return c.m.b.Published(ctx, id)
}

// NetworkGateway returns the gateway of a network on a daemon.
func (f *Fleet) NetworkGateway(ctx context.Context, daemon, network string) (string, error) {
	m := f.member(daemon)
	if m == nil {
		return "", fmt.Errorf("no daemon %s", daemon)
	}
	return m.b.NetworkGateway(ctx, network)
}

// Stop stops the container gracefully (SIGTERM, SIGKILL after grace),
// leaving it to Destroy to remove: a cluster member that leaves shuts
// down as its processes expect.
func (c *Container) Stop(ctx context.Context, grace time.Duration) error {
	id := c.ID()
	if id == "" {
		return nil
	}
	return c.m.b.Stop(ctx, id, grace)
}

// NetInfo is where the container is on its network, and its gateway.
func (c *Container) NetInfo(ctx context.Context) (ganger.NetInfo, error) {
	id := c.ID()
	if id == "" {
		return ganger.NetInfo{}, fmt.Errorf("network of %s on %s: not created yet", c.ref.Name, c.ref.Daemon)
	}
	return c.m.b.NetInfo(ctx, id)
}

// Host is the address (a host, no port) where its daemon's published
// ports are reachable: the daemon's advertise address.
func (c *Container) Host() string { return c.m.b.Advertise() }

// DialAddrs returns where Ganger dials each of ports of the container
// (its Spec.Port and Spec.Dial ports).
func (c *Container) DialAddrs(ctx context.Context, ports []int) (map[int]string, error) {
	id := c.ID()
	if id == "" {
		return nil, fmt.Errorf("addresses of %s on %s: not created yet", c.ref.Name, c.ref.Daemon)
	}
	return c.m.b.DialAddrs(ctx, id, ports)
}
