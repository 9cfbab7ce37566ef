package docker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// Start starts a created container and returns the address Ganger dials to
// reach its port: the container's own IP when the daemon dials
// "container", else the advertise address and the published host port.
//
// The container's own IP matters for readiness: Docker's userland proxy
// accepts on a published port before the service inside listens, so a
// connect there proves nothing; a connect to the container's IP succeeds
// only once the service really listens.
func (d *Daemon) Start(ctx context.Context, id string, port int) (string, error) {
	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start container %s on %s: %w", short(id), d.name, err)
	}
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect container %s on %s: %w", short(id), d.name, err)
	}
	if c := res.Container; c.Config != nil {
		d.forgetIfNot(c.Config.Image, c.Image)
	}
	addr, err := d.dialAddr(res.Container, port)
	if err != nil {
		return "", fmt.Errorf("container %s on %s: %w", short(id), d.name, err)
	}
	return addr, nil
}

// DialAddrs returns the TCP address that reaches each of the ports of a
// started container (its Spec.Port and Spec.Dial ports).
func (d *Daemon) DialAddrs(ctx context.Context, id string, ports []int) (map[int]string, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect container %s on %s: %w", short(id), d.name, err)
	}
	out := make(map[int]string, len(ports))
	for _, p := range ports {
		addr, err := d.dialAddr(res.Container, p)
		if err != nil {
			return nil, fmt.Errorf("container %s on %s: %w", short(id), d.name, err)
		}
		out[p] = addr
	}
	return out, nil
}

// Stop stops a running container: SIGTERM, then SIGKILL after grace
// (rounded up to a second). One not running, or gone, is no error.
func (d *Daemon) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int((grace + time.Second - 1) / time.Second)
	_, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s on %s: %w", short(id), d.name, err)
	}
	return nil
}

// NetInfo returns the started container's address and its network's
// gateway (the first network it has an address on).
func (d *Daemon) NetInfo(ctx context.Context, id string) (ganger.NetInfo, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return ganger.NetInfo{}, fmt.Errorf("inspect container %s on %s: %w", short(id), d.name, err)
	}
	c := res.Container
	if c.NetworkSettings != nil {
		for _, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				ni := ganger.NetInfo{IP: ep.IPAddress.String()}
				if ep.Gateway.IsValid() {
					ni.Gateway = ep.Gateway.String()
				}
				return ni, nil
			}
		}
	}
	return ganger.NetInfo{}, fmt.Errorf("container %s on %s: no IP address on any network (did it exit at once?)", short(id), d.name)
}

func (d *Daemon) dialAddr(c container.InspectResponse, port int) (string, error) {
	if c.NetworkSettings == nil {
		return "", fmt.Errorf("no network settings (did it exit at once?)")
	}
	if d.dialMode == ganger.DialContainer {
		for _, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				return net.JoinHostPort(ep.IPAddress.String(), strconv.Itoa(port)), nil
			}
		}
		return "", fmt.Errorf("no IP address on any network (did it exit at once?)")
	}
	p, _ := network.PortFrom(uint16(port), network.TCP)
	for _, b := range c.NetworkSettings.Ports[p] {
		if b.HostPort != "" {
			return net.JoinHostPort(d.advertise, b.HostPort), nil
		}
	}
	return "", fmt.Errorf("port %d/tcp is not published (did it exit at once?)", port)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
