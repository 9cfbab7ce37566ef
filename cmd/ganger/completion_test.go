package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// script writes `ganger completion SHELL`, from the built binary, to a
// file.
func script(t *testing.T, shell string) string {
	t.Helper()
	out, err := exec.Command(binary, "completion", shell).Output()
	if err != nil {
		t.Fatalf("ganger completion %s: %v", shell, err)
	}
	p := filepath.Join(t.TempDir(), "ganger."+shell)
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bashComplete runs bash's completion function for line (the cursor at
// its end) the way readline calls it: COMP_WORDS split at white space
// and at '=' (COMP_WORDBREAKS), COMP_CWORD the last word. It returns
// COMPREPLY, sorted.
func bashComplete(t *testing.T, script, dir, line string) []string {
	t.Helper()
	words := strings.Fields(strings.ReplaceAll(line, "=", " = "))
	if strings.HasSuffix(line, " ") {
		words = append(words, "")
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + w + "'"
	}
	prog := `source "$1" || exit 1
fn=$(complete -p ganger | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[[ -n $fn ]] || { echo "no completion function for ganger" >&2; exit 1; }
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
"$fn" ganger "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog, "bash", script, line)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	var got []string
	for _, w := range strings.Split(string(out), "\n") {
		if w != "" {
			got = append(got, w)
		}
	}
	slices.Sort(got)
	return got
}

func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	s := script(t, "bash")
	out, err := exec.Command("bash", "--norc", "-c", `source "$1"; complete -p ganger`, "bash", s).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "complete -F _ganger ganger" {
		t.Fatalf("complete -p ganger: %v: %q", err, out)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "example.yaml"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "other.yaml"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "exdir"), 0o755)
	for _, c := range []struct {
		line string
		want []string
	}{
		{"ganger ", []string{"agent", "check", "completion", "ctl", "help", "reload", "serve", "version"}},
		{"ganger c", []string{"check", "completion", "ctl"}},
		{"ganger ctl cl", []string{"cluster", "clusters"}},
		{"ganger ctl --api http://127.0.0.1:5480 --json cl", []string{"cluster", "clusters"}},
		{"ganger ctl --token=abc in", []string{"instance", "instances"}},
		{"ganger ctl ", []string{"cluster", "clusters", "drain", "hosts", "instance", "instances", "kill", "reload", "sessions", "status", "undrain"}},
		{"ganger ctl instance ", []string{"create", "delete", "extend", "get", "restart"}},
		{"ganger ctl cluster s", []string{"scale", "signal", "start", "stop"}},
		{"ganger ctl instance create web --", []string{"--ttl"}},
		{"ganger ctl status ", nil},
		{"ganger ctl --", []string{"--api", "--json", "--timeout", "--token"}},
		{"ganger serve --", []string{"--config", "--pid-file"}},
		{"ganger serve --config ex", []string{"example.yaml", "exdir"}},
		{"ganger check -config ", []string{"example.yaml", "exdir", "other.yaml"}},
		{"ganger serve --config=ex", []string{"example.yaml", "exdir"}},
		{"ganger serve --config example.yaml --p", []string{"--pid-file"}},
		{"ganger agent --state-dir e", []string{"exdir"}},
		{"ganger agent --log-level w", []string{"warn"}},
		{"ganger agent --name ", nil},
		{"ganger agent --etcd-ca ot", []string{"other.yaml"}},
		{"ganger completion ", []string{"bash", "zsh"}},
		{"ganger help s", []string{"serve"}},
	} {
		if got := bashComplete(t, s, dir, c.line); !slices.Equal(got, c.want) {
			t.Errorf("%q: offered %q; want %q", c.line, got, c.want)
		}
	}
}

// zsh: the script parses, registers _ganger for ganger, and (with zsh's
// completion builtins replaced by functions that print what they are
// given) offers the right words.
func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh not installed (Debian's package zsh): cannot check the zsh script")
	}
	s := script(t, "zsh")
	if out, err := exec.Command(zsh, "-n", s).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	out, err := exec.Command(zsh, "-f", "-c", `autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- $_comps[ganger]`, "zsh", s).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_ganger" {
		t.Fatalf("zsh: the completion for ganger is %q (%v); want _ganger", out, err)
	}

	complete := func(line string) []string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		// What completion functions call, as plain functions: each
		// prints the words offered (the shell would then keep those
		// that start with the word under the cursor).
		prog := `compdef() { : }
compadd() { while [[ $1 != -- ]]; do shift; done; shift; print -l -- "$@" }
_describe() { local w; for w in ${(P)2}; do print -r -- ${w%%:*}; done }
_files() { print -r -- "<files $*>" }
_message() { print -r -- "<message $*>" }
source "$1"
words=(` + strings.Join(quoted, " ") + `)
CURRENT=${#words}
_ganger
`
		out, err := exec.Command(zsh, "-f", "-c", prog, "zsh", s).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, out)
		}
		cur := words[len(words)-1]
		var got []string
		for _, w := range strings.Split(string(out), "\n") {
			if w != "" && (strings.HasPrefix(w, cur) || strings.HasPrefix(w, "<")) {
				got = append(got, w)
			}
		}
		slices.Sort(got)
		return got
	}
	for _, c := range []struct {
		line string
		want []string
	}{
		{"ganger c", []string{"check", "completion", "ctl"}},
		{"ganger ctl cl", []string{"cluster", "clusters"}},
		{"ganger ctl --api http://x cl", []string{"cluster", "clusters"}},
		{"ganger ctl instance ", []string{"create", "delete", "extend", "get", "restart"}},
		{"ganger serve --", []string{"--config", "--pid-file"}},
		{"ganger serve --config ", []string{"<files >"}},
		{"ganger agent --state-dir ", []string{"<files -/>"}},
		{"ganger agent --log-format ", []string{"json", "text"}},
		{"ganger agent --name ", []string{"<message value>"}},
		{"ganger completion ", []string{"bash", "zsh"}},
	} {
		if got := complete(c.line); !slices.Equal(got, c.want) {
			t.Errorf("%q: offered %q; want %q", c.line, got, c.want)
		}
	}
}

var flagRE = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// The completion knows every flag each command has (from the command's
// own -h), every command of the usage, and every ctl subcommand of
// ctlUsage: a flag or command added without it shows here.
func TestCompletionMatchesCommands(t *testing.T) {
	for _, c := range complCommands {
		var want []string
		for _, f := range c.flags {
			want = append(want, f.name)
		}
		slices.Sort(want)
		out, _ := exec.Command(binary, c.name, "-h").CombinedOutput()
		var got []string
		for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("ganger %s -h lists flags %q; the completion has %q", c.name, got, want)
		}
	}

	var usage strings.Builder
	run([]string{"help"}, &usage, &usage)
	var commands []string
	for _, line := range strings.Split(usage.String(), "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && len(f) > 0 {
			commands = append(commands, f[0])
		}
	}
	var known []string
	for _, c := range complCommands {
		known = append(known, c.name)
	}
	for _, c := range commands {
		if !slices.Contains(known, c) {
			t.Errorf("ganger help lists %q; the completion does not know it", c)
		}
	}
	if len(commands) < 7 {
		t.Fatalf("read %q as the commands of ganger help", commands)
	}

	// ctlUsage: "commands:" then a line per command, indented by two.
	var ctlCmd complCmd
	for _, c := range complCommands {
		if c.name == "ctl" {
			ctlCmd = c
		}
	}
	subs, next := map[string]bool{}, map[string]map[string]bool{}
	_, list, _ := strings.Cut(ctlUsage, "commands:\n")
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		if strings.HasPrefix(line, "   ") {
			continue // a description's second line
		}
		f := strings.Fields(line)
		subs[f[0]] = true
		if len(f) > 1 && (f[0] == "instance" || f[0] == "cluster" || f[0] == "instances") {
			for _, w := range strings.Split(strings.Trim(f[1], "[]"), "|") {
				if w != strings.ToUpper(w) { // NAME, ID: not words
					if next[f[0]] == nil {
						next[f[0]] = map[string]bool{}
					}
					next[f[0]][w] = true
				}
			}
		}
	}
	if got := slices.Sorted(maps.Keys(subs)); !slices.Equal(got, slices.Sorted(slices.Values(ctlCmd.words))) {
		t.Errorf("ctlUsage has commands %q; the completion %q", got, ctlCmd.words)
	}
	for k, words := range next {
		if got := slices.Sorted(maps.Keys(words)); !slices.Equal(got, slices.Sorted(slices.Values(ctlCmd.next[k]))) {
			t.Errorf("ctlUsage has %q after %s; the completion %q", got, k, ctlCmd.next[k])
		}
	}
	if len(next) != len(ctlCmd.next) {
		t.Errorf("ctlUsage has words after %d commands; the completion after %d", len(next), len(ctlCmd.next))
	}
}

// ganger completion with no shell, or one it has no script for: usage, 2.
func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		err := exec.Command(binary, args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("ganger %v: %v; want exit code 2", args, err)
		}
	}
}
