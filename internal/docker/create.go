package docker

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// Create creates (but does not start) a container from spec and returns its
// id. The spec's port is published on the daemon's publish IP with an
// ephemeral host port. Security is not optional: every capability is
// dropped but those listed, the container is never privileged, and no host
// path (the Docker socket least of all) is mounted.
func (d *Daemon) Create(ctx context.Context, spec ganger.Spec) (string, error) {
	port, ok := network.PortFrom(uint16(spec.Port), network.TCP)
	if !ok {
		return "", fmt.Errorf("create %s on %s: invalid port %d", spec.Name, d.name, spec.Port)
	}
	hostIP, err := netip.ParseAddr(d.publishIP)
	if err != nil {
		return "", fmt.Errorf("create %s on %s: publish ip %q: %w", spec.Name, d.name, d.publishIP, err)
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Cmd:          nilIfEmpty(spec.Cmd),
		Entrypoint:   nilIfEmpty(spec.Entrypoint),
		Env:          spec.Env,
		User:         spec.User,
		Labels:       spec.Labels,
		ExposedPorts: network.PortSet{port: {}},
	}
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.Network),
		PortBindings:   network.PortMap{port: {{HostIP: hostIP}}},
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CapDrop:        []string{"ALL"},
		CapAdd:         spec.Limits.CapAdd,
		ReadonlyRootfs: spec.Limits.ReadOnly,
		Tmpfs:          spec.Limits.Tmpfs,
		Resources: container.Resources{
			Memory:     spec.Limits.Memory,
			MemorySwap: spec.Limits.Memory, // no swap beyond the memory limit
			NanoCPUs:   spec.Limits.NanoCPUs,
			PidsLimit:  &spec.Limits.Pids,
		},
	}
	if spec.Limits.NoNewPrivileges {
		host.SecurityOpt = []string{"no-new-privileges:true"}
	}
	res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spec.Name, Config: cfg, HostConfig: host})
	if err != nil {
		return "", fmt.Errorf("create container %s on %s: %w", spec.Name, d.name, err)
	}
	return res.ID, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
