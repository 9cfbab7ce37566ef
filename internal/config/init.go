package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/initd"
)

// InitGanger is the value of a service's init key that runs its
// containers' command under ganger-init.
const InitGanger = "ganger"

// DefaultInitBinaryName is the file name of the ganger-init executable,
// looked for next to the ganger executable when init_binary is not set.
const DefaultInitBinaryName = "ganger-init"

// maxInitBinary bounds what is read of init_binary: ganger-init is a few
// MiB; a path mistyped onto something larger is refused.
const maxInitBinary = 256 << 20

// InitConfig is ganger-init's configuration, written inline under a
// service's init_config: the processes each container runs. It is kept as
// YAML (aliases expanded) for the container's environment; an empty
// mapping is no configuration.
type InitConfig struct {
	node *yaml.Node // as written, aliases expanded (lines kept); nil: none
	text string     // node marshalled: what ganger-init reads
	err  error      // the mapping could not be expanded
}

// UnmarshalYAML keeps the node; what it holds is checked by validate.
func (c *InitConfig) UnmarshalYAML(n *yaml.Node) error {
	*c = InitConfig{}
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 || n.ShortTag() == "!!null" {
		return nil
	}
	budget := maxInitNodes
	c.node, c.err = expand(n, 0, &budget)
	if c.err == nil && c.node.Kind == yaml.MappingNode {
		b, err := yaml.Marshal(c.node)
		c.text, c.err = string(b), err
	}
	return nil
}

// YAML is the configuration as ganger-init reads it; "" if none.
func (c InitConfig) YAML() string { return c.text }

// Limits on expanding aliases in init_config: an alias naming its own
// ancestor, or aliases of aliases, must not expand without end.
const (
	maxInitDepth = 64
	maxInitNodes = 10000
)

// expand copies n with every alias replaced by a copy of what it names
// and no anchors or comments, so that it marshals on its own; each node
// keeps its line.
func expand(n *yaml.Node, depth int, budget *int) (*yaml.Node, error) {
	*budget--
	if depth > maxInitDepth || *budget < 0 {
		return nil, errors.New("too large or too deeply nested once its aliases are expanded")
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return expand(n.Alias, depth+1, budget)
	}
	c := *n
	c.Anchor, c.HeadComment, c.LineComment, c.FootComment = "", "", "", ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		e, err := expand(k, depth+1, budget)
		if err != nil {
			return nil, err
		}
		c.Content[i] = e
	}
	return &c, nil
}

// InitSpec is how the service's containers run under ganger-init: the
// zero Init unless init is ganger.
func (s Service) InitSpec() ganger.Init { return s.initSpec }

// InitBinaryPath is the ganger-init executable that services with init:
// ganger use: init_binary (relative to the working directory, as other
// file keys are), else ganger-init next to the running executable.
func (c *Config) InitBinaryPath() string {
	if c.InitBinary != "" {
		return c.InitBinary
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), DefaultInitBinaryName)
}

// initKeys checks a service's init and init_config.
func (v *validator) initKeys(p string, s Service) {
	if s.Init != "" && s.Init != InitGanger {
		v.fail(p+".init", "want \"\" (the image's command is PID 1) or ganger (run it under ganger-init), got %q", s.Init)
	}
	ic, key := s.InitConfig, p+".init_config"
	switch {
	case ic.node == nil && ic.err == nil:
	case ic.err != nil:
		v.fail(key, "%v", ic.err)
	case ic.node.Kind != yaml.MappingNode:
		v.fail(key, "want a mapping: ganger-init's configuration (processes: {NAME: {cmd: [...]}})")
	case s.Init != InitGanger:
		v.fail(key, "needs init: ganger")
	case len(s.Cmd) > 0 || len(s.Entrypoint) > 0:
		v.fail(key, "runs the processes it lists instead of the container's command: cmd and entrypoint do not apply")
	default:
		v.initConfig(key, ic)
	}
}

var (
	initLineRE = regexp.MustCompile(`(?s)^init_config:(\d+): (.*)$`)
	initTypeRE = regexp.MustCompile(`(?s)^init_config: line (\d+): (.*)$`)
	unknownRE  = regexp.MustCompile(`^field (.*) not found in type \S+$`)
)

// initConfig checks the configuration as ganger-init will, and places
// each problem on the line of the file it stands on.
func (v *validator) initConfig(key string, ic InitConfig) {
	_, err := initd.ParseConfig("init_config", []byte(ic.text))
	var ce *initd.ConfigError
	if err == nil {
		return
	}
	if !errors.As(err, &ce) {
		v.fail(key, "%v", err)
		return
	}
	lines := initLines(ic)
	for _, p := range ce.Problems {
		line, msg := v.pos.line(key), p
		if m := initLineRE.FindStringSubmatch(p); m != nil {
			line, msg = lines.at(m[1], line), m[2]
		} else if m := initTypeRE.FindStringSubmatch(p); m != nil {
			line, msg = lines.at(m[1], line), friendlier(m[2])
			if u := unknownRE.FindStringSubmatch(msg); u != nil {
				msg = fmt.Sprintf("unknown key %q", u[1])
			}
		} else if rest, ok := strings.CutPrefix(p, "init_config: "); ok {
			msg = rest
		}
		v.errs = append(v.errs, Error{Line: line, Path: key, Msg: msg})
	}
}

// lineMap maps the lines of init_config's marshalled text to the lines of
// the file.
type lineMap map[int]int

func (m lineMap) at(textLine string, otherwise int) int {
	n, _ := strconv.Atoi(textLine)
	if l, ok := m[n]; ok && l > 0 {
		return l
	}
	return otherwise
}

// initLines walks the marshalled text and the node it came from side by
// side: they have the same shape.
func initLines(ic InitConfig) lineMap {
	var doc yaml.Node
	m := lineMap{}
	if yaml.Unmarshal([]byte(ic.text), &doc) != nil || len(doc.Content) == 0 {
		return m
	}
	var walk func(t, o *yaml.Node)
	walk = func(t, o *yaml.Node) {
		if _, ok := m[t.Line]; !ok {
			m[t.Line] = o.Line
		}
		for i := range min(len(t.Content), len(o.Content)) {
			walk(t.Content[i], o.Content[i])
		}
	}
	walk(doc.Content[0], ic.node)
	return m
}

// resolveInit reads the ganger-init binary when a service runs under it,
// and gives those services its path, digest and their init_config.
func (c *Config) resolveInit(pos *positions) []Error {
	first := -1
	for i, s := range c.Services {
		if s.Init == InitGanger && first < 0 {
			first = i
		}
	}
	if first < 0 {
		return nil
	}
	path := c.InitBinaryPath()
	digest, err := initDigest(path)
	if err != nil {
		v := &validator{pos: pos}
		if pos.line("init_binary") > 0 {
			v.fail("init_binary", "%v", err)
		} else {
			v.fail(fmt.Sprintf("services[%d].init", first), "%v (set init_binary: the default is %s next to the ganger executable)", err, DefaultInitBinaryName)
		}
		return v.errs
	}
	for i := range c.Services {
		if s := &c.Services[i]; s.Init == InitGanger {
			s.initSpec = ganger.Init{Binary: path, Digest: digest, Config: s.InitConfig.text}
		}
	}
	return nil
}

// initDigest reads the ganger-init binary at path and returns its digest.
func initDigest(path string) (string, error) {
	if path == "" {
		return "", errors.New("cannot find the ganger-init binary")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the ganger-init binary: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read the ganger-init binary: %w", err)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("the ganger-init binary %s is not a regular file", path)
	case fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("the ganger-init binary %s is not executable", path)
	case fi.Size() == 0 || fi.Size() > maxInitBinary:
		return "", fmt.Errorf("the ganger-init binary %s is %d bytes: not a ganger-init", path, fi.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxInitBinary+1))
	if err != nil {
		return "", fmt.Errorf("cannot read the ganger-init binary: %w", err)
	}
	return ganger.InitDigest(b), nil
}
