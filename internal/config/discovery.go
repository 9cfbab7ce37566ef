package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ganger-dev/ganger"
)

// Discovery is where Ganger finds Docker hosts besides daemons: agents
// registered in etcd.
type Discovery struct {
	Etcd *Etcd `yaml:"etcd"`
	// DockerTLS is the client certificate used for discovered tcp://
	// daemons (an agent advertises its daemon's address, not credentials).
	DockerTLS *TLS `yaml:"docker_tls"`
	// Dial is how Ganger reaches containers on discovered daemons: auto
	// (default: container for unix://, published for tcp://), published
	// or container.
	Dial ganger.DialMode `yaml:"dial"`
	// MaxStarts caps creates and starts in flight per discovered daemon.
	// Default 8.
	MaxStarts int `yaml:"max_starts"`
}

// Etcd is an etcd cluster and the key prefix Ganger uses there.
type Etcd struct {
	Endpoints    []string `yaml:"endpoints"`
	Prefix       string   `yaml:"prefix"`
	TLS          *TLS     `yaml:"tls"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	// LostGrace is how long a host's key may be gone before the host is
	// treated as lost (no new containers). Default 15s.
	LostGrace Duration `yaml:"lost_grace"`
	// TTL is the lease of this node's own registration. Default 10s.
	TTL Duration `yaml:"ttl"`
}

// Discovery defaults.
const (
	DefaultEtcdPrefix = "/ganger/"
	DefaultLostGrace  = 15 * time.Second
	DefaultNodeTTL    = 10 * time.Second
)

// Discovers reports whether hosts are discovered through etcd.
func (c *Config) Discovers() bool { return c.Discovery.Etcd != nil }

func (d *Discovery) applyDefaults() {
	if d.Dial == "" {
		d.Dial = ganger.DialAuto
	}
	if d.MaxStarts == 0 {
		d.MaxStarts = DefaultMaxStarts
	}
	if e := d.Etcd; e != nil {
		if e.Prefix == "" {
			e.Prefix = DefaultEtcdPrefix
		}
		if e.LostGrace == 0 {
			e.LostGrace = Duration(DefaultLostGrace)
		}
		if e.TTL == 0 {
			e.TTL = Duration(DefaultNodeTTL)
		}
	}
}

// EtcdPassword reads the etcd password file ("" without one).
func (e *Etcd) EtcdPassword() (string, error) {
	if e.PasswordFile == "" {
		return "", nil
	}
	s, err := ReadSecretFile(e.PasswordFile)
	return strings.TrimSpace(s), err
}

func (v *validator) discovery(c *Config) {
	d := c.Discovery
	if d.Etcd == nil {
		if d.DockerTLS != nil {
			v.fail("discovery.docker_tls", "applies with discovery.etcd only")
		}
		return
	}
	e := d.Etcd
	if len(e.Endpoints) == 0 {
		v.fail("discovery.etcd.endpoints", "missing: etcd's client URLs, e.g. http://127.0.0.1:2379")
	}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail(fmt.Sprintf("discovery.etcd.endpoints[%d]", i), "want http://host:port or https://host:port, got %q", ep)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
		v.fail("discovery.etcd.prefix", "want a key prefix that starts and ends with '/', got %q", e.Prefix)
	}
	if e.LostGrace < 0 {
		v.fail("discovery.etcd.lost_grace", "must not be negative")
	}
	if e.TTL.D() < 2*time.Second {
		v.fail("discovery.etcd.ttl", "want at least 2s, got %s", e.TTL.D())
	}
	if e.PasswordFile != "" {
		if e.Username == "" {
			v.fail("discovery.etcd.username", "missing: password_file needs a username")
		}
		v.secretFile("discovery.etcd.password_file", e.PasswordFile)
	} else if e.Username != "" {
		v.fail("discovery.etcd.password_file", "missing: username needs a password_file")
	}
	v.tlsFiles("discovery.etcd.tls", e.TLS)
	v.tlsFiles("discovery.docker_tls", d.DockerTLS)
	if !oneOf(d.Dial, ganger.DialAuto, ganger.DialPublished, ganger.DialContainer) {
		v.fail("discovery.dial", "want auto, published or container, got %q", d.Dial)
	}
	if d.MaxStarts < 1 {
		v.fail("discovery.max_starts", "want at least 1, got %d", d.MaxStarts)
	}
}

// tlsFiles checks a {ca, cert, key} block's files.
func (v *validator) tlsFiles(p string, t *TLS) {
	if t == nil {
		return
	}
	for _, k := range []struct{ key, file string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
		if k.file == "" {
			v.fail(p+"."+k.key, "missing: want the path of a PEM file")
		} else if _, err := os.Stat(k.file); err != nil {
			v.fail(p+"."+k.key, "cannot read %s: %v", k.file, err)
		}
	}
}

// Resolve fills in a daemon's defaults and checks it, as a configured
// daemon is: for a daemon found at run time (an agent's host).
func (d *Daemon) Resolve() error {
	d.applyDefaults()
	v := &validator{pos: &positions{}}
	v.daemon("daemon "+d.Name, *d)
	if len(v.errs) > 0 {
		return Errors(v.errs)
	}
	return nil
}
