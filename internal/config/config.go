// Package config loads and validates Ganger's YAML configuration.
//
// Loading is strict: an unknown key, a value of the wrong type, a bad
// duration or size, a duplicate service name or listen address, or a missing
// required key is an error that names the key path and its line. Every
// default is applied here (and written out in examples/ganger.yaml), so the
// rest of Ganger never has to guess.
package config

import (
	"time"

	"github.com/ganger-dev/ganger"
)

// Config is the whole configuration file.
type Config struct {
	// Node is this Ganger node's id: the ganger.owner label on every
	// container it creates. It must survive restarts so that a restarted node
	// recognises what an earlier run left behind. Default: the host name.
	Node string `yaml:"node"`

	// Reconcile is how often Ganger lists its containers on every daemon and
	// removes those no live session owns (a removal that failed, say).
	// Default 1m; 0 disables (start-up and shutdown sweeps still run).
	Reconcile Duration `yaml:"reconcile"`

	Log        Log        `yaml:"log"`
	API        API        `yaml:"api"`
	Limits     Global     `yaml:"limits"`
	Health     Health     `yaml:"health"`
	Registries []Registry `yaml:"registries"`
	Daemons    []Daemon   `yaml:"daemons"`
	Services   []Service  `yaml:"services"`
	Store      Store      `yaml:"store"`

	// InitBinary is the ganger-init executable that services with init:
	// ganger run under; Ganger puts it on every daemon it uses. Relative
	// to the working directory. Default: ganger-init next to the ganger
	// executable.
	InitBinary string `yaml:"init_binary"`

	// Discovery finds more Docker hosts: agents registered in etcd.
	Discovery Discovery `yaml:"discovery"`
	// Autoscale adds and removes hosts through hooks; nil: off.
	Autoscale *Autoscale `yaml:"autoscale"`

	warnings Errors // filled by Parse; see Warnings
	dir      string // the file's directory, set by Load; see Dir
}

// Dir is the directory of the file the configuration was loaded from
// ("" when parsed from bytes): relative paths in it are relative to it.
func (c *Config) Dir() string { return c.dir }

// API configures the HTTP interface: status page, JSON API, metrics.
type API struct {
	// Listen is its address; "" turns it off. Default 127.0.0.1:5480.
	Listen string `yaml:"listen"`
	// Token authorises every call, reads and mutations; without one,
	// mutating calls are refused. Or TokenFile: a file holding it. At
	// least 16 characters.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// ReadToken authorises reads only (status page, JSON reads, metrics).
	// Or ReadTokenFile. At least 16 characters, and not Token.
	ReadToken     string `yaml:"read_token"`
	ReadTokenFile string `yaml:"read_token_file"`
	// PublicRead opens reads to anyone who reaches the API, without a
	// token. Default false: reads need either token, and with neither
	// configured they are refused.
	PublicRead bool `yaml:"public_read"`
	// Hosts are the Host headers the API answers besides localhost,
	// loopback addresses and the address a request arrived on: "host" (any
	// port) or "host:port". A request under another name is refused, so
	// that a DNS-rebinding page cannot read the API. Default none.
	Hosts []string `yaml:"hosts"`
	// MaxConnections caps the API connections open at once; past it new
	// ones wait in the kernel's accept queue. Default 64.
	MaxConnections int `yaml:"max_connections"`
	// Clients are named API clients (a team, a platform): each token may
	// create and manage instances, and each client is its own owner for
	// instance quotas.
	Clients []APIClient `yaml:"clients"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For header is
	// believed (the client address of an anonymous instance owner). From
	// anyone else it is ignored. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// APIClient is one named API client.
type APIClient struct {
	Name string `yaml:"name"`
	// Token, or TokenFile: at least 16 characters, unlike every other.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// DefaultAPIMaxConnections is api.max_connections' default.
const DefaultAPIMaxConnections = 64

// Global caps the whole node.
type Global struct {
	// MaxSessions caps the sessions of every service together; a session
	// counts until its container is removed. 0 means no cap.
	MaxSessions int `yaml:"max_sessions"`
	// MaxConnections caps the client connections open at once over every
	// service; past it new clients wait in the kernel's accept queue. It
	// keeps Ganger within its file descriptors, with a reserve for the API
	// and the daemons. 0 (default): derived from the open-file limit.
	MaxConnections int `yaml:"max_connections"`
}

// Health says how daemons are watched.
type Health struct {
	// Interval between pings of each daemon. Default 2s.
	Interval Duration `yaml:"interval"`
	// Timeout of one ping. Default 2s.
	Timeout Duration `yaml:"timeout"`
	// Failures in a row that mark a daemon down. Default 3.
	Failures int `yaml:"failures"`
}

// Registry holds credentials for pulling from one registry. Registries not
// listed here use ~/.docker/config.json, if it has them.
type Registry struct {
	// Host is the registry's host[:port] as written in image names.
	Host     string `yaml:"host"`
	Username string `yaml:"username"`
	// Password, or PasswordFile: a file holding it (trailing newline cut).
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Log configures structured logging.
type Log struct {
	// Format is "text" (default) or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `yaml:"level"`
}

// Daemon is one Docker Engine that Ganger may place containers on.
type Daemon struct {
	// Name identifies the daemon in logs and labels. Default "local" when the
	// daemon comes from the environment, else required.
	Name string `yaml:"name"`
	// Host is the engine's address in DOCKER_HOST syntax: unix:///path or
	// tcp://host:port.
	Host string `yaml:"host"`
	// TLS holds client certificates for a tcp:// host.
	TLS *TLS `yaml:"tls"`
	// Advertise is the address where ports published by this daemon are
	// reachable. Default 127.0.0.1 for a unix socket, else the URL's host.
	Advertise string `yaml:"advertise"`
	// PublishIP is the host IP that container ports are published on.
	// Default: Advertise when it is an IP address, else 0.0.0.0.
	PublishIP string `yaml:"publish_ip"`
	// Dial says how Ganger reaches a container: "published" (advertise
	// address and published port), "container" (the container's own IP on
	// its network: only when Ganger shares the daemon's host), or "auto"
	// (default: container for a unix socket, published otherwise).
	Dial ganger.DialMode `yaml:"dial"`
	// MaxContainers caps the Ganger containers on this daemon. Default 100.
	MaxContainers int `yaml:"max_containers"`
	// MaxStarts caps the container creates and starts in flight on this
	// daemon at once; the rest wait their turn in order, and a client that
	// leaves before its turn costs no Docker call. Default 8.
	MaxStarts int `yaml:"max_starts"`

	decodeErr error
}

// TLS holds the file paths of a client certificate for a tcp:// daemon.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Service is one configured front door.
type Service struct {
	// Name is the service's name: [a-z0-9][a-z0-9_.-]*, unique.
	Name string `yaml:"name"`
	// Listen is the TCP address Ganger accepts clients on, unique.
	Listen string `yaml:"listen"`
	// Image runs in each container. Required.
	Image string `yaml:"image"`
	// Port is the TCP port the service listens on inside the container.
	Port int `yaml:"port"`
	// Ports are the container ports clients reach an instance on (mode:
	// instance); port alone means [port].
	Ports []int `yaml:"ports"`
	// Cmd and Entrypoint override the image's, when set.
	Cmd        []string `yaml:"cmd"`
	Entrypoint []string `yaml:"entrypoint"`
	// Env is added to the container's environment.
	Env map[string]string `yaml:"env"`
	// User runs the container's process as this user (name or uid[:gid]).
	// Default: the image's user, or nobody (65534:65534) if it names none.
	User string `yaml:"user"`
	// Network is the Docker network containers join: "isolated" (default:
	// Ganger's own bridge on each daemon, inter-container traffic off, so a
	// container reaches nothing of other sessions), "bridge" (Docker's
	// default bridge) or the name of a network that exists.
	Network string `yaml:"network"`
	// Egress is "allow" (default) or "none": on the isolated network, no
	// route out of the host either.
	Egress string `yaml:"egress"`
	// Init is "" (default: the container's command is its PID 1) or
	// "ganger": the command runs under ganger-init, a small PID 1 that
	// reaps zombies and forwards signals, which Ganger provides (see
	// init_binary): the image needs nothing of its own.
	Init string `yaml:"init"`
	// InitConfig, with init: ganger, is ganger-init's configuration: the
	// processes each container runs (processes: {NAME: {cmd: [...]}}),
	// instead of cmd and entrypoint. Default none.
	InitConfig InitConfig `yaml:"init_config"`

	// Mode is "per-connection" (default: each session has a container to
	// itself), "shared" (concurrent sessions share containers) or
	// "instance" (an API call makes a long-lived container with a
	// lifetime; no listen address: clients reach it at its own ports) or
	// "cluster" (cluster.size members that find each other, under
	// ganger-init).
	Mode ganger.Mode `yaml:"mode"`
	// Start is when a session's container is placed, taken from the pool
	// or started: "connect" (default: at once, for protocols where the
	// server speaks first: SSH, SMTP, FTP, MySQL, a shell) or "data" (once
	// the client sends its first byte, within ready.first_byte: a
	// connection that closes, resets or says nothing costs no Docker call
	// at all; for protocols where the client speaks first: HTTP, Redis,
	// PostgreSQL, most RPC).
	Start string `yaml:"start"`
	// Pool keeps ready containers ahead of demand (per-connection mode).
	Pool Pool `yaml:"pool"`
	// Reuse is how many sessions, one after another, a container serves
	// before it is destroyed (per-connection mode). Default 1.
	Reuse int `yaml:"reuse"`
	// Shared configures shared mode.
	Shared Shared `yaml:"shared"`
	// Instance configures mode: instance.
	Instance Instance `yaml:"instance"`
	// Cluster configures mode: cluster.
	Cluster Cluster `yaml:"cluster"`
	// Pull is when the image is pulled onto each daemon: "missing"
	// (default), "always" (at start-up and whenever a daemon comes up), or
	// "never" (it must be there already).
	Pull ganger.PullPolicy `yaml:"pull"`
	// Placement chooses the daemon: "spread" (default: the least utilised,
	// load rotating among equals) or "binpack" (the fullest that has room;
	// the default for mode: instance, so that hosts fill before new ones
	// are used).
	Placement ganger.Placement `yaml:"placement"`
	// MaxContainers caps this service's containers over all daemons. 0: no cap.
	MaxContainers int `yaml:"max_containers"`
	// Queue holds clients while there is no room.
	Queue Queue `yaml:"queue"`
	// PerIP caps concurrent sessions from one client address. 0: no cap.
	PerIP int `yaml:"per_ip"`
	// PerIPRate caps new sessions per second from one client address.
	PerIPRate Rate `yaml:"per_ip_rate"`
	// ProxyProtocol requires a PROXY protocol (v1 or v2) header from a
	// trusted proxy on every connection; others are refused.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// TrustedProxies are the CIDRs (or addresses) allowed to send PROXY headers.
	TrustedProxies []string `yaml:"trusted_proxies"`

	Ready    Ready    `yaml:"ready"`
	Timeouts Timeouts `yaml:"timeouts"`
	Limits   Limits   `yaml:"limits"`

	decodeErr error
	initSpec  ganger.Init // set with init: ganger once init_binary is read
}

// Pool is a service's warm pool: containers started and answering before
// any client asks. Pool containers count against every capacity limit,
// but the pool only takes room no client waits for, and gives idle
// containers back when a client of any service waits for room.
type Pool struct {
	// Min is how many ready, idle containers are kept. Default 0.
	Min int `yaml:"min"`
	// Max is the most idle containers kept, counting those given back for
	// reuse. Default: Min, or 1 if Min is 0 and reuse is more than 1.
	Max int `yaml:"max"`
	// Adaptive sizes the pool between Min and Max by demand: enough ready
	// containers to cover the sessions expected while one container
	// starts (both measured as it runs), plus headroom for bursts; the
	// size holds for a minute after demand drops, then shrinks to Min.
	Adaptive bool `yaml:"adaptive"`
	// MaxAge replaces a pooled container older than this, so that an
	// image re-tagged on the daemon reaches the pool without a reload.
	// Default 0: no age limit.
	MaxAge Duration `yaml:"max_age"`
}

// Shared configures shared mode: concurrent sessions share containers.
type Shared struct {
	// Replicas is the most containers. Default 1.
	Replicas int `yaml:"replicas"`
	// MaxSessionsPerContainer caps the connections one container serves at
	// once; 0 means no cap. Default 0.
	MaxSessionsPerContainer int `yaml:"max_sessions_per_container"`
	// IdleStop stops and removes a container with no open connection for
	// this long (scale to zero). Default 5m; 0 keeps it.
	IdleStop Duration `yaml:"idle_stop"`
}

// Queue is a service's FIFO of clients waiting for room.
type Queue struct {
	// Max is the most clients waiting; past it a client is refused at once.
	// Default 100; 0 refuses whenever there is no room.
	Max int `yaml:"max"`
	// Timeout is the longest a client waits. Default 30s.
	Timeout Duration `yaml:"timeout"`
	// RejectMessage, if set, is written (with a newline) to a refused client.
	RejectMessage string `yaml:"reject_message"`
}

// Rate is a token bucket: Rate new sessions per second, bursts of Burst.
type Rate struct {
	// Rate per second; 0 means no limit.
	Rate float64 `yaml:"rate"`
	// Burst is the most sessions at once. Default: Rate rounded up, at least 1.
	Burst int `yaml:"burst"`
}

// Ready says how Ganger decides a container is ready: a TCP connect to its
// port succeeds. Connects are retried with a backoff that doubles from
// Backoff up to BackoffMax, until Timeout.
type Ready struct {
	// Timeout is the longest a client waits for its container. Default 30s.
	Timeout Duration `yaml:"timeout"`
	// Backoff is the first wait between connect attempts. Default 5ms;
	// 1ms with init: ganger (ganger-init starts the command about 1ms
	// after the container starts).
	Backoff Duration `yaml:"backoff"`
	// BackoffMax caps the wait between connect attempts. Default 200ms.
	BackoffMax Duration `yaml:"backoff_max"`
	// FirstByte is, with start: data, how long a client may stay silent
	// after it connects; one that sends nothing this long, or leaves
	// first, is closed having cost no container and no Docker call. Must
	// be more than 0 with start: data. Default 10s.
	FirstByte Duration `yaml:"first_byte"`
}

// Timeouts bound a session.
type Timeouts struct {
	// Idle ends a session with no byte in either direction for this long.
	// Default 5m; 0 disables.
	Idle Duration `yaml:"idle"`
	// FirstByte ends a session whose client has sent nothing this long
	// after its container was ready (start: connect; with start: data the
	// client has spoken before there is a container: see
	// ready.first_byte). A silent connection thus holds a container
	// briefly, not for the whole idle timeout. Default 30s; 0 disables
	// (for protocols where clients may only listen).
	FirstByte Duration `yaml:"first_byte"`
	// HalfClosed ends a session whose client has closed its side (EOF)
	// when its container then sends nothing for this long: a client that
	// has left cannot hold a container through a service that never
	// closes. Default 30s; 0 disables (idle still applies).
	HalfClosed Duration `yaml:"half_closed"`
	// Session is the longest a session may last. Default 1h; 0 disables.
	Session Duration `yaml:"session"`
	// Drain is how long sessions may go on after shutdown begins. Default 30s.
	Drain Duration `yaml:"drain"`
}

// Limits are the container's resource and security limits. Defaults are
// secure: every capability dropped, no-new-privileges, bounded memory and
// pids.
type Limits struct {
	// Memory is the memory limit. Default 256MiB.
	Memory Size `yaml:"memory"`
	// CPUs is the CPU quota in cores. Default 1.
	CPUs float64 `yaml:"cpus"`
	// Pids is the most processes the container may hold. Default 128.
	Pids int64 `yaml:"pids"`
	// ReadOnly mounts the container's root filesystem read-only.
	ReadOnly bool `yaml:"read_only"`
	// Tmpfs maps a path to tmpfs mount options, e.g. {/tmp: "size=64m"}.
	Tmpfs map[string]string `yaml:"tmpfs"`
	// CapAdd lists the only capabilities kept; all others are dropped.
	CapAdd []string `yaml:"cap_add"`
	// NoNewPrivileges stops the container's processes gaining privileges
	// (setuid binaries, file capabilities). Default true.
	NoNewPrivileges bool `yaml:"no_new_privileges"`
	// NoFile caps the container's open files. Default 1024.
	NoFile int64 `yaml:"nofile"`
	// Log caps the container's log (json-file) on the daemon's disk.
	Log LogLimits `yaml:"log"`
	// Disk caps what the container may write to its own filesystem, where
	// the daemon's storage driver can (overlay2 on xfs with pquota, btrfs,
	// zfs); elsewhere Ganger warns and runs without. 0 (default): no cap.
	Disk Size `yaml:"disk"`
}

// LogLimits cap a container's log.
type LogLimits struct {
	// MaxSize is the size of a log file before it is rotated. Default 1MiB.
	MaxSize Size `yaml:"max_size"`
	// MaxFiles is how many log files are kept. Default 2.
	MaxFiles int `yaml:"max_files"`
}

// Default values, also written out in examples/ganger.yaml.
const (
	DefaultListenHost       = "127.0.0.1"
	DefaultNetwork          = "isolated"
	DefaultNoFile           = 1024
	DefaultLogMaxSize       = 1 << 20
	DefaultLogMaxFiles      = 2
	DefaultMaxContainers    = 100
	DefaultMaxStarts        = 8
	DefaultReadyTimeout     = 30 * time.Second
	DefaultReadyBackoff     = 5 * time.Millisecond
	DefaultInitReadyBackoff = time.Millisecond
	DefaultBackoffMax       = 200 * time.Millisecond
	DefaultIdle             = 5 * time.Minute
	DefaultFirstByte        = 30 * time.Second
	DefaultHalfClosed       = 30 * time.Second
	DefaultReadyFirst       = 10 * time.Second
	DefaultSession          = time.Hour
	DefaultDrain            = 30 * time.Second
	DefaultMemory           = 256 << 20
	DefaultCPUs             = 1.0
	DefaultPids             = 128
	DefaultReconcile        = time.Minute
	DefaultQueueMax         = 100
	DefaultQueueTimeout     = 30 * time.Second
	DefaultHealthEvery      = 2 * time.Second
	DefaultHealthFails      = 3
	DefaultIdleStop         = 5 * time.Minute
	DefaultAPIListen        = "127.0.0.1:5480"
)
