package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// stamped reads the build settings the go command put in bin.
func stamped(t *testing.T, bin string) (mainVersion string, settings map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	settings = map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "\t")
		switch {
		case len(f) >= 2 && f[0] == "build":
			k, v, _ := strings.Cut(f[1], "=")
			settings[k] = v
		case len(f) >= 3 && f[0] == "mod":
			mainVersion = f[2]
		}
	}
	return mainVersion, settings
}

func versionOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	return string(out)
}

// want is `ganger version` for a binary whose -X values are v, c and d
// ("" when not set), read against what go version -m says it holds.
func wantVersion(t *testing.T, bin, v, c, d string) string {
	mainVersion, s := stamped(t, bin)
	if v == "" {
		v = "dev"
		if mainVersion != "" && mainVersion != "(devel)" {
			v = mainVersion
		}
	}
	if c == "" {
		c = "unknown"
		if r := s["vcs.revision"]; r != "" {
			c = r
			if s["vcs.modified"] == "true" {
				c += " (with uncommitted changes)"
			}
		}
	}
	if d == "" {
		d = "unknown"
		if vt := s["vcs.time"]; vt != "" {
			d = "unknown; commit of " + vt
		}
	}
	return "ganger " + v + "\ncommit: " + c + "\nbuilt:  " + d + "\ngo:     " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
}

// The test binary is built without -ldflags: the version is "dev" and the
// commit and date are what the go command stamped, if anything (not with
// -buildvcs=false), else "unknown".
func TestVersionFallbacks(t *testing.T) {
	got := versionOf(t, binary)
	if want := wantVersion(t, binary, "", "", ""); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if !strings.HasPrefix(got, "ganger dev\n") {
		t.Fatalf("a binary built without -X main.version says %q", got)
	}
}

// Built in this Git checkout with VCS stamping on and only -X
// main.version: the commit and its time come from the stamp.
func TestVersionFromVCS(t *testing.T) {
	if exec.Command("git", "rev-parse", "--git-dir").Run() != nil {
		t.Skip("not in a Git checkout: nothing to stamp")
	}
	bin := filepath.Join(t.TempDir(), "ganger")
	build := exec.Command("go", "build", "-buildvcs=true", "-ldflags", "-X main.version=1.2.3-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, s := stamped(t, bin)
	if len(s["vcs.revision"]) != 40 || s["vcs.time"] == "" {
		t.Fatalf("go build -buildvcs=true stamped no commit: %v", s)
	}
	got := versionOf(t, bin)
	if want := wantVersion(t, bin, "1.2.3-test", "", ""); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(got, "commit: "+s["vcs.revision"]) {
		t.Fatalf("the stamped commit %s is not shown:\n%s", s["vcs.revision"], got)
	}
}

// What make build and make dist set is what is shown.
func TestVersionLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ganger")
	ld := "-X main.version=v9.8.7 -X main.commit=0123456789abcdef0123456789abcdef01234567 -X main.buildDate=2001-02-03T04:05:06Z"
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "ganger v9.8.7\ncommit: 0123456789abcdef0123456789abcdef01234567\nbuilt:  2001-02-03T04:05:06Z\ngo:     " +
		runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil || string(out) != want {
			t.Fatalf("ganger %s: %v\ngot:\n%s\nwant:\n%s", arg, err, out, want)
		}
	}
}

// readBuildInfo on build info made up for each case.
func TestVersionReadBuildInfo(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "dev", "", ""
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.time", Value: "2020-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	var b strings.Builder
	readBuildInfo(bi, true).write(&b)
	plat := runtime.GOOS + "/" + runtime.GOARCH
	if want := "ganger v1.4.0\ncommit: abc (with uncommitted changes)\nbuilt:  unknown; commit of 2020-01-02T03:04:05Z\ngo:     go1.99 " + plat + "\n"; b.String() != want {
		t.Errorf("go install'd: got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	readBuildInfo(nil, false).write(&b)
	if want := "ganger dev\ncommit: unknown\nbuilt:  unknown\ngo:     " + runtime.Version() + " " + plat + "\n"; b.String() != want {
		t.Errorf("no build info: got\n%s\nwant\n%s", b.String(), want)
	}
	version, commit, buildDate = "v2", "def", "2030-01-01T00:00:00Z"
	b.Reset()
	readBuildInfo(bi, true).write(&b)
	if want := "ganger v2\ncommit: def\nbuilt:  2030-01-01T00:00:00Z\ngo:     go1.99 " + plat + "\n"; b.String() != want {
		t.Errorf("-X values beside build info: got\n%s\nwant\n%s", b.String(), want)
	}
}
