package docker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Published returns the host port the daemon bound each published port of
// a started container to (container port → host port): every port Create
// published, those of spec.Publish and, in published dial mode, spec.Port.
// It fails if the container is not running or a port is not bound yet.
func (d *Daemon) Published(ctx context.Context, id string) (map[int]int, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect container %s on %s: %w", short(id), d.name, err)
	}
	c := res.Container
	if c.State == nil || !c.State.Running {
		state := "unknown"
		if c.State != nil {
			state = string(c.State.Status)
		}
		return nil, fmt.Errorf("published ports of container %s on %s: it is not running (%s)", short(id), d.name, state)
	}
	if c.NetworkSettings == nil {
		return nil, fmt.Errorf("published ports of container %s on %s: no network settings", short(id), d.name)
	}
	// What Create asked for is in the host config; what the daemon bound,
	// in the network settings.
	var asked network.PortMap
	if c.HostConfig != nil {
		asked = c.HostConfig.PortBindings
	}
	out := make(map[int]int, len(asked))
	for p := range asked {
		if p.Proto() != network.TCP {
			continue
		}
		hp, err := hostPort(c.NetworkSettings.Ports[p])
		if err != nil {
			return nil, fmt.Errorf("published ports of container %s on %s: port %d/tcp: %w", short(id), d.name, p.Num(), err)
		}
		out[int(p.Num())] = hp
	}
	return out, nil
}

// hostPort is the host port of the first binding that has one.
func hostPort(bindings []network.PortBinding) (int, error) {
	for _, b := range bindings {
		if b.HostPort == "" {
			continue
		}
		n, err := strconv.Atoi(b.HostPort)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("bound to host port %q", b.HostPort)
		}
		return n, nil
	}
	return 0, fmt.Errorf("not bound yet")
}

// Advertise is the address (a host, no port) where the ports this daemon
// publishes are reachable.
func (d *Daemon) Advertise() string { return d.advertise }
