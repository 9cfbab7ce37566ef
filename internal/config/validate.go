package config

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ganger-dev/ganger"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// capabilities are the Linux capabilities Docker accepts in cap_add.
var capabilities = strings.Fields(`AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE
CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE
MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP
SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE
SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG SYSLOG WAKE_ALARM`)

// validator collects errors, each placed at its key's line.
type validator struct {
	pos  *positions
	errs []Error
	cfg  *Config // the whole config, for checks across services
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, Error{Line: v.pos.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) validate(pos *positions) []Error {
	v := &validator{pos: pos, cfg: c}
	v.node(c.Node)
	v.period("reconcile", c.Reconcile, minReconcile, true)
	if c.Log.Format != "text" && c.Log.Format != "json" {
		v.fail("log.format", "want text or json, got %q", c.Log.Format)
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		v.fail("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	names := map[string]string{}
	for i, d := range c.Daemons {
		p := fmt.Sprintf("daemons[%d]", i)
		v.daemon(p, d)
		if first, ok := names[d.Name]; ok && d.Name != "" {
			v.fail(p+".name", "daemon %q is already defined at %s", d.Name, first)
		}
		names[d.Name] = p
	}
	v.services(c.Services)
	v.global(c)
	v.discovery(c)
	v.autoscale(c)
	v.store(c)
	v.apiClash(c)
	v.proxyRanges(c)
	v.poolFits(c)
	v.egressReachable(c)
	return v.errs
}

// egressReachable refuses egress: none where Ganger dials published ports:
// Docker publishes nothing from an internal network.
func (v *validator) egressReachable(c *Config) {
	for i, s := range c.Services {
		if s.Egress != "none" {
			continue
		}
		for j, d := range c.Daemons {
			if d.Dial == ganger.DialPublished {
				v.fail(fmt.Sprintf("services[%d].egress", i), "none needs Ganger to dial containers directly, and daemons[%d] (%s) dials published ports: run Ganger on that daemon's host with dial: container", j, d.Name)
				break
			}
		}
	}
}

func (v *validator) global(c *Config) {
	v.api(c.API)
	if c.Limits.MaxSessions < 0 {
		v.fail("limits.max_sessions", "want 0 (no cap) or more, got %d", c.Limits.MaxSessions)
	}
	if c.Limits.MaxConnections < 0 {
		v.fail("limits.max_connections", "want 0 (derived from the open-file limit) or more, got %d", c.Limits.MaxConnections)
	}
	v.period("health.interval", c.Health.Interval, minHealthPeriod, false)
	v.period("health.timeout", c.Health.Timeout, minHealthPeriod, false)
	if c.Health.Failures < 1 {
		v.fail("health.failures", "want at least 1, got %d", c.Health.Failures)
	}
	for i, r := range c.Registries {
		p := fmt.Sprintf("registries[%d]", i)
		if r.Host == "" {
			v.fail(p+".host", "missing: the registry's host[:port] as in image names")
		}
		if r.Username == "" {
			v.fail(p+".username", "missing")
		}
		switch {
		case r.Password != "" && r.PasswordFile != "":
			v.fail(p+".password_file", "give password or password_file, not both")
		case r.Password == "" && r.PasswordFile == "":
			v.fail(p+".password", "missing: give password or password_file")
		case r.PasswordFile != "":
			v.secretFile(p+".password_file", r.PasswordFile)
		}
	}
}

func (v *validator) daemon(p string, d Daemon) {
	if !nameRE.MatchString(d.Name) {
		v.fail(p+".name", "want a name of lower-case letters, digits, '_', '.' or '-', got %q", d.Name)
	}
	u, err := url.Parse(d.Host)
	switch {
	case d.Host == "":
		v.fail(p+".host", "missing: want unix:///path/to/docker.sock or tcp://host:port")
	case err != nil || (u.Scheme != "unix" && u.Scheme != "tcp"):
		v.fail(p+".host", "want unix:///path or tcp://host:port, got %q", d.Host)
	case u.Scheme == "tcp" && u.Port() == "":
		v.fail(p+".host", "tcp host %q needs a port (2375, or 2376 with TLS)", d.Host)
	case u.Scheme == "unix" && u.Path == "":
		v.fail(p+".host", "unix host %q needs a socket path", d.Host)
	}
	if d.TLS != nil {
		if u != nil && u.Scheme == "unix" {
			v.fail(p+".tls", "TLS applies to tcp:// hosts only")
		}
		for key, f := range map[string]string{"ca": d.TLS.CA, "cert": d.TLS.Cert, "key": d.TLS.Key} {
			if f == "" {
				v.fail(p+".tls."+key, "missing: want the path of a PEM file")
			} else if _, err := os.Stat(f); err != nil {
				v.fail(p+".tls."+key, "cannot read %s: %v", f, err)
			}
		}
	}
	if d.Advertise == "" {
		v.fail(p+".advertise", "missing: the address where this daemon's published ports are reachable")
	}
	if net.ParseIP(d.PublishIP) == nil {
		v.fail(p+".publish_ip", "want an IP address, got %q", d.PublishIP)
	}
	if !oneOf(d.Dial, ganger.DialPublished, ganger.DialContainer) {
		v.fail(p+".dial", "want auto, published or container, got %q", d.Dial)
	}
	if d.MaxContainers < 1 {
		v.fail(p+".max_containers", "want at least 1, got %d", d.MaxContainers)
	}
	if d.MaxStarts < 1 {
		v.fail(p+".max_starts", "want at least 1, got %d", d.MaxStarts)
	}
}

func (v *validator) services(svcs []Service) {
	if len(svcs) == 0 {
		v.fail("services", "at least one service is needed")
	}
	names := map[string]string{}
	for i, s := range svcs {
		p := fmt.Sprintf("services[%d]", i)
		v.service(p, s)
		if first, ok := names[s.Name]; ok && s.Name != "" {
			v.fail(p+".name", "service %q is already defined at %s", s.Name, first)
		}
		names[s.Name] = p
		for j := range i {
			if listenClash(s.Listen, svcs[j].Listen) {
				v.fail(p+".listen", "address %s is already used by services[%d] (%s)", s.Listen, j, svcs[j].Listen)
				break
			}
		}
	}
}

func (v *validator) service(p string, s Service) {
	if s.Name == "" {
		v.fail(p+".name", "missing")
	} else if !nameRE.MatchString(s.Name) {
		v.fail(p+".name", "want lower-case letters, digits, '_', '.' or '-' (at most 63), got %q", s.Name)
	}
	switch s.Mode {
	case ganger.Instance:
		v.instance(p, s)
	case ganger.ClusterMode:
		v.cluster(p, s, v.cfg)
	default:
		v.listen(p+".listen", s.Listen)
		if s.Port == 0 {
			v.fail(p+".port", "missing: the TCP port the service listens on inside the container")
		} else if s.Port < 1 || s.Port > 65535 {
			v.fail(p+".port", "want 1-65535, got %d", s.Port)
		}
		if len(s.Ports) > 0 {
			v.fail(p+".ports", "applies to mode: instance; a session's container has one port: port")
		}
	}
	if s.Image == "" {
		v.fail(p+".image", "missing: the image each container runs")
	}
	for k := range s.Env {
		if !envKeyRE.MatchString(k) {
			v.fail(join(p+".env", k), "invalid environment variable name %q", k)
		}
	}
	if s.Network == "host" || s.Network == "none" || strings.HasPrefix(s.Network, "container:") || s.Network == "" {
		v.fail(p+".network", "network %q cannot work: each container needs its own address and port", s.Network)
	}
	if !oneOf(s.Start, "connect", "data") {
		v.fail(p+".start", "want connect or data, got %q", s.Start)
	} else if s.Start == "data" && s.Ready.FirstByte <= 0 {
		v.fail(p+".ready.first_byte", "start: data needs a first_byte wait over 0: a silent client would otherwise be held forever")
	}
	if !oneOf(s.Egress, "allow", "none") {
		v.fail(p+".egress", "want allow or none, got %q", s.Egress)
	} else if s.Egress == "none" && s.Network != "isolated" {
		v.fail(p+".egress", "none needs network: isolated (Ganger's own networks), got network %q", s.Network)
	}
	v.initKeys(p, s)
	v.ready(p+".ready", s.Ready)
	v.limits(p+".limits", s.Limits)
	v.admission(p, s)
	v.modes(p, s)
}

func (v *validator) modes(p string, s Service) {
	if !oneOf(s.Mode, ganger.PerConnection, ganger.Shared, ganger.Instance, ganger.ClusterMode) {
		v.fail(p+".mode", "want per-connection, shared, instance or cluster, got %q", s.Mode)
	}
	if s.Reuse < 1 {
		v.fail(p+".reuse", "want at least 1 (1: a fresh container per session), got %d", s.Reuse)
	}
	if s.Pool.Min < 0 || s.Pool.Max < 0 {
		v.fail(p+".pool", "min and max cannot be negative")
	} else if s.Pool.Max < s.Pool.Min {
		v.fail(p+".pool.max", "must be at least pool.min (%d)", s.Pool.Min)
	} else if s.Pool.Adaptive && s.Pool.Max <= s.Pool.Min {
		v.fail(p+".pool.max", "adaptive needs room to adapt: max (%d) must be more than min (%d)", s.Pool.Max, s.Pool.Min)
	}
	if s.Pool.MaxAge < 0 {
		v.fail(p+".pool.max_age", "must not be negative")
	} else if s.Pool.MaxAge > 0 && s.Pool.MaxAge.D() < time.Second {
		v.fail(p+".pool.max_age", "want at least 1s (0 = no limit), got %s", s.Pool.MaxAge.D())
	}
	if s.Mode == ganger.Shared && (s.Pool.Min > 0 || s.Pool.Max > 0 || s.Pool.Adaptive || s.Reuse > 1) {
		v.fail(p+".mode", "pool and reuse apply to per-connection mode; shared mode uses shared.replicas")
	}
	if s.Mode == ganger.Instance && (s.Pool.Min > 0 || s.Pool.Max > 0 || s.Pool.Adaptive || s.Reuse > 1) {
		v.fail(p+".mode", "pool and reuse apply to per-connection mode, not to instances")
	}
	if s.Shared.Replicas < 1 {
		v.fail(p+".shared.replicas", "want at least 1, got %d", s.Shared.Replicas)
	}
	if s.Shared.MaxSessionsPerContainer < 0 {
		v.fail(p+".shared.max_sessions_per_container", "want 0 (no cap) or more")
	}
}

func (v *validator) admission(p string, s Service) {
	if !oneOf(s.Pull, ganger.PullMissing, ganger.PullAlways, ganger.PullNever) {
		v.fail(p+".pull", "want missing, always or never, got %q", s.Pull)
	}
	if !oneOf(s.Placement, ganger.Spread, ganger.Binpack) {
		v.fail(p+".placement", "want spread or binpack, got %q", s.Placement)
	}
	if s.MaxContainers < 0 {
		v.fail(p+".max_containers", "want 0 (no cap) or more, got %d", s.MaxContainers)
	}
	if s.Queue.Max < 0 {
		v.fail(p+".queue.max", "want 0 (no queue) or more, got %d", s.Queue.Max)
	}
	if s.Queue.Max > 0 && s.Queue.Timeout <= 0 {
		v.fail(p+".queue.timeout", "must be more than 0 when queue.max is")
	}
	if s.PerIP < 0 {
		v.fail(p+".per_ip", "want 0 (no cap) or more, got %d", s.PerIP)
	}
	if r := s.PerIPRate.Rate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		v.fail(p+".per_ip_rate.rate", "want a number of sessions per second, 0 (no limit) or more, got %g", r)
	}
	if s.PerIPRate.Burst < 0 {
		v.fail(p+".per_ip_rate.burst", "cannot be negative")
	}
	if s.ProxyProtocol && len(s.TrustedProxies) == 0 {
		v.fail(p+".trusted_proxies", "missing: proxy_protocol needs the CIDRs allowed to send PROXY headers")
	}
	for i, c := range s.TrustedProxies {
		if _, err := ParsePrefix(c); err != nil {
			v.fail(fmt.Sprintf("%s.trusted_proxies[%d]", p, i), "%v", err)
		}
	}
}

// ParsePrefix parses a CIDR, or a single address as its /32 or /128.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want a CIDR such as 10.0.0.0/8 or an address, got %q", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (v *validator) listen(p, addr string) {
	if addr == "" {
		v.fail(p, "missing: the TCP address to accept clients on, e.g. 127.0.0.1:5454")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(p, "want host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.fail(p, "invalid port %q", port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		v.fail(p, "want an IP address (or localhost) to listen on, got %q", host)
	}
}

func (v *validator) ready(p string, r Ready) {
	if r.Timeout <= 0 {
		v.fail(p+".timeout", "must be more than 0")
	}
	if r.Backoff <= 0 {
		v.fail(p+".backoff", "must be more than 0")
	}
	if r.BackoffMax < r.Backoff {
		v.fail(p+".backoff_max", "must be at least backoff (%s)", r.Backoff.D())
	}
	if r.FirstByte < 0 {
		v.fail(p+".first_byte", "must not be negative")
	}
}

func (v *validator) limits(p string, l Limits) {
	if l.Memory < 6<<20 {
		v.fail(p+".memory", "want at least 6MiB (Docker's minimum); a memory limit is required")
	}
	if math.IsNaN(l.CPUs) || l.CPUs <= 0 || l.CPUs > 1024 {
		v.fail(p+".cpus", "want more than 0 and at most 1024, got %g", l.CPUs)
	}
	if l.Pids < 1 {
		v.fail(p+".pids", "want at least 1; a pids limit is required")
	}
	if l.NoFile < 16 || l.NoFile > 1<<20 {
		v.fail(p+".nofile", "want 16 to 1048576, got %d", l.NoFile)
	}
	if l.Log.MaxSize < 4<<10 {
		v.fail(p+".log.max_size", "want at least 4KiB; container logs are capped")
	}
	if l.Log.MaxFiles < 1 || l.Log.MaxFiles > 100 {
		v.fail(p+".log.max_files", "want 1 to 100, got %d", l.Log.MaxFiles)
	}
	if l.Disk != 0 && l.Disk < 16<<20 {
		v.fail(p+".disk", "want 0 (no cap) or at least 16MiB")
	}
	v.tmpfs(p+".tmpfs", l.Tmpfs)
	for i, c := range l.CapAdd {
		name := strings.TrimPrefix(strings.ToUpper(c), "CAP_")
		if !oneOf(name, capabilities...) {
			v.fail(fmt.Sprintf("%s.cap_add[%d]", p, i), "unknown capability %q", c)
		}
	}
}

func oneOf[T comparable](s T, set ...T) bool { return slices.Contains(set, s) }

// Minimums below which a period is a busy loop rather than a setting.
const (
	// minReconcile keeps the reconciler from listing containers on every
	// daemon more than 20 times a second.
	minReconcile = 50 * time.Millisecond
	// minHealthPeriod bounds health.interval and health.timeout: a ping is a
	// round trip to the daemon.
	minHealthPeriod = 10 * time.Millisecond
)

// period refuses a duration below least; with zeroOff, 0 (off) is allowed.
func (v *validator) period(p string, d Duration, least time.Duration, zeroOff bool) {
	switch {
	case d == 0 && zeroOff: // off
	case d.D() < least && zeroOff:
		v.fail(p, "want 0 (off) or at least %s, got %s", least, d.D())
	case d.D() < least:
		v.fail(p, "want at least %s, got %s", least, d.D())
	}
}

var nodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// node checks the node id. It becomes the value of the ganger.owner label
// and of label filters (ganger.owner=<node>), where '=', ',' or white space
// would change what is matched.
func (v *validator) node(id string) {
	if nodeRE.MatchString(id) {
		return
	}
	const want = "want letters, digits, '.', '_' or '-' (at most 128, starting with a letter or digit): it labels every container as ganger.owner"
	if v.pos.line("node") == 0 {
		v.fail("node", "the host name %q cannot be the node id; set node: %s", id, want)
		return
	}
	v.fail("node", "%s, got %q", want, id)
}

// apiClash refuses an API listen address that a service listens on too.
// When the file leaves api.listen to its default, the error is the
// service's, on a line of the file.
func (v *validator) apiClash(c *Config) {
	for i, s := range c.Services {
		if !listenClash(c.API.Listen, s.Listen) {
			continue
		}
		if v.pos.line("api.listen") == 0 {
			v.fail(fmt.Sprintf("services[%d].listen", i), "address %s clashes with the API's (api.listen, default %s): the second to listen would fail", s.Listen, c.API.Listen)
		} else {
			v.fail("api.listen", "address %s clashes with services[%d].listen (%s): the second to listen would fail", c.API.Listen, i, s.Listen)
		}
		return
	}
}

// proxyRanges refuses an access: proxy port range that overlaps another's
// or holds a port a service or the API listens on.
func (v *validator) proxyRanges(c *Config) {
	type rng struct {
		i      int
		ip     string
		lo, hi int
	}
	var seen []rng
	for i, s := range c.Services {
		in := s.Instance
		lo, hi, ok := in.ProxyRange()
		if s.Mode != ganger.Instance || in.Access != "proxy" || !ok {
			continue
		}
		p := fmt.Sprintf("services[%d].instance.port_range", i)
		for _, r := range seen {
			if lo <= r.hi && r.lo <= hi && listenClash(net.JoinHostPort(in.ListenIP, "1"), net.JoinHostPort(r.ip, "1")) {
				v.fail(p, "%s overlaps services[%d].instance.port_range", in.PortRange, r.i)
			}
		}
		seen = append(seen, rng{i, in.ListenIP, lo, hi})
		listens := map[string]string{"api.listen": c.API.Listen}
		for j, o := range c.Services {
			listens[fmt.Sprintf("services[%d].listen", j)] = o.Listen
		}
		for key, addr := range listens {
			_, port, ok := splitListen(addr)
			if ok && port >= lo && port <= hi && listenClash(addr, net.JoinHostPort(in.ListenIP, strconv.Itoa(port))) {
				v.fail(p, "%s holds the port of %s (%s)", in.PortRange, key, addr)
			}
		}
	}
}

// listenClash reports whether listening on a and on b would collide: the
// same port on the same host, or on any host when one of them is a
// wildcard (0.0.0.0, :: or no host: Go listens on both IPv4 and IPv6
// there). Port 0 picks a free port and never collides.
func listenClash(a, b string) bool {
	ha, pa, ok := splitListen(a)
	hb, pb, ok2 := splitListen(b)
	if !ok || !ok2 || pa != pb || pa == 0 {
		return false
	}
	return ha == hb || !ha.IsValid() || !hb.IsValid()
}

// splitListen parses host:port; the address is invalid for a wildcard
// host, and localhost is 127.0.0.1.
func splitListen(addr string) (netip.Addr, int, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	a, err := netip.ParseAddr(host)
	if host == "" || err == nil && a.IsUnspecified() {
		return netip.Addr{}, n, true
	}
	if err != nil {
		return netip.Addr{}, 0, false
	}
	return a.Unmap(), n, true
}

// poolFits refuses a warm pool that the caps can never let fill: its
// containers count against the service's max_containers and the node's
// max_sessions.
func (v *validator) poolFits(c *Config) {
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d].pool.min", i)
		switch {
		case s.MaxContainers > 0 && s.Pool.Min > s.MaxContainers:
			v.fail(p, "%d is more than the service's max_containers (%d): the pool could never fill", s.Pool.Min, s.MaxContainers)
		case c.Limits.MaxSessions > 0 && s.Pool.Min > c.Limits.MaxSessions:
			v.fail(p, "%d is more than limits.max_sessions (%d): the pool could never fill", s.Pool.Min, c.Limits.MaxSessions)
		}
	}
}

// tmpfs refuses mount points that cannot work or would hide what the
// container needs: / itself, and /proc, /sys and /dev (the kernel's
// interfaces and the device nodes) and below, bar /dev/shm, which Docker
// lets a tmpfs replace.
func (v *validator) tmpfs(p string, mounts map[string]string) {
	seen := map[string]string{}
	for _, dir := range slices.Sorted(maps.Keys(mounts)) {
		kp := join(p, dir)
		if !path.IsAbs(dir) {
			v.fail(kp, "want an absolute path, got %q", dir)
			continue
		}
		clean := path.Clean(dir)
		if other, ok := seen[clean]; ok {
			v.fail(kp, "%q is the same mount point as %q", dir, other)
			continue
		}
		seen[clean] = dir
		switch {
		case clean == "/":
			v.fail(kp, "tmpfs on / would replace the image's whole file system")
		case clean == "/dev/shm":
		case underDir(clean, "/proc"), underDir(clean, "/sys"), underDir(clean, "/dev"):
			v.fail(kp, "tmpfs on %s would hide the kernel's /proc, /sys or /dev (only /dev/shm may be replaced)", clean)
		}
	}
}

func underDir(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// maxSecretFile bounds what is read of a token or password file.
const maxSecretFile = 4 << 10

// secretFile checks a token or password file: readable, regular, and
// neither empty nor larger than a secret.
func (v *validator) secretFile(p, name string) {
	s, err := ReadSecretFile(name)
	switch {
	case err != nil:
		v.fail(p, "%v", err)
	case strings.TrimSpace(s) == "":
		v.fail(p, "%s is empty", name)
	}
}

// ReadSecretFile reads a token or password file whole. It must be a regular
// file of at most 4KiB: a path mistyped onto a directory, a device such as
// /dev/zero, or a FIFO is refused rather than read without end or waited on.
func ReadSecretFile(name string) (string, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", name, err)
	}
	if err := secretFileMode(name, fi); err != nil {
		return "", err
	}
	// O_NONBLOCK: should a FIFO replace the file after the Stat, opening
	// it does not wait for a writer; the Stat below then refuses it.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", name, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return "", fmt.Errorf("cannot read %s: %w", name, err)
	}
	if err := secretFileMode(name, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", name, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than 4KiB: it should hold the secret alone", name)
	}
	return string(b), nil
}

func secretFileMode(name string, fi os.FileInfo) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return fmt.Errorf("%s is a directory: want a file holding the secret", name)
	case !m.IsRegular():
		return fmt.Errorf("%s is not a regular file (a device, FIFO or socket): want a file holding the secret", name)
	case fi.Size() > maxSecretFile:
		return fmt.Errorf("%s is larger than 4KiB: it should hold the secret alone", name)
	}
	return nil
}
