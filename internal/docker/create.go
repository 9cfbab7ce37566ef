package docker

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
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
	img, err := d.imageFor(ctx, spec)
	if err != nil {
		return "", err
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        nilIfEmpty(spec.Cmd),
		Entrypoint: nilIfEmpty(spec.Entrypoint),
		Env:        spec.Env,
		User:       cmp.Or(spec.User, img.user),
		Labels:     spec.Labels,
	}
	host := d.hostConfig(spec)
	if spec.Init.Enabled() {
		if err := underInit(cfg, host, spec, img); err != nil {
			return "", fmt.Errorf("create %s on %s: %w", spec.Name, d.name, err)
		}
	}
	for _, v := range spec.Volumes {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target,
			VolumeOptions: &mount.VolumeOptions{Labels: v.Labels}})
	}
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

// imageConfig is what Create needs of an image: the user it names (or
// nobody) and the command it runs.
type imageConfig struct {
	id         string
	user       string
	entrypoint []string
	cmd        []string
}

// imageFor is the image config of spec's image, asked of the daemon once
// per reference and kept until the reference names another image (see
// Start) or the image is pulled or made present again. It is asked only
// when Create needs it: the service names no user, or runs under
// ganger-init with the image's own command.
func (d *Daemon) imageFor(ctx context.Context, spec ganger.Spec) (imageConfig, error) {
	need := spec.User == "" || spec.Init.Enabled() && spec.Init.Config == "" && len(spec.Entrypoint) == 0
	if !need {
		return imageConfig{}, nil
	}
	if c, ok := d.images.Load(spec.Image); ok {
		return *c.(*imageConfig), nil
	}
	img, err := d.cli.ImageInspect(ctx, spec.Image)
	if err != nil {
		return imageConfig{}, fmt.Errorf("create %s on %s: inspect image %s: %w", spec.Name, d.name, spec.Image, err)
	}
	return d.remember(spec.Image, img.InspectResponse), nil
}

// remember keeps what an inspect of ref said.
func (d *Daemon) remember(ref string, img image.InspectResponse) imageConfig {
	c := imageConfig{id: img.ID, user: nobody}
	if img.Config != nil {
		c.user = cmp.Or(img.Config.User, nobody)
		c.entrypoint, c.cmd = img.Config.Entrypoint, img.Config.Cmd
	}
	d.images.Store(ref, &c)
	return c
}

// forgetIfNot drops what is kept of ref unless it is of the image id: a
// container created from ref turned out to be of another image (the
// reference was re-tagged), so the next create asks again.
func (d *Daemon) forgetIfNot(ref, id string) {
	if c, ok := d.images.Load(ref); ok && c.(*imageConfig).id != id {
		d.images.CompareAndDelete(ref, c)
	}
}

// underInit makes the container run under ganger-init, from its volume
// mounted read-only: ganger-init runs the command Docker would have run
// (the service's entrypoint and cmd, else the image's; overriding the
// entrypoint drops the image's cmd, so both are carried), or, with a
// config, the processes it lists.
func underInit(cfg *container.Config, host *container.HostConfig, spec ganger.Spec, img imageConfig) error {
	host.Mounts = append(host.Mounts, mount.Mount{
		Type: mount.TypeVolume, Source: spec.Init.Volume(), Target: initDir, ReadOnly: true,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true},
	})
	if spec.Init.Config != "" {
		cfg.Entrypoint, cfg.Cmd = []string{initPath, "--config-env", InitConfigEnv, "--control", "none"}, nil
		cfg.Env = append(slices.Clone(cfg.Env), InitConfigEnv+"="+spec.Init.Config)
		return nil
	}
	argv := slices.Concat(spec.Entrypoint, spec.Cmd)
	switch {
	case len(spec.Entrypoint) > 0:
	case len(spec.Cmd) > 0:
		argv = slices.Concat(img.entrypoint, spec.Cmd)
	default:
		argv = slices.Concat(img.entrypoint, img.cmd)
	}
	if len(argv) == 0 {
		return fmt.Errorf("image %s names no command, nor does the service: nothing to run under ganger-init", spec.Image)
	}
	cfg.Entrypoint, cfg.Cmd = append([]string{initPath, "--"}, argv...), nil
	return nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
