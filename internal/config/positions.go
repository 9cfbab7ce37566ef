package config

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

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

// pathOf returns the key path whose value is n, or "" if none is.
func (p *positions) pathOf(n *yaml.Node) string {
	for _, c := range p.byLine[n.Line] {
		if c.col == n.Column {
			return c.path
		}
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
		case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && !decodedWhole(t):
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

// join appends key to path; a key with spaces, quotes or control
// characters is quoted, so that a path stays on one line.
func join(path, key string) string {
	if !plainKey(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' {
			return false
		}
	}
	return true
}

// decodedWhole reports the struct types that are not mappings of keys:
// those written as one YAML scalar, and ganger-init's configuration, whose
// keys ganger-init checks (see InitConfig).
func decodedWhole(t reflect.Type) bool {
	return t == reflect.TypeFor[Duration]() || t == reflect.TypeFor[Size]() || t == reflect.TypeFor[InitConfig]()
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

// syntaxLine returns the line of a YAML syntax error whose message is msg:
// the first line such that data, cut after it, fails with that message
// (found by bisection).
func syntaxLine(data []byte, msg string) int {
	ends := lineEnds(data)
	lo, hi := 1, len(ends)
	for lo < hi {
		mid := (lo + hi) / 2
		if streamError(data[:ends[mid-1]]) == msg {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// streamError parses every document in data and returns the message of the
// first syntax error, or "".
func streamError(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return ""
		}
		if err != nil {
			msg, _ := yamlMessage(err)
			return msg
		}
	}
}

// lineEnds returns the offset just past each line of data, counting line
// breaks as YAML does (and so as yaml.v3 numbers lines): LF, CRLF, CR, NEL,
// LS and PS.
func lineEnds(data []byte) []int {
	var ends []int
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		i += size
		switch r {
		case '\r':
			if i < len(data) && data[i] == '\n' {
				i++
			}
			ends = append(ends, i)
		case '\n', '\u0085', '\u2028', '\u2029':
			ends = append(ends, i)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// lineOf returns the line that the byte at offset off stands on.
func lineOf(data []byte, off int) int {
	if off == 0 {
		return 1
	}
	n := len(lineEnds(data[:off]))
	if r, _ := utf8.DecodeLastRune(data[:off]); r == '\n' || r == '\r' || r == '\u0085' || r == '\u2028' || r == '\u2029' {
		return n + 1
	}
	return n // the last of the ends is that of the line off is on
}

// utf8Text returns data as UTF-8. YAML may be UTF-16 too, with a
// byte-order mark; it is converted here so that lines are counted in
// UTF-8 throughout.
func utf8Text(data []byte) ([]byte, *Error) {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		order = binary.BigEndian
	default:
		return data, nil
	}
	out := make([]byte, 0, len(data))
	for i := 2; i < len(data); i += 2 {
		if i+1 == len(data) {
			return nil, &Error{Line: lineOf(out, len(out)), Msg: "invalid YAML: the UTF-16 text ends in half a character"}
		}
		r := rune(order.Uint16(data[i:]))
		if utf16.IsSurrogate(r) {
			if i+3 < len(data) {
				r = utf16.DecodeRune(r, rune(order.Uint16(data[i+2:])))
				i += 2
			}
			if r == unicode.ReplacementChar || utf16.IsSurrogate(r) {
				return nil, &Error{Line: lineOf(out, len(out)), Msg: "invalid YAML: invalid UTF-16 (an unpaired surrogate)"}
			}
		}
		out = utf8.AppendRune(out, r)
	}
	return out, nil
}

// badChar reports the first character of data that YAML does not allow
// (yaml.v3 reports it without a line): invalid UTF-8 or a control character
// other than tab and line breaks.
func badChar(data []byte) *Error {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var msg string
		switch {
		case r == utf8.RuneError && size == 1:
			msg = fmt.Sprintf("invalid UTF-8 (byte 0x%02x): the file must be UTF-8", data[i])
		case r == 0:
			msg = "a NUL byte is not allowed (is this a binary file?)"
		case !yamlAllowed(r):
			msg = fmt.Sprintf("control character %U is not allowed", r)
		}
		if msg != "" {
			return &Error{Line: lineOf(data, i), Msg: "invalid YAML: " + msg}
		}
		i += size
	}
	return nil
}

// yamlAllowed is YAML's set of printable characters, which yaml.v3 enforces.
func yamlAllowed(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == '\u0085':
		return true
	case r >= 0x20 && r <= 0x7e, r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd:
		return true
	default:
		return r >= 0x10000 && r <= 0x10ffff
	}
}

// decodeCulprit returns the deepest node, first in file order, whose value
// alone fails to decode with msg: where a decoding error that yaml.v3 gives
// without a line (a bad alias, merge or tag) stands. nil if doc decodes.
func decodeCulprit(doc *yaml.Node, msg string) *yaml.Node {
	if decodeMessage(doc) != msg {
		return nil
	}
	n := doc
	for {
		next := (*yaml.Node)(nil)
		for _, c := range n.Content {
			if decodeMessage(c) == msg {
				next = c
				break
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
}

func decodeMessage(n *yaml.Node) string {
	var v any
	if err := n.Decode(&v); err != nil {
		msg, _ := yamlMessage(err)
		return msg
	}
	return ""
}
