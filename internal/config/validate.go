package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

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
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, Error{Line: v.pos.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) validate(pos *positions) []Error {
	v := &validator{pos: pos}
	if strings.ContainsAny(c.Node, " \t\n") || c.Node == "" {
		v.fail("node", "must be a non-empty word (it labels every container as ganger.owner)")
	}
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
	return v.errs
}

func (v *validator) global(c *Config) {
	if c.API.Listen != "" {
		v.listen("api.listen", c.API.Listen)
	}
	if c.API.Token != "" && c.API.TokenFile != "" {
		v.fail("api.token_file", "give token or token_file, not both")
	} else if c.API.TokenFile != "" {
		if _, err := os.Stat(c.API.TokenFile); err != nil {
			v.fail("api.token_file", "cannot read %s: %v", c.API.TokenFile, err)
		}
	}
	if c.Limits.MaxSessions < 0 {
		v.fail("limits.max_sessions", "want 0 (no cap) or more, got %d", c.Limits.MaxSessions)
	}
	if c.Limits.MaxConnections < 0 {
		v.fail("limits.max_connections", "want 0 (derived from the open-file limit) or more, got %d", c.Limits.MaxConnections)
	}
	if c.Health.Interval <= 0 {
		v.fail("health.interval", "must be more than 0")
	}
	if c.Health.Timeout <= 0 {
		v.fail("health.timeout", "must be more than 0")
	}
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
			if _, err := os.Stat(r.PasswordFile); err != nil {
				v.fail(p+".password_file", "cannot read %s: %v", r.PasswordFile, err)
			}
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
	names, listens := map[string]string{}, map[string]string{}
	for i, s := range svcs {
		p := fmt.Sprintf("services[%d]", i)
		v.service(p, s)
		if first, ok := names[s.Name]; ok && s.Name != "" {
			v.fail(p+".name", "service %q is already defined at %s", s.Name, first)
		}
		names[s.Name] = p
		key := normalListen(s.Listen)
		if first, ok := listens[key]; ok && key != "" && !strings.HasSuffix(key, ":0") {
			v.fail(p+".listen", "address %s is already used by %s", s.Listen, first)
		}
		listens[key] = p
	}
}

func (v *validator) service(p string, s Service) {
	if s.Name == "" {
		v.fail(p+".name", "missing")
	} else if !nameRE.MatchString(s.Name) {
		v.fail(p+".name", "want lower-case letters, digits, '_', '.' or '-' (at most 63), got %q", s.Name)
	}
	v.listen(p+".listen", s.Listen)
	if s.Image == "" {
		v.fail(p+".image", "missing: the image each container runs")
	}
	if s.Port == 0 {
		v.fail(p+".port", "missing: the TCP port the service listens on inside the container")
	} else if s.Port < 1 || s.Port > 65535 {
		v.fail(p+".port", "want 1-65535, got %d", s.Port)
	}
	for k := range s.Env {
		if !envKeyRE.MatchString(k) {
			v.fail(p+".env."+k, "invalid environment variable name %q", k)
		}
	}
	if s.Network == "host" || s.Network == "none" || strings.HasPrefix(s.Network, "container:") || s.Network == "" {
		v.fail(p+".network", "network %q cannot work: each container needs its own address and port", s.Network)
	}
	v.ready(p+".ready", s.Ready)
	v.limits(p+".limits", s.Limits)
	v.admission(p, s)
	v.modes(p, s)
}

func (v *validator) modes(p string, s Service) {
	if !oneOf(s.Mode, ganger.PerConnection, ganger.Shared) {
		v.fail(p+".mode", "want per-connection or shared, got %q", s.Mode)
	}
	if s.Reuse < 1 {
		v.fail(p+".reuse", "want at least 1 (1: a fresh container per session), got %d", s.Reuse)
	}
	if s.Pool.Min < 0 || s.Pool.Max < 0 {
		v.fail(p+".pool", "min and max cannot be negative")
	} else if s.Pool.Max < s.Pool.Min {
		v.fail(p+".pool.max", "must be at least pool.min (%d)", s.Pool.Min)
	}
	if s.Mode == ganger.Shared && (s.Pool.Min > 0 || s.Reuse > 1) {
		v.fail(p+".mode", "pool and reuse apply to per-connection mode; shared mode uses shared.replicas")
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
	if s.PerIPRate.Rate < 0 || s.PerIPRate.Burst < 0 {
		v.fail(p+".per_ip_rate", "rate and burst cannot be negative")
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
}

func (v *validator) limits(p string, l Limits) {
	if l.Memory < 6<<20 {
		v.fail(p+".memory", "want at least 6MiB (Docker's minimum); a memory limit is required")
	}
	if l.CPUs <= 0 || l.CPUs > 1024 {
		v.fail(p+".cpus", "want more than 0 and at most 1024, got %g", l.CPUs)
	}
	if l.Pids < 1 {
		v.fail(p+".pids", "want at least 1; a pids limit is required")
	}
	for dir := range l.Tmpfs {
		if !path.IsAbs(dir) {
			v.fail(p+".tmpfs."+dir, "want an absolute path, got %q", dir)
		}
	}
	for i, c := range l.CapAdd {
		name := strings.TrimPrefix(strings.ToUpper(c), "CAP_")
		if !oneOf(name, capabilities...) {
			v.fail(fmt.Sprintf("%s.cap_add[%d]", p, i), "unknown capability %q", c)
		}
	}
}

// normalListen makes equal addresses compare equal: "localhost:80" and
// "127.0.0.1:80", ":80" and "0.0.0.0:80".
func normalListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "localhost":
		host = "127.0.0.1"
	case "", "::":
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port)
}

func oneOf[T comparable](s T, set ...T) bool { return slices.Contains(set, s) }
