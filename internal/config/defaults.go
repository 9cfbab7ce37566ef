package config

import (
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/ganger-dev/ganger"
)

// DefaultDockerHost is the engine address used when neither the config nor
// DOCKER_HOST names one.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// UnmarshalYAML decodes a service over its defaults, so that a value written
// as 0 stays 0 and a key left out takes its default.
func (s *Service) UnmarshalYAML(n *yaml.Node) error {
	type plain Service
	p := plain(DefaultService())
	err := n.Decode(&p)
	if p.Mode == ganger.Instance && !hasKey(n, "placement") {
		p.Placement = ganger.Binpack // instances fill hosts before new ones are used
	}
	if p.Mode == ganger.ClusterMode && !hasKey(n, "network") {
		p.Network = "bridge" // members reach each other; the isolated network forbids it
	}
	if !hasKey(valueOf(n, "cluster"), "min_ready") {
		p.Cluster.MinReady = p.Cluster.Size
	}
	if p.Init == InitGanger && !hasKey(valueOf(n, "ready"), "backoff") {
		// ganger-init starts the command about 1ms after the container:
		// the first retry catches it, where 5ms would be lost waiting.
		p.Ready.Backoff = Duration(DefaultInitReadyBackoff)
	}
	if in := &p.Instance; in.Access == "proxy" {
		if in.PortRange == "" {
			in.PortRange = DefaultPortRange
		}
		if in.ListenIP == "" {
			in.ListenIP = DefaultProxyListenIP
		}
	}
	*s = Service(p)
	s.decodeErr = err // kept, not returned: yaml.v3 drops a list element whose decoding fails
	return nil
}

// DefaultService is a service with every default filled in.
func DefaultService() Service {
	return Service{
		Network:   DefaultNetwork,
		Egress:    "allow",
		Start:     "connect",
		Mode:      ganger.PerConnection,
		Reuse:     1,
		Shared:    Shared{Replicas: 1, IdleStop: Duration(DefaultIdleStop)},
		Instance:  defaultInstance(),
		Cluster:   defaultCluster(),
		Pull:      ganger.PullMissing,
		Placement: ganger.Spread,
		Queue:     Queue{Max: DefaultQueueMax, Timeout: Duration(DefaultQueueTimeout)},
		Ready: Ready{
			Timeout:    Duration(DefaultReadyTimeout),
			Backoff:    Duration(DefaultReadyBackoff),
			BackoffMax: Duration(DefaultBackoffMax),
			FirstByte:  Duration(DefaultReadyFirst),
		},
		Timeouts: Timeouts{
			Idle:       Duration(DefaultIdle),
			FirstByte:  Duration(DefaultFirstByte),
			HalfClosed: Duration(DefaultHalfClosed),
			Session:    Duration(DefaultSession),
			Drain:      Duration(DefaultDrain),
		},
		Limits: Limits{
			Memory:          DefaultMemory,
			CPUs:            DefaultCPUs,
			Pids:            DefaultPids,
			NoNewPrivileges: true,
			NoFile:          DefaultNoFile,
			Log:             LogLimits{MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles},
		},
	}
}

// UnmarshalYAML decodes a daemon over its defaults.
func (d *Daemon) UnmarshalYAML(n *yaml.Node) error {
	type plain Daemon
	p := plain(Daemon{MaxContainers: DefaultMaxContainers, MaxStarts: DefaultMaxStarts, Dial: ganger.DialAuto})
	err := n.Decode(&p)
	*d = Daemon(p)
	d.decodeErr = err
	return nil
}

// DaemonFromEnv is the daemon used when the config lists none: DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, else the default socket.
func DaemonFromEnv() Daemon {
	d := Daemon{Name: "local", Host: os.Getenv("DOCKER_HOST"), MaxContainers: DefaultMaxContainers, MaxStarts: DefaultMaxStarts, Dial: ganger.DialAuto}
	if d.Host == "" {
		d.Host = DefaultDockerHost
	}
	if os.Getenv("DOCKER_TLS_VERIFY") != "" {
		dir := os.Getenv("DOCKER_CERT_PATH")
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, ".docker")
		}
		d.TLS = &TLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	}
	return d
}

// defaultConfig is the top level's defaults, decoded over.
func defaultConfig() Config {
	return Config{
		Reconcile: Duration(DefaultReconcile),
		API:       API{Listen: DefaultAPIListen, MaxConnections: DefaultAPIMaxConnections},
		Health:    Health{Interval: Duration(DefaultHealthEvery), Timeout: Duration(DefaultHealthEvery), Failures: DefaultHealthFails},
		Store:     Store{Driver: "sqlite", Path: DefaultStorePath},
	}
}

func (c *Config) applyDefaults() {
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if len(c.Daemons) == 0 && c.Discovery.Etcd == nil {
		c.Daemons = []Daemon{DaemonFromEnv()} // with discovery, no implicit local daemon
	}
	c.Discovery.applyDefaults()
	for i := range c.Daemons {
		c.Daemons[i].applyDefaults()
	}
	for i := range c.Services {
		s := &c.Services[i]
		if r := &s.PerIPRate; r.Rate > 0 && r.Burst == 0 {
			r.Burst = max(1, int(math.Ceil(r.Rate)))
		}
		if s.Mode == ganger.Instance && len(s.Ports) == 0 && s.Port != 0 {
			s.Ports = []int{s.Port}
		}
		if s.Mode == ganger.ClusterMode && s.Port == 0 && len(s.Ports) > 0 {
			s.Port = s.Ports[0]
		}
		if s.Mode == ganger.Instance && s.Port == 0 && len(s.Ports) > 0 {
			s.Port = s.Ports[0] // readiness is checked on the first
		}
		if s.Pool.Max == 0 {
			s.Pool.Max = s.Pool.Min
			if s.Pool.Max == 0 && s.Reuse > 1 {
				s.Pool.Max = 1
			}
		}
	}
}

func (d *Daemon) applyDefaults() {
	u, err := url.Parse(d.Host)
	if err != nil {
		return // reported by validate
	}
	if d.Advertise == "" {
		if u.Scheme == "unix" {
			d.Advertise = "127.0.0.1"
		} else {
			d.Advertise = u.Hostname()
		}
	}
	if d.PublishIP == "" {
		if net.ParseIP(d.Advertise) != nil {
			d.PublishIP = d.Advertise
		} else {
			d.PublishIP = "0.0.0.0"
		}
	}
	if d.Dial == ganger.DialAuto {
		d.Dial = ganger.DialPublished
		if u.Scheme == "unix" {
			d.Dial = ganger.DialContainer
		}
	}
}
