package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Path string // key path such as services[0].ready.timeout; "" for the file
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads, decodes, defaults and validates the file at path. Its error,
// when not an I/O error, is an Errors listing every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; name labels the errors.
func Parse(name string, data []byte) (*Config, error) {
	cfg, errs := parse(data)
	for i := range errs {
		errs[i].File = name
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

func parse(data []byte) (*Config, Errors) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{syntaxError(err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, Errors{{Msg: "the file is empty: at least one service is needed"}}
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return nil, Errors{{Line: root.Line, Msg: "the top level must be a mapping of keys (node, log, daemons, services)"}}
	}
	pos, errs := index(&doc, reflect.TypeFor[Config]())
	if dups := duplicateKeys(&doc); len(dups) > 0 {
		return nil, append(errs, dups...)
	}
	cfg := defaultConfig()
	if err := doc.Decode(&cfg); err != nil {
		errs = append(errs, decodeErrors(err, pos)...)
	}
	for _, d := range cfg.Daemons {
		if d.decodeErr != nil {
			errs = append(errs, decodeErrors(d.decodeErr, pos)...)
		}
	}
	for _, s := range cfg.Services {
		if s.decodeErr != nil {
			errs = append(errs, decodeErrors(s.decodeErr, pos)...)
		}
	}
	cfg.applyDefaults()
	errs = append(errs, without(cfg.validate(pos), errs)...)
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	return &cfg, nil
}

// without drops the errors about a key that already has one in have: a key
// that failed to decode is left zero, and saying it is missing would mislead.
func without(errs, have []Error) []Error {
	bad := map[string]bool{}
	for _, e := range have {
		bad[e.Path] = true
	}
	out := errs[:0]
	for _, e := range errs {
		if !bad[e.Path] {
			out = append(out, e)
		}
	}
	return out
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+)(?: column (\d+))?: (.*)$`)

func syntaxError(err error) Error {
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{Line: line, Msg: "invalid YAML: " + m[3]}
	}
	return Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// decodeErrors turns yaml.v3's "line N: msg" type errors into Errors that
// name the key path too.
func decodeErrors(err error, pos *positions) []Error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []Error{syntaxError(err)}
	}
	out := make([]Error, 0, len(te.Errors))
	for _, s := range te.Errors {
		m := lineRE.FindStringSubmatch(s)
		if m == nil {
			out = append(out, Error{Msg: s})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		out = append(out, Error{Line: line, Path: pos.pathAt(line, col), Msg: friendlier(m[3])})
	}
	return out
}

var unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.*)$")

// friendlier rewrites yaml.v3's Go-flavoured type errors for people.
func friendlier(msg string) string {
	m := unmarshalRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := m[3]
	switch {
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	case strings.HasPrefix(want, "map["):
		want = "a mapping"
	case strings.HasPrefix(want, "int"), strings.HasPrefix(want, "uint"):
		want = "a whole number"
	case strings.HasPrefix(want, "float"):
		want = "a number"
	case want == "bool":
		want = "true or false"
	case want == "string":
		want = "a string"
	default:
		if i := strings.LastIndex(want, "."); i >= 0 {
			want = "a " + strings.ToLower(want[i+1:])
		}
	}
	got := map[string]string{"str": "string", "int": "number", "float": "number", "bool": "boolean", "seq": "list", "map": "mapping", "null": "null"}[m[1]]
	if got == "" {
		got = m[1]
	}
	if m[2] != "" {
		return fmt.Sprintf("want %s, got %s %q", want, got, m[2])
	}
	return fmt.Sprintf("want %s, got a %s", want, got)
}

// duplicateKeys reports a key written twice in one mapping.
func duplicateKeys(doc *yaml.Node) []Error {
	var errs []Error
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.MappingNode:
			seen := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if first, ok := seen[k.Value]; ok {
					errs = append(errs, Error{Line: k.Line, Path: join(path, k.Value), Msg: fmt.Sprintf("key written twice (first at line %d)", first)})
					continue
				}
				seen[k.Value] = k.Line
				walk(n.Content[i+1], join(path, k.Value))
			}
		}
	}
	walk(doc, "")
	return errs
}

func sortErrors(errs []Error) Errors {
	slices.SortStableFunc(errs, func(a, b Error) int { return a.Line - b.Line })
	return errs
}
