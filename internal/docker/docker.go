// Package docker is Ganger's Backend over one Docker Engine. It is the only
// package that imports the moby client.
package docker

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/moby/moby/client"

	"github.com/ganger-dev/ganger"
)

// Config says where a daemon is and how Ganger reaches its containers.
type Config struct {
	Name      string
	Host      string // unix:///path or tcp://host:port
	TLS       *TLS   // client certificates for tcp://; nil: none
	Advertise string // host part of the address Ganger dials in published mode
	PublishIP string // host IP that ports are published on
	Dial      ganger.DialMode
}

// TLS names the files of a daemon's client TLS.
type TLS struct{ CA, Cert, Key string }

// Daemon is one Docker Engine that Ganger places containers on.
type Daemon struct {
	name      string
	host      string
	cli       *client.Client
	advertise string // host part of the address Ganger dials in published mode
	publishIP string
	dialMode  ganger.DialMode
	creds     *Credentials
	log       *slog.Logger

	images      sync.Map    // image ref: its *imageConfig
	noDiskQuota atomic.Bool // the daemon refused a disk quota once
}

// New returns a Daemon for cfg that pulls with creds (nil: anonymously).
// It does not contact the engine: Ping does.
func New(cfg Config, creds *Credentials, log *slog.Logger) (*Daemon, error) {
	opts := []client.Opt{client.WithHost(cfg.Host)}
	if cfg.TLS != nil {
		opts = append(opts, client.WithTLSClientConfig(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key))
		if u, err := url.Parse(cfg.Host); err == nil && u.Scheme == "tcp" {
			opts = append(opts, client.WithScheme("https"))
		}
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s (%s): %w", cfg.Name, cfg.Host, err)
	}
	return &Daemon{
		name:      cfg.Name,
		host:      cfg.Host,
		cli:       cli,
		advertise: cfg.Advertise,
		publishIP: cfg.PublishIP,
		dialMode:  cfg.Dial,
		creds:     creds,
		log:       log.With("daemon", cfg.Name),
	}, nil
}

// Host is the engine's address.
func (d *Daemon) Host() string { return d.host }

// Name is the daemon's configured name.
func (d *Daemon) Name() string { return d.name }

// Ping checks that the engine answers and returns its negotiated API version.
func (d *Daemon) Ping(ctx context.Context) (string, error) {
	if _, err := d.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", fmt.Errorf("ping daemon %s: %w", d.name, err)
	}
	return d.cli.ClientVersion(), nil
}

// Close releases the client's connections.
func (d *Daemon) Close() error { return d.cli.Close() }
