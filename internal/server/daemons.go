package server

import (
	"log/slog"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/fleet"
)

// Daemons returns a Docker backend for every configured daemon, pulling
// with the configured registry credentials (then the Docker CLI's).
func Daemons(cfg *config.Config, log *slog.Logger) ([]fleet.Daemon, error) {
	creds, err := credentials(cfg)
	if err != nil {
		return nil, err
	}
	var out []fleet.Daemon
	for _, dc := range cfg.Daemons {
		d, err := docker.New(DockerConfig(dc), creds, log)
		if err != nil {
			for _, o := range out {
				o.Backend.Close()
			}
			return nil, err
		}
		out = append(out, fleet.Daemon{Name: dc.Name, Backend: d, MaxContainers: dc.MaxContainers, MaxStarts: dc.MaxStarts})
	}
	return out, nil
}

// credentials are the configured registry credentials (then the Docker
// CLI's) every daemon pulls with.
func credentials(cfg *config.Config) (*docker.Credentials, error) {
	regs := make([]docker.Registry, 0, len(cfg.Registries))
	for _, r := range cfg.Registries {
		regs = append(regs, docker.Registry{Host: r.Host, Username: r.Username, Password: r.Password, PasswordFile: r.PasswordFile})
	}
	return docker.LoadCredentials(regs)
}

// DockerConfig is the Docker backend's view of a configured daemon.
func DockerConfig(dc config.Daemon) docker.Config {
	c := docker.Config{Name: dc.Name, Host: dc.Host, Advertise: dc.Advertise, PublishIP: dc.PublishIP, Dial: dc.Dial}
	if dc.TLS != nil {
		c.TLS = &docker.TLS{CA: dc.TLS.CA, Cert: dc.TLS.Cert, Key: dc.TLS.Key}
	}
	return c
}

// NewDocker returns a node for cfg over its configured Docker daemons.
func NewDocker(cfg *config.Config, log *slog.Logger) (*Server, error) {
	daemons, err := Daemons(cfg, log)
	if err != nil {
		return nil, err
	}
	return New(cfg, daemons, log)
}
