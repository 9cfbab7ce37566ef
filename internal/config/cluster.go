package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/ganger-dev/ganger"
)

// Cluster configures mode: cluster: size members that find each other.
// Each runs under ganger-init, which gets the cluster's view from
// Ganger's API, writes the member's files (init_config.files, templates
// Ganger renders from the view), starts its processes once the cluster
// lets it, and runs init_config.on_change at each later change.
type Cluster struct {
	// Size is how many members run. Default 3.
	Size int `yaml:"size"`
	// MinReady is how many members must be up before any is configured.
	// Default: size.
	MinReady int `yaml:"min_ready"`
	// Rollout is how members apply a change: "sequential" (default: one
	// at a time, by ordinal) or "parallel".
	Rollout string `yaml:"rollout"`
	// Damper coalesces a burst of membership changes into one epoch.
	// Default 2s.
	Damper Duration `yaml:"damper"`
	// DependsOn are clusters this one waits for.
	DependsOn []ClusterDep `yaml:"depends_on"`
	// Volumes is "" (none) or "per_ordinal": a named volume per ordinal,
	// mounted at volume_path, kept when its member is replaced (and its
	// replacement runs where the volume lives).
	Volumes string `yaml:"volumes"`
	// VolumePath is where a per_ordinal volume is mounted. Default /data.
	VolumePath string `yaml:"volume_path"`
	// MemberTimeout replaces a member unhealthy this long (no report
	// since it started, or a failed one): same ordinal, new incarnation.
	// Default 60s; 0: only members that die are replaced.
	MemberTimeout Duration `yaml:"member_timeout"`
	// API is the URL of Ganger's API as the members' containers reach it.
	// Default: when api.listen is a wildcard address, its port on the
	// gateway of each member's network.
	API string `yaml:"api"`
}

// ClusterDep is a cluster another waits for.
type ClusterDep struct {
	Cluster  string `yaml:"cluster"`
	MinReady int    `yaml:"min_ready"` // its ready members; default its size
}

// Defaults of mode: cluster.
const (
	DefaultClusterSize    = 3
	DefaultClusterDamper  = 2 * time.Second
	DefaultMemberTimeout  = 60 * time.Second
	DefaultClusterVolPath = "/data"
)

func defaultCluster() Cluster {
	return Cluster{Size: DefaultClusterSize, MinReady: DefaultClusterSize, Rollout: "sequential", Damper: Duration(DefaultClusterDamper),
		MemberTimeout: Duration(DefaultMemberTimeout), VolumePath: DefaultClusterVolPath}
}

// Clusters reports whether any service is mode: cluster.
func (c *Config) Clusters() bool {
	return slices.ContainsFunc(c.Services, func(s Service) bool { return s.Mode == ganger.ClusterMode })
}

// Stateful reports whether a service keeps records in the store
// (instances, clusters).
func (c *Config) Stateful() bool { return c.Instances() || c.Clusters() }

// ClusterFuncs are the helpers a cluster's file templates may call.
var ClusterFuncs = template.FuncMap{
	"add":  func(a, b int) int { return a + b },
	"join": strings.Join,
}

// ParseClusterFile parses one of init_config.files: Go text/template with
// ClusterFuncs; a key missing from a map is an error.
func ParseClusterFile(path, text string) (*template.Template, error) {
	return template.New(path).Funcs(ClusterFuncs).Option("missingkey=error").Parse(text)
}

// ClusterFiles returns init_config.files: absolute path → template text.
func (s Service) ClusterFiles() map[string]string {
	if s.InitConfig.node == nil {
		return nil
	}
	n := valueOf(s.InitConfig.node, "files")
	if n == nil {
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1].Value
	}
	return out
}

// ClusterAPI is the URL members reach Ganger's API at, when it does not
// depend on the member's network ("" then: the gateway's, see Cluster.API).
func (c *Config) ClusterAPI(s Service) string {
	return s.Cluster.API
}

// APIPort is the port api.listen is on, and whether it is a wildcard
// address (reachable from containers on a gateway).
func (c *Config) APIPort() (port string, wildcard bool) {
	host, port, err := net.SplitHostPort(c.API.Listen)
	if err != nil {
		return "", false
	}
	ip := net.ParseIP(host)
	return port, host == "" || ip != nil && ip.IsUnspecified()
}

func (v *validator) cluster(p string, s Service, c *Config) {
	k := s.Cluster
	q := p + ".cluster"
	if s.Listen != "" {
		v.fail(p+".listen", "does not apply to mode: cluster: members reach each other, and clients reach members, at their own addresses")
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
	if s.Init != InitGanger {
		v.fail(p+".init", "mode: cluster needs init: ganger (ganger-init is each member's agent)")
	}
	if s.InitConfig.YAML() == "" {
		v.fail(p+".init_config", "missing: mode: cluster needs ganger-init's processes (and usually files and on_change)")
	}
	if s.Start != "connect" {
		v.fail(p+".start", "applies to sessions, not to mode: cluster")
	}
	if s.Pool.Min > 0 || s.Pool.Max > 0 || s.Pool.Adaptive || s.Reuse > 1 {
		v.fail(p+".mode", "pool and reuse apply to per-connection mode, not to clusters")
	}
	if k.Size < 0 {
		v.fail(q+".size", "want 0 or more, got %d", k.Size)
	}
	if k.MinReady < 0 || k.MinReady > k.Size {
		v.fail(q+".min_ready", "want 0 to size (%d), got %d", k.Size, k.MinReady)
	}
	if !oneOf(k.Rollout, "sequential", "parallel") {
		v.fail(q+".rollout", "want sequential or parallel, got %q", k.Rollout)
	}
	if k.Damper < 0 {
		v.fail(q+".damper", "must not be negative")
	}
	if k.MemberTimeout < 0 {
		v.fail(q+".member_timeout", "must not be negative")
	}
	if !oneOf(k.Volumes, "", "per_ordinal") {
		v.fail(q+".volumes", "want per_ordinal or nothing, got %q", k.Volumes)
	}
	if !strings.HasPrefix(k.VolumePath, "/") {
		v.fail(q+".volume_path", "want an absolute path, got %q", k.VolumePath)
	}
	for i, d := range k.DependsOn {
		dp := fmt.Sprintf("%s.depends_on[%d]", q, i)
		j := slices.IndexFunc(c.Services, func(o Service) bool { return o.Name == d.Cluster })
		switch {
		case d.Cluster == s.Name:
			v.fail(dp+".cluster", "a cluster cannot depend on itself")
		case j < 0 || c.Services[j].Mode != ganger.ClusterMode:
			v.fail(dp+".cluster", "no mode: cluster service named %q", d.Cluster)
		case d.MinReady < 0 || d.MinReady > c.Services[j].Cluster.Size:
			v.fail(dp+".min_ready", "want 0 to %s's size (%d), got %d", d.Cluster, c.Services[j].Cluster.Size, d.MinReady)
		}
	}
	if cyc := dependencyCycle(c, s.Name); cyc != "" {
		v.fail(q+".depends_on", "a cycle: %s", cyc)
	}
	files := s.ClusterFiles()
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if _, err := ParseClusterFile(path, files[path]); err != nil {
			key := join(p+".init_config.files", path)
			line := v.pos.line(key)
			if n := valueOf(valueOf(s.InitConfig.node, "files"), path); n != nil {
				line = n.Line // the template's own line
			}
			v.errs = append(v.errs, Error{Line: line, Path: key, Msg: err.Error()})
		}
	}
	switch {
	case k.API != "":
		u, err := url.Parse(k.API)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			v.fail(q+".api", "want http://HOST:PORT, the API as members' containers reach it, got %q", k.API)
		}
	case c.API.Listen == "":
		v.fail(p+".mode", "mode: cluster needs the API (api.listen): members get their view from it")
	default:
		if port, wild := c.APIPort(); !wild {
			v.fail(q+".api", "missing: api.listen (%s) is not a wildcard address, so members' containers may not reach it; listen on 0.0.0.0:PORT or set cluster.api to the URL they reach it at", c.API.Listen)
		} else if port == "0" {
			v.fail(q+".api", "missing: api.listen (%s) has no fixed port to give members; choose one, or set cluster.api", c.API.Listen)
		}
	}
}

// dependencyCycle returns a cycle of depends_on through name, or "".
func dependencyCycle(c *Config, name string) string {
	deps := map[string][]string{}
	for _, s := range c.Services {
		if s.Mode == ganger.ClusterMode {
			for _, d := range s.Cluster.DependsOn {
				deps[s.Name] = append(deps[s.Name], d.Cluster)
			}
		}
	}
	var path []string
	var walk func(n string) bool
	onPath := map[string]bool{}
	walk = func(n string) bool {
		if n == name && len(path) > 0 {
			return true
		}
		if onPath[n] {
			return false
		}
		onPath[n] = true
		path = append(path, n)
		for _, d := range deps[n] {
			if walk(d) {
				return true
			}
		}
		path = path[:len(path)-1]
		return false
	}
	if walk(name) {
		return strings.Join(append(path, name), " → ")
	}
	return ""
}
