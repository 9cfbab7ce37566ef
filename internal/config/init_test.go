package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/initd"
)

// initDir holds a stand-in ganger-init binary ("bin"), a file that is not
// executable ("plain") and a directory ("dir").
func initDir(t *testing.T) string {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"bin": 0o755, "plain": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("\x7fELF stand-in"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func parseInit(t *testing.T, dir, yml string) (*Config, error) {
	t.Helper()
	return Parse("t.yaml", []byte(strings.ReplaceAll(yml, "$DIR", dir)))
}

func TestInitGanger(t *testing.T) {
	dir := initDir(t)
	cfg, err := parseInit(t, dir, "init_binary: $DIR/bin\n"+svc("    init: ganger\n")+
		"  - {name: plain, listen: 127.0.0.1:5455, image: img, port: 1}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := ganger.Init{Binary: filepath.Join(dir, "bin"), Digest: ganger.InitDigest([]byte("\x7fELF stand-in"))}
	if got := cfg.Services[0].InitSpec(); got != want || len(got.Digest) != 12 {
		t.Fatalf("init spec %+v; want %+v", got, want)
	}
	if got := cfg.Services[1].InitSpec(); got.Enabled() {
		t.Fatalf("a service without init: %+v", got)
	}
}

// Under ganger-init the first readiness retry comes after 1ms, unless
// ready.backoff is set (an alias counts).
func TestInitReadyBackoff(t *testing.T) {
	dir := initDir(t)
	second := "  - {name: two, listen: 127.0.0.1:5455, image: img, port: 1, init: ganger, ready: *r}\n"
	for _, tt := range []struct {
		extra, more string
		want        time.Duration
	}{
		{"", "", DefaultReadyBackoff},
		{"    init: ganger\n", "", DefaultInitReadyBackoff},
		{"    init: ganger\n    ready: {timeout: 9s}\n", "", DefaultInitReadyBackoff},
		{"    init: ganger\n    ready: {backoff: 5ms}\n", "", 5 * time.Millisecond},
		{"    ready: &r {backoff: 7ms}\n", second, 7 * time.Millisecond},
	} {
		cfg, err := parseInit(t, dir, "init_binary: $DIR/bin\n"+svc(tt.extra)+tt.more)
		if err != nil {
			t.Fatalf("%q: %v", tt.extra, err)
		}
		if got := cfg.Services[len(cfg.Services)-1].Ready.Backoff.D(); got != tt.want {
			t.Errorf("%q%q: ready.backoff %s; want %s", tt.extra, tt.more, got, tt.want)
		}
	}
}

// A service runs several processes with init_config: it reaches the
// container as YAML that ganger-init accepts, aliases expanded.
func TestInitConfig(t *testing.T) {
	dir := initDir(t)
	cfg, err := parseInit(t, dir, "init_binary: $DIR/bin\n"+svc(`    env: {L: &l ':7778'}
    init: ganger
    init_config:
      processes:
        a: {cmd: [/ganger-echo, -listen, ':7777']}
        b:
          cmd: [/ganger-echo, -listen, *l]
          restart: on-failure   # a comment
          backoff: {initial: 100ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	text := cfg.Services[0].InitSpec().Config
	if text != cfg.Services[0].InitConfig.YAML() || strings.Contains(text, "*l") || strings.Contains(text, "comment") {
		t.Fatalf("init config as written for the container:\n%s", text)
	}
	ic, err := initd.ParseConfig("c", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if b := ic.Processes["b"]; len(ic.Processes) != 2 || b.Cmd[2] != ":7778" || b.Restart != "on-failure" {
		t.Fatalf("ganger-init reads %+v", ic.Processes)
	}
}

func TestInitErrors(t *testing.T) {
	dir := initDir(t)
	bin := "init_binary: $DIR/bin\n"
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown init", svc("    init: tini\n"), `t.yaml:6: services[0].init: want "" (the image's command is PID 1) or ganger (run it under ganger-init), got "tini"`},
		{"init_config without init", bin + svc("    init_config: {processes: {a: {cmd: [x]}}}\n"), `t.yaml:7: services[0].init_config: needs init: ganger`},
		{"init_config not a mapping", bin + svc("    init: ganger\n    init_config: [a]\n"), `t.yaml:8: services[0].init_config: want a mapping`},
		{"init_config with cmd", bin + svc("    init: ganger\n    cmd: [x]\n    init_config: {processes: {a: {cmd: [x]}}}\n"), `t.yaml:9: services[0].init_config: runs the processes it lists instead of the container's command`},
		{"init_config problem on its line", bin + svc("    init: ganger\n    init_config:\n      processes:\n        a:\n          restart: sometimes\n"),
			`t.yaml:10: services[0].init_config: processes.a.cmd: missing: the command to run`},
		{"init_config second problem", bin + svc("    init: ganger\n    init_config:\n      processes:\n        a:\n          restart: sometimes\n"),
			`t.yaml:11: services[0].init_config: processes.a.restart: want always, on-failure or never, got "sometimes"`},
		{"init_config unknown key", bin + svc("    init: ganger\n    init_config:\n      processes:\n        a: {cmd: [x], restrat: always}\n"),
			`t.yaml:10: services[0].init_config: unknown key "restrat"`},
		{"init_config bad duration", bin + svc("    init: ganger\n    init_config:\n      processes:\n        a:\n          cmd: [x]\n          stop: {timeout: soon}\n"),
			`t.yaml:12: services[0].init_config: want a duration, got string "soon"`},
		{"init_config with no process", bin + svc("    init: ganger\n    init_config: {shutdown_grace: 1s}\n"), `t.yaml:8: services[0].init_config: processes: missing: at least one process`},
		{"init_binary missing", "init_binary: $DIR/nope\n" + svc("    init: ganger\n"), `t.yaml:1: init_binary: cannot read the ganger-init binary: open $DIR/nope: no such file or directory`},
		{"init_binary not executable", "init_binary: $DIR/plain\n" + svc("    init: ganger\n"), `t.yaml:1: init_binary: the ganger-init binary $DIR/plain is not executable`},
		{"init_binary a directory", "init_binary: $DIR/dir\n" + svc("    init: ganger\n"), `is not a regular file`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseInit(t, dir, tt.yaml)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v; want config.Errors", err)
			}
			if want := strings.ReplaceAll(tt.want, "$DIR", dir); !strings.Contains(err.Error(), want) {
				t.Fatalf("got:\n%v\nwant a line containing:\n%s", err, want)
			}
		})
	}
}

// Without init_binary, the binary is looked for next to the executable;
// the error says where and which key to set. A file that sets no init
// reads no binary.
func TestInitBinaryDefault(t *testing.T) {
	_, err := Parse("t.yaml", []byte(svc("    init: ganger\n")))
	exe, _ := os.Executable()
	want := filepath.Join(filepath.Dir(exe), DefaultInitBinaryName)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:6: services[0].init: cannot read the ganger-init binary: open "+want) ||
		!strings.Contains(err.Error(), "set init_binary") {
		t.Fatalf("got %v; want the default path and a hint at init_binary", err)
	}
	if _, err := Parse("t.yaml", []byte("init_binary: /nonexistent\n"+svc(""))); err != nil {
		t.Fatalf("init_binary with no service under init: %v", err)
	}
}

// A change of init, of the binary's digest, or of init_config changes the
// containers a service makes.
func TestInitChanges(t *testing.T) {
	dir := initDir(t)
	load := func(extra string) Service {
		cfg, err := parseInit(t, dir, "init_binary: $DIR/bin\n"+svc(extra))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Services[0]
	}
	plain, under := load(""), load("    init: ganger\n")
	multi := load("    init: ganger\n    init_config: {processes: {a: {cmd: [x]}}}\n")
	if got := strings.Join(ServiceChanges(plain, under), ","); got != "init,ready" { // its default backoff too
		t.Fatalf("init added: %q", got)
	}
	if got := strings.Join(ServiceChanges(under, multi), ","); got != "init_config" {
		t.Fatalf("init_config added: %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin"), []byte("\x7fELF rebuilt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ServiceChanges(under, load("    init: ganger\n")), ","); got != "init" {
		t.Fatalf("binary rebuilt: %q", got)
	}
}
