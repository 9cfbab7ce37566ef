package config

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/instance"
)

// Instance configures mode: instance: a long-lived container made by an
// API call (or the one-click page), with an owner, generated secrets and
// a lifetime.
type Instance struct {
	// Public lets anyone who reaches the API create one, limited per
	// client address; otherwise only the API token and api.clients may.
	// Default false.
	Public bool `yaml:"public"`
	// TTL is the lifetime from ready. A creation may ask for less. Default 1h.
	TTL Duration `yaml:"ttl"`
	// MaxTTL caps the lifetime from creation, extensions included. Default 12h.
	MaxTTL Duration `yaml:"max_ttl"`
	// Extend is what an owner may add to the lifetime.
	Extend Extend `yaml:"extend"`
	// IdleTTL ends an instance with no byte and no open connection this
	// long (needs access: proxy). Default 0: never.
	IdleTTL Duration `yaml:"idle_ttl"`
	// PerOwner caps an owner's live instances of this service (an owner
	// is a client address, or an API client). Default 2; 0: no cap.
	PerOwner int `yaml:"per_owner"`
	// CreateRate caps an owner's creations per second. Default 0.2/s,
	// bursts of 2.
	CreateRate Rate `yaml:"create_rate"`
	// OnExisting is what an owner at its quota gets: "create" (default: a
	// 429 refusal) or "return" (its newest instance back).
	OnExisting string `yaml:"on_existing"`
	// Secrets are generated for each instance with crypto/rand: name →
	// length (8-256 letters and digits). Cmd, env and connect use them as
	// {{.Secrets.name}}.
	Secrets map[string]int `yaml:"secrets"`
	// Access is how clients reach it: "direct" (default: the daemon
	// publishes its ports on its advertise address) or "proxy" (Ganger
	// listens on ports from port_range and proxies: it counts bytes and
	// can end idle instances, and the container publishes nothing).
	Access string `yaml:"access"`
	// PortRange is where access: proxy listens. Default 20000-20999.
	PortRange string `yaml:"port_range"`
	// ListenIP is the address access: proxy listens on. Default 0.0.0.0.
	ListenIP string `yaml:"listen_ip"`
	// Host is the address clients are told to connect to with access:
	// proxy. Default listen_ip, required when that is a wildcard.
	Host string `yaml:"host"`
	// Connect is the line shown to the owner, a template over .Host,
	// .Port <container port> and .Secrets, e.g.
	// "redis://default:{{.Secrets.password}}@{{.Host}}:{{.Port 6379}}".
	Connect string `yaml:"connect"`
}

// Extend is how an owner may extend an instance.
type Extend struct {
	// By is what each extension adds to the current expiry. Default 30m.
	By Duration `yaml:"by"`
	// Max is how many extensions an instance may have. Default 3.
	Max int `yaml:"max"`
}

// Store is where instance records live.
type Store struct {
	// Driver is "sqlite" (default: a file, nothing to run) or "postgres"
	// (several Ganger front-ends share it).
	Driver string `yaml:"driver"`
	// Path is the SQLite file; relative to the configuration file's
	// directory. Default ganger.db.
	Path string `yaml:"path"`
	// DSN, or DSNFile (a file holding it), is the PostgreSQL connection
	// string.
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"`
}

// Instance defaults, also written out in examples/ganger.yaml.
const (
	DefaultInstanceTTL    = time.Hour
	DefaultInstanceMaxTTL = 12 * time.Hour
	DefaultExtendBy       = 30 * time.Minute
	DefaultExtendMax      = 3
	DefaultPerOwner       = 2
	DefaultCreateRate     = 0.2
	DefaultCreateBurst    = 2
	DefaultStorePath      = "ganger.db"
	DefaultPortRange      = "20000-20999"
	DefaultProxyListenIP  = "0.0.0.0"
)

func defaultInstance() Instance {
	return Instance{
		TTL: Duration(DefaultInstanceTTL), MaxTTL: Duration(DefaultInstanceMaxTTL),
		Extend:   Extend{By: Duration(DefaultExtendBy), Max: DefaultExtendMax},
		PerOwner: DefaultPerOwner, CreateRate: Rate{Rate: DefaultCreateRate, Burst: DefaultCreateBurst},
		OnExisting: "create", Access: "direct",
	}
}

// hasKey reports whether a mapping node holds key.
func hasKey(n *yaml.Node, key string) bool {
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// valueOf returns the value of key in mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if v := n.Content[i+1]; n.Content[i].Value == key {
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				return v.Alias
			}
			return v
		}
	}
	return nil
}

// Instances reports whether any service is mode: instance (then the store
// is opened).
func (c *Config) Instances() bool {
	return slices.ContainsFunc(c.Services, func(s Service) bool { return s.Mode == ganger.Instance })
}

// StorePath is the SQLite path, resolved against dir (the configuration
// file's directory) when relative.
func (s Store) StorePath(dir string) string {
	if filepath.IsAbs(s.Path) || dir == "" {
		return s.Path
	}
	return filepath.Join(dir, s.Path)
}

// DSNValue returns the PostgreSQL DSN, read from its file if given so.
func (s Store) DSNValue() (string, error) { return secret(s.DSN, s.DSNFile) }

var secretNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,31}$`)

// instance checks a mode: instance service.
func (v *validator) instance(p string, s Service) {
	in := s.Instance
	q := p + ".instance"
	if s.Listen != "" {
		v.fail(p+".listen", "does not apply to mode: instance: clients reach each instance at its own ports")
	}
	if len(s.Ports) == 0 {
		v.fail(p+".ports", "missing: the container ports clients reach an instance on")
	}
	seen := map[int]bool{}
	for i, port := range s.Ports {
		if port < 1 || port > 65535 {
			v.fail(fmt.Sprintf("%s.ports[%d]", p, i), "want 1-65535, got %d", port)
		} else if seen[port] {
			v.fail(fmt.Sprintf("%s.ports[%d]", p, i), "port %d is listed twice", port)
		}
		seen[port] = true
	}
	if s.Start != "connect" {
		v.fail(p+".start", "applies to sessions, not to mode: instance")
	}
	if in.TTL <= 0 {
		v.fail(q+".ttl", "must be more than 0")
	}
	if in.MaxTTL < in.TTL {
		v.fail(q+".max_ttl", "must be at least ttl (%s)", in.TTL.D())
	}
	if in.Extend.By < 0 {
		v.fail(q+".extend.by", "must not be negative")
	}
	if in.Extend.Max < 0 {
		v.fail(q+".extend.max", "want 0 (no extension) or more, got %d", in.Extend.Max)
	}
	if in.PerOwner < 0 {
		v.fail(q+".per_owner", "want 0 (no cap) or more, got %d", in.PerOwner)
	}
	if r := in.CreateRate.Rate; r < 0 || r != r {
		v.fail(q+".create_rate.rate", "want 0 (no limit) or more, got %g", r)
	}
	if in.CreateRate.Burst < 0 {
		v.fail(q+".create_rate.burst", "cannot be negative")
	}
	if !oneOf(in.OnExisting, "create", "return") {
		v.fail(q+".on_existing", "want create or return, got %q", in.OnExisting)
	}
	for _, name := range slices.Sorted(maps.Keys(in.Secrets)) {
		if !secretNameRE.MatchString(name) {
			v.fail(join(q+".secrets", name), "want a name of lower-case letters, digits and '_', got %q", name)
		}
		if n := in.Secrets[name]; n < 8 || n > 256 {
			v.fail(join(q+".secrets", name), "want a length of 8 to 256, got %d", n)
		}
	}
	switch in.Access {
	case "direct":
		for _, k := range []struct {
			key string
			set bool
		}{{"idle_ttl", in.IdleTTL != 0}, {"port_range", in.PortRange != ""}, {"listen_ip", in.ListenIP != ""}, {"host", in.Host != ""}} {
			if k.set {
				v.fail(q+"."+k.key, "needs access: proxy: with direct access clients reach the daemon's published ports")
			}
		}
	case "proxy":
		if _, _, ok := in.ProxyRange(); !ok {
			v.fail(q+".port_range", "want low-high within 1-65535, e.g. %s, got %q", DefaultPortRange, in.PortRange)
		} else if lo, hi, _ := in.ProxyRange(); hi-lo+1 < len(s.Ports)*max(in.PerOwner, 1) {
			v.fail(q+".port_range", "%s holds %d ports: too few for one owner's instances (%d ports each)", in.PortRange, hi-lo+1, len(s.Ports))
		}
		ip, err := netip.ParseAddr(in.ListenIP)
		if err != nil {
			v.fail(q+".listen_ip", "want an IP address, got %q", in.ListenIP)
		}
		if in.Host == "" && err == nil && ip.IsUnspecified() {
			v.fail(q+".host", "missing: the address clients connect to (listen_ip %s listens everywhere)", in.ListenIP)
		}
	default:
		v.fail(q+".access", "want direct or proxy, got %q", in.Access)
	}
	names := slices.Collect(maps.Keys(in.Secrets))
	if in.Connect != "" {
		t, err := instance.ParseTemplate("connect", in.Connect)
		if err == nil {
			err = t.Check(names, s.Ports)
		}
		if err != nil {
			v.fail(q+".connect", "%v", err)
		}
	}
	for i, arg := range s.Cmd {
		v.template(fmt.Sprintf("%s.cmd[%d]", p, i), arg, names)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		v.template(join(p+".env", k), s.Env[k], names)
	}
}

// template checks a cmd or env value of an instance service: a template
// that may use the secrets.
func (v *validator) template(p, s string, secrets []string) {
	if !strings.Contains(s, "{{") {
		return
	}
	t, err := instance.ParseTemplate(p, s)
	if err == nil {
		err = t.Check(secrets, nil)
	}
	if err != nil {
		v.fail(p, "%v", err)
	}
}

// ProxyRange is the port range of access: proxy.
func (in Instance) ProxyRange() (lo, hi int, ok bool) {
	lo, hi, ok = portRange(in.PortRange)
	return lo, hi, ok && lo <= hi
}

// ProxyHost is the address access: proxy tells clients.
func (in Instance) ProxyHost() string {
	if in.Host != "" {
		return in.Host
	}
	return in.ListenIP
}

func portRange(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	return lo, hi, ok && err1 == nil && err2 == nil && lo >= 1 && hi <= 65535
}

// store checks where instance records live, when a service needs them.
func (v *validator) store(c *Config) {
	if !c.Stateful() {
		return
	}
	s := c.Store
	switch s.Driver {
	case "sqlite":
		if s.Path == "" {
			v.fail("store.path", "missing: the SQLite file")
		}
	case "postgres":
		switch {
		case s.DSN != "" && s.DSNFile != "":
			v.fail("store.dsn_file", "give dsn or dsn_file, not both")
		case s.DSN == "" && s.DSNFile == "":
			v.fail("store.dsn", "missing: give dsn or dsn_file")
		case s.DSNFile != "":
			v.secretFile("store.dsn_file", s.DSNFile)
		}
	default:
		v.fail("store.driver", "want sqlite or postgres, got %q", s.Driver)
	}
}

// clients checks the named API clients: names unique, tokens long enough
// and unlike each other and the API's own.
func (v *validator) clients(a API, token, read string) {
	names := map[string]bool{}
	tokens := map[string]string{}
	if token != "" {
		tokens[token] = "api.token"
	}
	if read != "" {
		tokens[read] = "api.read_token"
	}
	for i, cl := range a.Clients {
		p := fmt.Sprintf("api.clients[%d]", i)
		if !nameRE.MatchString(cl.Name) {
			v.fail(p+".name", "want lower-case letters, digits, '_', '.' or '-', got %q", cl.Name)
		} else if names[cl.Name] {
			v.fail(p+".name", "client %q is listed twice", cl.Name)
		}
		names[cl.Name] = true
		tok, key := v.token(p+".token", cl.Token, cl.TokenFile)
		if tok == "" && cl.Token == "" && cl.TokenFile == "" {
			v.fail(p+".token", "missing: give token or token_file")
			continue
		}
		if other, ok := tokens[tok]; ok && tok != "" {
			v.fail(key, "is the same token as %s: each must differ", other)
		}
		tokens[tok] = key
	}
	for i, t := range a.TrustedProxies {
		if _, err := ParsePrefix(t); err != nil {
			v.fail(fmt.Sprintf("api.trusted_proxies[%d]", i), "%v", err)
		}
	}
}
