package config

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// linelessErrors are the only errors that name no line: the file has none
// to name.
var linelessErrors = map[string]bool{
	"t.yaml: the file is empty: at least one service is needed": true,
	"t.yaml: services: at least one service is needed":          true, // no services key
}

var errorLineRE = regexp.MustCompile(`^t\.yaml:([1-9][0-9]*): \S`)

// FuzzParse checks that Parse never panics and that every error it gives
// is placed on a line of the file. `make fuzz` runs it; plain `go test`
// runs its seeds and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Setenv("DOCKER_HOST", "") // errors about the daemon from the environment name no line
	f.Setenv("DOCKER_TLS_VERIFY", "")
	example, err := os.ReadFile("../../examples/ganger.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(minimal))
	for _, tt := range errorCases {
		f.Add([]byte(tt.yaml))
	}
	for _, y := range validCases {
		f.Add([]byte(y))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("t.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("no config and no error")
			}
			for _, w := range cfg.Warnings() {
				if !errorLineRE.MatchString(w) {
					t.Fatalf("warning without a line: %q", w)
				}
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("got %T %v; want config.Errors", err, err)
		}
		text, _ := utf8Text(data) // lines are counted in the UTF-8 that UTF-16 text becomes
		if text == nil {
			text = data
		}
		lines := len(lineEnds(text)) + 1 // an error at the end of the file may name the line after
		for _, e := range strings.Split(err.Error(), "\n") {
			if linelessErrors[e] {
				continue
			}
			m := errorLineRE.FindStringSubmatch(e)
			if m == nil {
				t.Fatalf("error without a line: %q\nin:\n%s", e, err)
			}
			if n, err := strconv.Atoi(m[1]); err != nil || n > lines {
				t.Fatalf("error past the end of the file (%d lines): %q", lines-1, e)
			}
		}
	})
}
