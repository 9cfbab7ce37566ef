package docker

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// nobody is the user a container runs as when neither the service nor the
// image names one: never root by default.
const nobody = "65534:65534"

// Create creates (but does not start) a container from spec and returns its
// id. Security is not optional: every capability is dropped but those
// listed, privileges cannot be gained, the container is never privileged,
// no host path (the Docker socket least of all) is mounted, it runs as
// nobody unless the service or the image names a user, and its logs, open
// files and (where the daemon can) disk are capped. Its port is published
// only when Ganger dials published ports: otherwise nothing but Ganger
// reaches it (the same for the ports of spec.Dial). The ports of spec.Publish are published whatever the dial
// mode, each on a host port the daemon picks (see Published).
func (d *Daemon) Create(ctx context.Context, spec ganger.Spec) (string, error) {
	port, ok := network.PortFrom(uint16(spec.Port), network.TCP)
	if !ok {
		return "", fmt.Errorf("create %s on %s: invalid port %d", spec.Name, d.name, spec.Port)
	}
	user, err := d.userFor(ctx, spec)
	if err != nil {
		return "", err
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        nilIfEmpty(spec.Cmd),
		Entrypoint: nilIfEmpty(spec.Entrypoint),
		Env:        spec.Env,
		User:       user,
		Labels:     spec.Labels,
	}
	host := d.hostConfig(spec)
	publish := map[network.Port]bool{}
	if d.dialMode == ganger.DialPublished {
		publish[port] = true
		for _, n := range spec.Dial {
			p, ok := network.PortFrom(uint16(n), network.TCP)
			if n < 1 || n > 65535 || !ok {
				return "", fmt.Errorf("create %s on %s: invalid port to dial %d", spec.Name, d.name, n)
			}
			publish[p] = true
		}
	}
	for _, n := range spec.Publish {
		p, ok := network.PortFrom(uint16(n), network.TCP)
		if n < 1 || n > 65535 || !ok {
			return "", fmt.Errorf("create %s on %s: invalid port to publish %d", spec.Name, d.name, n)
		}
		publish[p] = true
	}
	if len(publish) > 0 {
		hostIP, err := netip.ParseAddr(d.publishIP)
		if err != nil {
			return "", fmt.Errorf("create %s on %s: publish ip %q: %w", spec.Name, d.name, d.publishIP, err)
		}
		cfg.ExposedPorts, host.PortBindings = network.PortSet{}, network.PortMap{}
		for p := range publish {
			cfg.ExposedPorts[p] = struct{}{}
			b := network.PortBinding{HostIP: hostIP} // HostPort empty: the daemon picks
			if hp := spec.HostPorts[int(p.Num())]; hp > 0 {
				b.HostPort = strconv.Itoa(hp)
			}
			host.PortBindings[p] = []network.PortBinding{b}
		}
	}
	res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spec.Name, Config: cfg, HostConfig: host})
	if err != nil && host.StorageOpt != nil && strings.Contains(err.Error(), "storage-opt") {
		d.noDiskQuota.Store(true)
		d.log.Warn("limits.disk cannot be enforced on this daemon (its storage driver cannot cap a container's disk): containers run without a disk quota; use limits.read_only with sized tmpfs", "err", err)
		host.StorageOpt = nil
		res, err = d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spec.Name, Config: cfg, HostConfig: host})
	}
	if err != nil {
		return "", fmt.Errorf("create container %s on %s: %w", spec.Name, d.name, err)
	}
	return res.ID, nil
}

func (d *Daemon) hostConfig(spec ganger.Spec) *container.HostConfig {
	l := spec.Limits
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.Network),
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CapDrop:        []string{"ALL"},
		CapAdd:         l.CapAdd,
		ReadonlyRootfs: l.ReadOnly,
		Tmpfs:          l.Tmpfs,
		Resources: container.Resources{
			Memory:     l.Memory,
			MemorySwap: l.Memory, // no swap beyond the memory limit
			NanoCPUs:   l.NanoCPUs,
			PidsLimit:  &l.Pids,
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{}},
	}
	if l.NoNewPrivileges {
		host.SecurityOpt = []string{"no-new-privileges=true"}
	}
	if l.NoFile > 0 {
		host.Resources.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: l.NoFile, Hard: l.NoFile}}
	}
	if l.LogMaxSize > 0 {
		host.LogConfig.Config["max-size"] = strconv.FormatInt(l.LogMaxSize, 10)
		host.LogConfig.Config["max-file"] = strconv.Itoa(max(l.LogMaxFiles, 1))
	}
	if l.Disk > 0 && !d.noDiskQuota.Load() {
		host.StorageOpt = map[string]string{"size": strconv.FormatInt(l.Disk, 10)}
	}
	return host
}

// userFor is the user the container runs as: the service's, else the
// image's, else nobody. The image's answer is cached by reference.
func (d *Daemon) userFor(ctx context.Context, spec ganger.Spec) (string, error) {
	if spec.User != "" {
		return spec.User, nil
	}
	if u, ok := d.imageUsers.Load(spec.Image); ok {
		return u.(string), nil
	}
	img, err := d.cli.ImageInspect(ctx, spec.Image)
	if err != nil {
		return "", fmt.Errorf("create %s on %s: inspect image %s: %w", spec.Name, d.name, spec.Image, err)
	}
	u := nobody
	if img.Config != nil && img.Config.User != "" {
		u = img.Config.User
	}
	d.imageUsers.Store(spec.Image, u)
	return u, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
