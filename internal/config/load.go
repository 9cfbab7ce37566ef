package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

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
	return oneLine(b.String())
}

// oneLine escapes control characters (a newline in a file name, or in a
// path given as a value) so that each error stays on its line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
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
	cfg, err := Parse(path, data)
	if err == nil {
		cfg.dir = filepath.Dir(path)
	}
	return cfg, err
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
	for i := range cfg.warnings {
		cfg.warnings[i].File = name
	}
	return cfg, nil
}

func parse(data []byte) (*Config, Errors) {
	doc, serr := readDocument(data)
	if serr != nil {
		return nil, Errors{*serr}
	}
	if doc == nil {
		return nil, Errors{{Msg: "the file is empty: at least one service is needed"}}
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return nil, Errors{{Line: root.Line, Msg: "the top level must be a mapping of keys (node, log, daemons, services)"}}
	}
	pos, errs := index(doc, reflect.TypeFor[Config]())
	if bad := append(structureErrors(doc), duplicateAnchors(doc)...); len(bad) > 0 {
		return nil, sortErrors(append(errs, bad...))
	}
	cfg := defaultConfig()
	derrs, fatal := decode(doc, &cfg, pos)
	errs = append(errs, derrs...)
	if fatal {
		return nil, sortErrors(errs)
	}
	cfg.applyDefaults()
	errs = append(errs, without(cfg.validate(pos), errs)...)
	if len(errs) == 0 {
		errs = cfg.resolveInit(pos)
	}
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	cfg.warnings = sortErrors(cfg.warn(pos))
	return &cfg, nil
}

// readDocument parses data as one YAML document; nil, nil if it holds none.
// yaml.v3 reads the first document and ignores what follows, so a second
// document, or keys indented less than the first key, would be dropped
// without a word: both are errors here.
func readDocument(data []byte) (*yaml.Node, *Error) {
	data, e := utf8Text(data)
	if e != nil {
		return nil, e
	}
	if e := badChar(data); e != nil {
		return nil, e
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, nil
	} else if err != nil {
		e := syntaxError(data, err)
		return nil, &e
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
		return &doc, nil
	case err == nil:
		return nil, &Error{Line: next.Line, Msg: "a second YAML document starts here: a config file holds one document"}
	default:
		e := syntaxError(data, err)
		if strings.HasSuffix(e.Msg, "did not find expected <document start>") {
			e.Msg = "invalid YAML: more after the end of the document: a config file holds one document"
			if root := doc.Content[0]; root.Column > 1 {
				e.Msg = fmt.Sprintf("invalid YAML: indented less than the first key (line %d, column %d): start the top-level keys in column 1", root.Line, root.Column)
			}
		}
		return nil, &e
	}
}

// decode fills cfg from doc. fatal reports an error that stopped decoding
// part way, after which validating what was decoded would mislead.
func decode(doc *yaml.Node, cfg *Config, pos *positions) (errs []Error, fatal bool) {
	add := func(err error, fallback string) {
		es, f := decodeErrors(err, doc, pos, fallback)
		errs = append(errs, es...)
		fatal = fatal || f
	}
	if err := doc.Decode(cfg); err != nil {
		add(err, "")
	}
	for i, d := range cfg.Daemons {
		if d.decodeErr != nil {
			add(d.decodeErr, fmt.Sprintf("daemons[%d]", i))
		}
	}
	for i, s := range cfg.Services {
		if s.decodeErr != nil {
			add(s.decodeErr, fmt.Sprintf("services[%d]", i))
		}
	}
	return errs, fatal
}

// without drops the errors about a key that already has one in have, or
// about a key below it: a key that failed to decode is left zero, and saying
// it is missing would mislead.
func without(errs, have []Error) []Error {
	bad := map[string]bool{}
	for _, e := range have {
		bad[e.Path] = true
	}
	out := errs[:0]
	for _, e := range errs {
		if !bad[e.Path] && !underAny(e.Path, bad) {
			out = append(out, e)
		}
	}
	return out
}

// underAny reports whether path is below one of the paths in set.
func underAny(path string, set map[string]bool) bool {
	for {
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return false
		}
		path = path[:i]
		if set[path] {
			return true
		}
	}
}

var lineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+)(?: column (\d+))?: (.*)$`)

// yamlMessage splits a yaml.v3 error into its message and the line it
// names (0 when it names none).
func yamlMessage(err error) (msg string, line int) {
	s := err.Error()
	if m := lineRE.FindStringSubmatch(s); m != nil {
		line, _ = strconv.Atoi(m[1])
		return m[3], line
	}
	return strings.TrimPrefix(s, "yaml: "), 0
}

// syntaxError places a yaml.v3 parse error on its line. yaml.v3 leaves the
// line out of errors on the first line, and of an unknown anchor, and
// gives others a line early, so the line is found again (see syntaxLine).
func syntaxError(data []byte, err error) Error {
	msg, _ := yamlMessage(err)
	return Error{Line: syntaxLine(data, msg), Msg: "invalid YAML: " + msg}
}

// decodeErrors turns yaml.v3's "line N: msg" type errors into Errors that
// name the key path too. Any other error stopped decoding (fatal): it is
// placed on the node that causes it, else on fallback's line.
func decodeErrors(err error, doc *yaml.Node, pos *positions, fallback string) (errs []Error, fatal bool) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg, line := yamlMessage(err)
		e := Error{Line: line, Path: fallback, Msg: "invalid YAML: " + msg}
		if n := decodeCulprit(doc, msg); n != nil {
			e.Line, e.Path = n.Line, pos.pathOf(n)
		}
		if e.Line == 0 {
			e.Line = max(pos.line(fallback), 1)
		}
		return []Error{e}, true
	}
	out := make([]Error, 0, len(te.Errors))
	for _, s := range te.Errors {
		m := lineRE.FindStringSubmatch(s)
		if m == nil {
			out = append(out, Error{Line: max(pos.line(fallback), 1), Path: fallback, Msg: s})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		out = append(out, Error{Line: line, Path: pos.pathAt(line, col), Msg: friendlier(m[3])})
	}
	return out, false
}

var unmarshalRE = regexp.MustCompile("(?s)^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.*)$")

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

// structureErrors reports a key written twice in one mapping, and an empty
// list entry, which yaml.v3 would drop without a word (and so shift the
// entries after it).
func structureErrors(doc *yaml.Node) []Error {
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
				ep := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" {
					errs = append(errs, Error{Line: c.Line, Path: ep, Msg: "empty entry, which would be dropped: fill it in (\"\" for an empty string) or remove it"})
				}
				walk(c, ep)
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

// duplicateAnchors reports an anchor defined twice. YAML lets the second
// win for the aliases after it; in a config file that is a copy-and-paste
// slip more often than an intent.
func duplicateAnchors(doc *yaml.Node) []Error {
	var errs []Error
	first := map[string]int{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Anchor != "" {
			if line, ok := first[n.Anchor]; ok {
				errs = append(errs, Error{Line: n.Line, Msg: fmt.Sprintf("anchor &%s is already defined at line %d: give each anchor its own name", n.Anchor, line)})
			} else {
				first[n.Anchor] = n.Line
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	return errs
}

func sortErrors(errs []Error) Errors {
	slices.SortStableFunc(errs, func(a, b Error) int { return a.Line - b.Line })
	return errs
}
