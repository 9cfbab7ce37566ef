package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// positions maps key paths such as "services[0].ready.timeout" to where they
// stand in the file, so that every error can name its key and line.
type positions struct {
	byPath map[string]pos
	byLine map[int][]pathPos // the paths whose value starts on a line
}

type pos struct{ line, col int }

type pathPos struct {
	path string
	col  int
}

func (p *positions) add(path string, n *yaml.Node) {
	p.byPath[path] = pos{n.Line, n.Column}
	p.byLine[n.Line] = append(p.byLine[n.Line], pathPos{path, n.Column})
}

// line returns the line of path, or of its nearest ancestor that is known.
func (p *positions) line(path string) int {
	for {
		if q, ok := p.byPath[path]; ok {
			return q.line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// pathAt returns the key path whose value starts at line and column (or, if
// col is 0, the last one on that line).
func (p *positions) pathAt(line, col int) string {
	cands := p.byLine[line]
	for _, c := range cands {
		if c.col == col {
			return c.path
		}
	}
	if len(cands) > 0 {
		return cands[len(cands)-1].path
	}
	return ""
}

// index walks the document against the Go type it decodes into. It records
// the position of every value and reports every key that t does not know.
func index(doc *yaml.Node, t reflect.Type) (*positions, []Error) {
	p := &positions{byPath: map[string]pos{}, byLine: map[int][]pathPos{}}
	var errs []Error
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, t reflect.Type, path string) {
		if path != "" {
			p.add(path, n)
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && !isScalarType(t):
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				kp := join(path, k.Value)
				ft, ok := fields[k.Value]
				if !ok {
					errs = append(errs, Error{Line: k.Line, Path: kp, Msg: fmt.Sprintf("unknown key %q%s", k.Value, suggest(k.Value, fields))})
					continue
				}
				walk(v, ft, kp)
			}
		case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
			}
		case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
			for i, c := range n.Content {
				walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(root, t, "")
	return p, errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// isScalarType reports types written as one YAML scalar.
func isScalarType(t reflect.Type) bool {
	return t == reflect.TypeFor[Duration]() || t == reflect.TypeFor[Size]()
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

// suggest names a known key that is one edit or a swap away from key.
func suggest(key string, fields map[string]reflect.Type) string {
	for name := range fields {
		if closeTo(key, name) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

func closeTo(a, b string) bool {
	if a == b || abs(len(a)-len(b)) > 1 {
		return false
	}
	// Levenshtein distance of at most 1, or one adjacent swap.
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	switch {
	case len(a) == len(b):
		if a[i+1:] == b[i+1:] {
			return true
		}
		return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
	case len(a) > len(b):
		return a[i+1:] == b[i:]
	default:
		return a[i:] == b[i+1:]
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
