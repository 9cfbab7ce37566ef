package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// binary is ganger-init as built from this tree for the tests: static, so
// that it runs FROM scratch, and bind-mounted over the image's own copy so
// that a stale image never hides a change.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ganger-init-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ganger-init")
	build := exec.Command("go", "build", "-trimpath", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ganger-init: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestDeps: ganger-init stays small and owes nothing to the rest of
// Ganger: it links the standard library, golang.org/x/sys, the YAML parser
// and its own two packages, nothing else.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/ganger-dev/ganger"
	allowed := map[string]bool{
		mod + "/cmd/ganger-init":    true,
		mod + "/internal/initd":     true,
		mod + "/internal/initproto": true,
		"go.yaml.in/yaml/v3":        true,
	}
	forbidden := []string{"/internal/config", "/internal/docker", "/internal/fleet", "/internal/server",
		"/internal/session", "/internal/instance", "/internal/api", "github.com/moby", "prometheus"}
	pkgs := strings.Fields(string(out))
	for _, p := range pkgs {
		for _, f := range forbidden {
			if strings.Contains(p, f) {
				t.Errorf("ganger-init links %s", p)
			}
		}
		first, _, _ := strings.Cut(p, "/")
		switch {
		case !strings.Contains(first, "."): // the standard library (vendor/ included)
		case allowed[p], strings.HasPrefix(p, "golang.org/x/sys/"):
		default:
			t.Errorf("ganger-init links %s: only the standard library, golang.org/x/sys, go.yaml.in/yaml/v3, initd and initproto may be", p)
		}
	}
	if len(pkgs) < 10 || !slices.Contains(pkgs, mod+"/internal/initd") {
		t.Fatalf("go list -deps gave an unlikely list:\n%s", out)
	}
}

// procEntry is one line of /proc/PID/stat.
type procEntry struct {
	pid, ppid int
	state     string
	comm      string
}

// parseStat reads "pid (comm) state ppid ...", where comm may hold spaces
// and parentheses.
func parseStat(line string) (procEntry, bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procEntry{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	f := strings.Fields(line[end+1:])
	if err != nil || len(f) < 2 {
		return procEntry{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return procEntry{pid: pid, ppid: ppid, state: f[0], comm: line[open+1 : end]}, true
}

// parseStats reads many stat lines (one per process).
func parseStats(text string) []procEntry {
	var out []procEntry
	for _, line := range strings.Split(text, "\n") {
		if e, ok := parseStat(line); ok {
			out = append(out, e)
		}
	}
	return out
}

// zombies lists the entries in state Z.
func zombies(ps []procEntry) []procEntry {
	var z []procEntry
	for _, p := range ps {
		if p.state == "Z" {
			z = append(z, p)
		}
	}
	return z
}
