// Package docker is Ganger's Backend over one Docker Engine. It is the only
// package that imports the moby client.
package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
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
	tls       *TLS // nil: none
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
		tls:       cfg.TLS,
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
		if why := d.tlsFailure(err); why != "" {
			return "", fmt.Errorf("ping daemon %s (%s): %w: %s: %w", d.name, d.host, ErrTLS, why, err)
		}
		return "", fmt.Errorf("ping daemon %s: %w", d.name, err)
	}
	return d.cli.ClientVersion(), nil
}

// ErrTLS marks a daemon that answers but with which TLS fails: its
// certificate is not trusted, or it refuses Ganger's. Unlike a daemon that
// does not answer, that does not mend by itself.
var ErrTLS = errors.New("TLS handshake failed")

// tlsFailure says in a user's terms why err is a failed TLS handshake with
// the daemon, naming the configured file at fault; "" if it is not one.
// The error chain alone ("x509: certificate signed by unknown authority",
// "remote error: tls: bad certificate") names neither side's files.
func (d *Daemon) tlsFailure(err error) string {
	if d.tls == nil {
		return ""
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Sprintf("the daemon's certificate is not trusted by the CA in %s (tls.ca)", d.tls.CA)
	case errors.As(err, &hostname):
		return fmt.Sprintf("the daemon's certificate is not valid for the host in %s", d.host)
	case errors.As(err, &invalid):
		return "the daemon's certificate is not valid (expired, not yet valid, or not for a server)"
	case errors.As(err, &header) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the daemon does not speak TLS at that address (tls: is for its TLS port, 2376 as a rule)"
	case errors.As(err, &op) && op.Op == "remote error": // an alert the daemon sent
		return d.refused(op.Err)
	}
	return ""
}

// refused says why the daemon sent alert: its refusal of Ganger's client
// certificate, as a rule (Go's TLS stack reports a certificate it does
// not trust, and a missing one, as "bad certificate").
func (d *Daemon) refused(alert error) string {
	switch {
	case !strings.Contains(alert.Error(), "certificate"):
		return "the daemon refused the handshake"
	case d.tls.Cert == "":
		return "the daemon asks for a client certificate, and tls.cert gives none"
	}
	return fmt.Sprintf("the daemon refused Ganger's client certificate %s (tls.cert); it must be signed by a CA the daemon trusts (its --tlscacert)", d.tls.Cert)
}

// Close releases the client's connections.
func (d *Daemon) Close() error { return d.cli.Close() }
