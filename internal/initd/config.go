package initd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is ganger-init's file: the processes it runs and how it stops.
type Config struct {
	// ShutdownGrace is how long the processes left once every configured
	// one stopped (re-parented daemons) get between TERM and KILL.
	// Default 5s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// ExitCodeFrom names the process whose exit code ganger-init leaves
	// with. Default: the first main process (by name), else the last
	// process to exit on its own, else 0.
	ExitCodeFrom string `yaml:"exit_code_from"`
	// Control is the control interface.
	Control Control `yaml:"control"`
	// Processes by name.
	Processes map[string]*Process `yaml:"processes"`
	// Files are a cluster member's files (absolute path → Go
	// text/template). Ganger renders them from the cluster's view and
	// sends them in the view; ganger-init only checks the paths here and
	// writes what the view carries, before the processes start and at
	// each released epoch.
	Files map[string]string `yaml:"files"`
	// OnChange is what a later released epoch does once its files are
	// written.
	OnChange *OnChange `yaml:"on_change"`
	// Cluster makes ganger-init a member of a Ganger cluster: the
	// processes wait for the first released epoch.
	Cluster *Cluster `yaml:"cluster"`
}

// OnChange is one of: restart processes, signal them, or run a command.
type OnChange struct {
	Restart []string          `yaml:"restart"`
	Signal  map[string]string `yaml:"signal"` // process → signal
	Command []string          `yaml:"command"`
}

// Cluster is where a member's view comes from. Each field may also come
// from the environment (GANGER_CLUSTER_API, GANGER_CLUSTER,
// GANGER_ORDINAL, GANGER_CLUSTER_TOKEN, the token itself); the
// environment wins, since Ganger sets it per member while the file is
// shared by every member. GANGER_CLUSTER_API alone makes ganger-init a
// member.
type Cluster struct {
	API       string `yaml:"api"` // Ganger's API, http://host:port
	Name      string `yaml:"name"`
	Ordinal   *int   `yaml:"ordinal"`
	TokenFile string `yaml:"token_file"`
	token     string // from GANGER_CLUSTER_TOKEN
}

// Control is where ganger-init listens for ganger-init ctl.
type Control struct {
	// Socket is the unix socket. Default /run/ganger-init.sock; "none":
	// no socket.
	Socket string `yaml:"socket"`
	// Listen is an optional TCP address; it needs a token.
	Listen    string `yaml:"listen"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// Process is one supervised process.
type Process struct {
	Cmd  []string          `yaml:"cmd"`
	Env  map[string]string `yaml:"env"`
	Dir  string            `yaml:"dir"`
	User string            `yaml:"user"` // name, uid or uid:gid
	// Restart is always (default), on-failure or never (the default for
	// a oneshot).
	Restart string  `yaml:"restart"`
	Backoff Backoff `yaml:"backoff"`
	// MaxRestarts within RestartWindow make the process FATAL; 0: no limit.
	MaxRestarts   int           `yaml:"max_restarts"`
	RestartWindow time.Duration `yaml:"restart_window"`
	// Main: when it ends for good, everything stops; its exit code is
	// the container's (unless exit_code_from says otherwise).
	Main bool `yaml:"main"`
	// Required: when it goes FATAL, everything stops with a non-zero code.
	Required bool `yaml:"required"`
	// Oneshot runs once to completion (a migration, a setup step).
	Oneshot bool    `yaml:"oneshot"`
	After   []After `yaml:"after"`
	Ready   *Check  `yaml:"ready"`
	Health  *Check  `yaml:"health"`
	Stop    Stop    `yaml:"stop"`

	// Set by --dir: the runit service's finish script and log service.
	finish string
	logOf  string // this is the log service of that process: its stdin is that one's stdout
	down   bool   // a down file: not started until asked
}

// Backoff paces restarts: initial, doubling up to max; reset after a run
// longer than max.
type Backoff struct {
	Initial time.Duration `yaml:"initial"`
	Max     time.Duration `yaml:"max"`
}

// After is a dependency: start only once Process meets Condition.
type After struct {
	Process string `yaml:"process"`
	// Condition is started (default), ready, healthy or completed.
	Condition string `yaml:"condition"`
}

// Check is a readiness or health check: exactly one of TCP, HTTP, Exec.
type Check struct {
	TCP  string   `yaml:"tcp"`
	HTTP string   `yaml:"http"`
	Exec []string `yaml:"exec"`
	// Interval between tries. Default 200ms for ready, 5s for health.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one try. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Failures in a row that make a health check fail (the process is
	// restarted). Default 3.
	Failures int `yaml:"failures"`
	// Within (ready only): how long it may take; past it the process is
	// restarted. Default 60s.
	Within time.Duration `yaml:"within"`
}

// Stop is how a process is stopped: Signal to its process group, then
// KILL after Timeout.
type Stop struct {
	Signal  string        `yaml:"signal"`
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults.
const (
	DefaultGrace        = 5 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultBackoff      = 200 * time.Millisecond
	DefaultBackoffMax   = 10 * time.Second
	DefaultWindow       = time.Minute
	DefaultSocket       = "/run/ganger-init.sock"
	defaultReadyEvery   = 200 * time.Millisecond
	defaultHealthEvery  = 5 * time.Second
	defaultCheckTimeout = 2 * time.Second
	defaultFailures     = 3
	defaultReadyWithin  = time.Minute
)

// ConfigError is every problem of a config, each with its key and line.
type ConfigError struct {
	File     string
	Problems []string
}

func (e *ConfigError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// ParseConfig reads a config strictly (an unknown key is an error), fills
// in the defaults and checks it: every problem is named with its key and
// line.
func ParseConfig(name string, b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, &ConfigError{File: name, Problems: []string{fmt.Sprintf("%s: %v", name, err)}}
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			p := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				p[i] = name + ": " + e
			}
			return nil, &ConfigError{File: name, Problems: p}
		}
		return nil, &ConfigError{File: name, Problems: []string{fmt.Sprintf("%s: %v", name, err)}}
	}
	cfg.clusterEnv(os.LookupEnv)
	cfg.defaults()
	v := &checker{name: name, root: &root}
	v.config(cfg)
	if len(v.problems) > 0 {
		return nil, &ConfigError{File: name, Problems: v.problems}
	}
	return cfg, nil
}

func (c *Config) defaults() {
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultGrace
	}
	if c.Control.Socket == "" {
		c.Control.Socket = DefaultSocket
	}
	for _, p := range c.Processes {
		if p == nil {
			continue
		}
		p.defaults()
	}
}

func (p *Process) defaults() {
	if p.Restart == "" {
		p.Restart = "always"
		if p.Oneshot {
			p.Restart = "never"
		}
	}
	if p.Backoff.Initial == 0 {
		p.Backoff.Initial = DefaultBackoff
	}
	if p.Backoff.Max == 0 {
		p.Backoff.Max = max(DefaultBackoffMax, p.Backoff.Initial)
	}
	if p.RestartWindow == 0 {
		p.RestartWindow = DefaultWindow
	}
	if p.Stop.Signal == "" {
		p.Stop.Signal = "TERM"
	}
	if p.Stop.Timeout == 0 {
		p.Stop.Timeout = DefaultStopTimeout
	}
	for i := range p.After {
		if p.After[i].Condition == "" {
			p.After[i].Condition = "started"
		}
	}
	for _, c := range []*Check{p.Ready, p.Health} {
		if c == nil {
			continue
		}
		if c.Timeout == 0 {
			c.Timeout = defaultCheckTimeout
		}
		if c.Failures == 0 {
			c.Failures = defaultFailures
		}
		if c.Within == 0 {
			c.Within = defaultReadyWithin
		}
	}
	if p.Ready != nil && p.Ready.Interval == 0 {
		p.Ready.Interval = defaultReadyEvery
	}
	if p.Health != nil && p.Health.Interval == 0 {
		p.Health.Interval = defaultHealthEvery
	}
}

// checker collects a config's problems with their lines.
type checker struct {
	name     string
	root     *yaml.Node
	problems []string
}

func (v *checker) fail(path []string, format string, args ...any) {
	key := strings.Join(path, ".")
	if line := v.line(path); line > 0 {
		v.problems = append(v.problems, fmt.Sprintf("%s:%d: %s: %s", v.name, line, key, fmt.Sprintf(format, args...)))
		return
	}
	v.problems = append(v.problems, fmt.Sprintf("%s: %s: %s", v.name, key, fmt.Sprintf(format, args...)))
}

// line finds the line of a key path (map keys, or list indexes), or of the
// nearest parent that exists.
func (v *checker) line(path []string) int {
	n := v.root
	if n == nil || len(n.Content) == 0 {
		return 0
	}
	n = n.Content[0]
	line := 0
	for _, k := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

func (v *checker) config(c *Config) {
	if len(c.Processes) == 0 {
		v.fail([]string{"processes"}, "missing: at least one process")
	}
	if c.ShutdownGrace < 0 {
		v.fail([]string{"shutdown_grace"}, "must not be negative")
	}
	if c.ExitCodeFrom != "" && c.Processes[c.ExitCodeFrom] == nil {
		v.fail([]string{"exit_code_from"}, "no process %q", c.ExitCodeFrom)
	}
	if c.Control.Listen != "" && c.Control.Token == "" && c.Control.TokenFile == "" {
		v.fail([]string{"control", "listen"}, "a TCP control address needs control.token or control.token_file")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Processes)) {
		v.process(name, c.Processes[name], c.Processes)
	}
	v.cycles(c.Processes)
	v.cluster(c)
}

func (v *checker) process(name string, p *Process, all map[string]*Process) {
	at := func(keys ...string) []string { return append([]string{"processes", name}, keys...) }
	if !validName(name) {
		v.fail(at(), "want a name of letters, digits, '.', '_' or '-'")
	}
	if p == nil {
		v.fail(at(), "empty: a process needs cmd")
		return
	}
	if len(p.Cmd) == 0 || p.Cmd[0] == "" {
		v.fail(at("cmd"), "missing: the command to run")
	}
	if !slices.Contains([]string{"always", "on-failure", "never"}, p.Restart) {
		v.fail(at("restart"), "want always, on-failure or never, got %q", p.Restart)
	}
	if p.Oneshot && p.Restart == "always" {
		v.fail(at("restart"), "a oneshot cannot restart always (on-failure or never)")
	}
	if p.Backoff.Initial < 0 || p.Backoff.Max < p.Backoff.Initial {
		v.fail(at("backoff"), "want 0 < initial <= max")
	}
	if p.MaxRestarts < 0 {
		v.fail(at("max_restarts"), "want 0 (no limit) or more")
	}
	if _, err := ParseSignal(p.Stop.Signal); err != nil {
		v.fail(at("stop", "signal"), "%v", err)
	}
	if p.Stop.Timeout < 0 {
		v.fail(at("stop", "timeout"), "must not be negative")
	}
	for i, a := range p.After {
		k := at("after", strconv.Itoa(i))
		dep := all[a.Process]
		switch {
		case a.Process == "":
			v.fail(k, "missing: process")
		case a.Process == name:
			v.fail(k, "a process cannot wait for itself")
		case dep == nil:
			v.fail(k, "no process %q", a.Process)
		}
		switch a.Condition {
		case "started", "ready", "healthy":
		case "completed":
			if dep != nil && !dep.Oneshot {
				v.fail(k, "condition completed needs %s to be a oneshot", a.Process)
			}
		default:
			v.fail(append(k, "condition"), "want started, ready, healthy or completed, got %q", a.Condition)
		}
	}
	v.check(at("ready"), p.Ready)
	v.check(at("health"), p.Health)
}

func (v *checker) check(path []string, c *Check) {
	if c == nil {
		return
	}
	n := 0
	if c.TCP != "" {
		n++
		if _, _, err := splitHostPort(c.TCP); err != nil {
			v.fail(append(path, "tcp"), "want host:port, got %q", c.TCP)
		}
	}
	if c.HTTP != "" {
		n++
		if u, err := url.Parse(c.HTTP); err != nil || u.Scheme != "http" || u.Host == "" {
			v.fail(append(path, "http"), "want an http:// URL, got %q", c.HTTP)
		}
	}
	if len(c.Exec) > 0 {
		n++
	}
	if n != 1 {
		v.fail(path, "want exactly one of tcp, http or exec")
	}
	if c.Interval < 0 || c.Timeout < 0 || c.Within < 0 || c.Failures < 0 {
		v.fail(path, "durations and failures must not be negative")
	}
}

// cycles reports a dependency cycle, naming its members in order.
func (v *checker) cycles(all map[string]*Process) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		p := all[n]
		if p != nil {
			for _, a := range p.After {
				if all[a.Process] == nil || a.Process == n {
					continue
				}
				switch color[a.Process] {
				case grey:
					i := slices.Index(stack, a.Process)
					cycle := append(slices.Clone(stack[i:]), a.Process)
					v.fail([]string{"processes", n, "after"}, "dependency cycle: %s", strings.Join(cycle, " → "))
					return true
				case white:
					if visit(a.Process) {
						return true
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range slices.Sorted(maps.Keys(all)) {
		if color[n] == white && visit(n) {
			return
		}
	}
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '/') {
			return false
		}
	}
	return true
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("no port")
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("bad port")
	}
	return s[:i], n, nil
}

// Source is where the processes come from: a runit directory, a file, or
// an environment variable holding the YAML.
type Source struct {
	Dir, File, Env string
	Grace          time.Duration // --grace, for --dir
	text           []byte        // Env's value, kept once it is unset
}

// keep takes the config out of the environment, so that no process
// inherits it (it may hold the control token); reloads read the copy.
func (s *Source) keep() {
	if s.Env == "" || s.text != nil {
		return
	}
	if v, ok := os.LookupEnv(s.Env); ok {
		s.text = []byte(v)
		os.Unsetenv(s.Env)
	}
}

// Load reads the source's config.
func (s Source) Load() (*Config, error) {
	switch {
	case s.Dir != "":
		return DirConfig(s.Dir, s.Grace)
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, err
		}
		return ParseConfig(s.File, b)
	case s.text != nil:
		return ParseConfig("$"+s.Env, s.text)
	default:
		b, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return ParseConfig("$"+s.Env, []byte(b))
	}
}

// DirConfig reads runit's layout: each subdirectory of dir with an
// executable run is a service (run in its directory, restarted with
// backoff); finish, if executable, runs after each exit with the exit
// code and signal; a down file means not started until asked; log/run,
// if there, is a second process fed the service's output.
func DirConfig(dir string, grace time.Duration) (*Config, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	cfg := &Config{ShutdownGrace: grace, Processes: map[string]*Process{}}
	for _, e := range ents {
		sd := filepath.Join(dir, e.Name())
		if st, err := os.Stat(sd); err != nil || !st.IsDir() || !executable(filepath.Join(sd, "run")) {
			continue
		}
		p := &Process{Cmd: []string{filepath.Join(sd, "run")}, Dir: sd, Restart: "always",
			Backoff: Backoff{Initial: time.Second, Max: 10 * time.Second}}
		if executable(filepath.Join(sd, "finish")) {
			p.finish = filepath.Join(sd, "finish")
		}
		if _, err := os.Stat(filepath.Join(sd, "down")); err == nil {
			p.down = true
		}
		cfg.Processes[e.Name()] = p
		if ld := filepath.Join(sd, "log"); executable(filepath.Join(ld, "run")) {
			cfg.Processes[e.Name()+"/log"] = &Process{Cmd: []string{filepath.Join(ld, "run")}, Dir: ld, Restart: "always",
				Backoff: Backoff{Initial: time.Second, Max: 10 * time.Second}, logOf: e.Name()}
		}
	}
	if len(cfg.Processes) == 0 {
		return nil, fmt.Errorf("%s: no service (a subdirectory with an executable run file)", dir)
	}
	cfg.defaults()
	return cfg, nil
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// signalOf is a validated stop signal.
func signalOf(s string) syscall.Signal {
	sig, err := ParseSignal(s)
	if err != nil {
		return syscall.SIGTERM
	}
	return sig
}

// clusterEnv fills the cluster's settings from the environment, which
// wins over the file (see Cluster).
func (c *Config) clusterEnv(lookup func(string) (string, bool)) {
	api, ok := lookup("GANGER_CLUSTER_API")
	if c.Cluster == nil && !ok {
		return
	}
	if c.Cluster == nil {
		c.Cluster = &Cluster{}
	}
	if ok {
		c.Cluster.API = api
	}
	if v, ok := lookup("GANGER_CLUSTER"); ok {
		c.Cluster.Name = v
	}
	if v, ok := lookup("GANGER_ORDINAL"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			n = -1 // reported by the checker
		}
		c.Cluster.Ordinal = &n
	}
	if v, ok := lookup("GANGER_CLUSTER_TOKEN"); ok {
		c.Cluster.token = v
	}
}

// cluster checks files, on_change and cluster. The files' templates are
// Ganger's to parse and render: only their paths are checked here. Files
// and on_change without cluster are valid: Ganger checks a member's config
// without the environment it gives each member.
func (v *checker) cluster(c *Config) {
	for _, path := range slices.Sorted(maps.Keys(c.Files)) {
		if !filepathIsAbs(path) {
			v.fail([]string{"files", path}, "want an absolute path")
		}
	}
	if o := c.OnChange; o != nil {
		v.onChange(o, c.Processes)
	}
	k := c.Cluster
	if k == nil {
		return
	}
	if u, err := url.Parse(k.API); err != nil || u.Scheme != "http" || u.Host == "" {
		v.fail([]string{"cluster", "api"}, "want an http:// URL (or GANGER_CLUSTER_API), got %q", k.API)
	}
	if !validName(k.Name) {
		v.fail([]string{"cluster", "name"}, "want the cluster's name (or GANGER_CLUSTER), got %q", k.Name)
	}
	if k.Ordinal == nil || *k.Ordinal < 0 {
		v.fail([]string{"cluster", "ordinal"}, "want the member's ordinal, 0 or more (or GANGER_ORDINAL)")
	}
}

func (v *checker) onChange(o *OnChange, procs map[string]*Process) {
	n := 0
	for _, set := range []bool{len(o.Restart) > 0, len(o.Signal) > 0, len(o.Command) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.fail([]string{"on_change"}, "want exactly one of restart, signal or command")
	}
	for i, name := range o.Restart {
		if procs[name] == nil {
			v.fail([]string{"on_change", "restart", strconv.Itoa(i)}, "no process %q", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(o.Signal)) {
		if procs[name] == nil {
			v.fail([]string{"on_change", "signal", name}, "no process %q", name)
		}
		if _, err := ParseSignal(o.Signal[name]); err != nil {
			v.fail([]string{"on_change", "signal", name}, "%v", err)
		}
	}
	if len(o.Command) > 0 && o.Command[0] == "" {
		v.fail([]string{"on_change", "command"}, "missing: the command to run")
	}
}
