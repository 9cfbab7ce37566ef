package main

// Tests of ganger-init as PID 1 of real containers on the local Docker
// Engine, in the ganger-busybox image (make busybox-image) with the binary
// built from this tree mounted over /ganger-init. Each container is
// labelled with the test's own node id and removed when the test ends;
// dockertest.Node checks that none is left.

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/initproto"
)

// busyboxImage is what `make busybox-image` builds.
const busyboxImage = "ganger-busybox:latest"

var imageOnce struct {
	sync.Once
	err error
}

// container is one container of the busybox image, made for one test.
type container struct {
	t    *testing.T
	name string
}

// newContainer creates (does not start) a container: opts are `docker
// create` options, args ganger-init's. It is removed when t ends.
func newContainer(t *testing.T, opts []string, args ...string) *container {
	t.Helper()
	node := dockertest.Node(t, dockertest.Daemon(t))
	imageOnce.Do(func() {
		if out, err := exec.Command("docker", "image", "inspect", busyboxImage).CombinedOutput(); err != nil {
			imageOnce.err = fmt.Errorf("%s missing (run `make busybox-image`): %v: %s", busyboxImage, err, bytes.TrimSpace(out))
		}
	})
	if imageOnce.err != nil {
		t.Fatal(imageOnce.err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	c := &container{t: t, name: "ganger-init-test-" + hex.EncodeToString(b)}
	create := []string{"create", "--name", c.name,
		"--label", ganger.LabelManaged + "=true", "--label", ganger.LabelOwner + "=" + node,
		"-v", binary + ":/ganger-init:ro"}
	create = append(create, opts...)
	create = append(create, busyboxImage)
	dockertest.Docker(t, append(create, args...)...)
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rm", "-f", "-v", c.name).CombinedOutput(); err != nil {
			t.Errorf("remove %s: %v: %s", c.name, err, out)
		}
	})
	return c
}

// runContainer creates and starts a container.
func runContainer(t *testing.T, opts []string, args ...string) *container {
	t.Helper()
	c := newContainer(t, opts, args...)
	c.start()
	return c
}

func (c *container) start() {
	c.t.Helper()
	dockertest.Docker(c.t, "start", c.name)
}

// write puts a file into the container (started or not) with mode.
func (c *container) write(path, content string, mode int64) {
	c.t.Helper()
	c.copyIn(filepath.Dir(path), map[string]string{filepath.Base(path): content}, mode)
}

// copyIn puts files (relative paths; directories made as needed) under dir
// in the container, through `docker cp -` and a tar stream.
func (c *container) copyIn(dir string, files map[string]string, mode int64) {
	c.t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	made := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		for d := filepath.Dir(name); d != "." && !made[d]; d = filepath.Dir(d) {
			made[d] = true
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755})
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(files[name]))})
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	cmd := exec.Command("docker", "cp", "-", c.name+":"+dir)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("docker cp into %s:%s: %v: %s", c.name, dir, err, out)
	}
}

// read returns a file of the container (started or not), through `docker
// cp` and a tar stream.
func (c *container) read(path string) string {
	c.t.Helper()
	out, err := exec.Command("docker", "cp", c.name+":"+path, "-").Output()
	if err != nil {
		c.t.Fatalf("docker cp %s:%s: %v", c.name, path, err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	if _, err := tr.Next(); err != nil {
		c.t.Fatalf("docker cp %s:%s: %v", c.name, path, err)
	}
	b, _ := io.ReadAll(tr)
	return string(b)
}

// exec runs a command in the container and returns its output.
func (c *container) exec(args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"exec", c.name}, args...)...).CombinedOutput()
	return string(out), err
}

// mustExec is exec, failing the test on error.
func (c *container) mustExec(args ...string) string {
	c.t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("docker exec %s %v: %v\n%s", c.name, args, err, out)
	}
	return out
}

// ctl runs `ganger-init ctl --json ARGS` in the container and decodes its
// answer into v (if not nil).
func (c *container) ctl(v any, args ...string) {
	c.t.Helper()
	out := c.mustExec(append([]string{"/ganger-init", "ctl", "--json"}, args...)...)
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			c.t.Fatalf("ctl %v: %v: %q", args, err, out)
		}
	}
}

// status is `ctl status` by process name.
func (c *container) status() map[string]initproto.Process {
	c.t.Helper()
	var st initproto.Status
	c.ctl(&st, "status")
	m := map[string]initproto.Process{}
	for _, p := range st.Processes {
		m[p.Name] = p
	}
	return m
}

// until polls the status until cond holds (30 s at most: a bound on
// something asynchronous, not a claim about speed).
func (c *container) until(what string, cond func(map[string]initproto.Process) bool) map[string]initproto.Process {
	c.t.Helper()
	var st map[string]initproto.Process
	dockertest.Eventually(c.t, 30*time.Second, what, func() bool {
		st = c.status()
		return cond(st)
	})
	return st
}

// logs is the container's output, stdout and stderr.
func (c *container) logs() string {
	out, _ := exec.Command("docker", "logs", c.name).CombinedOutput()
	return string(out)
}

// waitLog waits until the container's output holds s.
func (c *container) waitLog(s string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.logs(), s) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s never logged %q; its logs:\n%s", c.name, s, c.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait waits for the container to stop and returns its exit code.
func (c *container) wait() int {
	c.t.Helper()
	out := dockertest.Docker(c.t, "wait", c.name)
	code, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		c.t.Fatalf("docker wait %s: %q", c.name, out)
	}
	return code
}

// stop is `docker stop -t 30`: Docker's own KILL comes only after 30 s,
// far past any stop timeout of these tests, so a stopped container
// stopped by itself (its log says ganger-init exited).
func (c *container) stop() int {
	c.t.Helper()
	dockertest.Docker(c.t, "stop", "-t", "30", c.name)
	return c.wait()
}

// procs lists the container's processes from /proc.
func (c *container) procs() []procEntry {
	c.t.Helper()
	out := c.mustExec("sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true")
	return parseStats(out)
}

// TestEngineOrphansReaped: a script double-forks 1,000 short-lived
// processes; once they are all gone, none is left a zombie: ganger-init,
// as PID 1, reaped every one.
func TestEngineOrphansReaped(t *testing.T) {
	t.Parallel()
	c := runContainer(t, nil, "--", "sh", "-c", `for i in $(seq 1000); do (sleep 0.01 &); done; echo forked; exec sleep 3600`)
	c.waitLog("forked")
	var ps []procEntry
	dockertest.Eventually(t, 60*time.Second, "the orphans never went", func() bool {
		ps = c.procs()
		n := 0
		for _, p := range ps {
			if p.comm == "sleep" {
				n++
			}
		}
		return n == 1 && len(zombies(ps)) == 0 // the script's own sleep 3600
	})
	if z := zombies(c.procs()); len(z) > 0 {
		t.Fatalf("zombies left: %v", z)
	}
	if code := c.stop(); code != 143 {
		t.Errorf("exit code %d; want 143 (the script, killed by SIGTERM)", code)
	}
}

// TestEngineRestartBackoff: a process killed is restarted, each time after
// a longer pause (backoff initial 500ms, doubling).
func TestEngineRestartBackoff(t *testing.T) {
	t.Parallel()
	cfg := `processes:
  victim:
    cmd: [sleep, "3600"]
    backoff: {initial: 500ms, max: 1m}
`
	c := runContainer(t, []string{"-e", "GI_CONFIG=" + cfg}, "--config-env", "GI_CONFIG")
	st := c.until("victim never ran", func(st map[string]initproto.Process) bool { return st["victim"].PID > 0 })
	pid := st["victim"].PID
	var pauses []time.Duration
	for i := 1; i <= 2; i++ {
		c.mustExec("kill", "-9", strconv.Itoa(pid))
		st = c.until(fmt.Sprintf("victim not restarted a %d time", i), func(st map[string]initproto.Process) bool {
			p := st["victim"]
			return p.Restarts == i && p.State == "running" && p.PID > 0 && p.PID != pid
		})
		p := st["victim"]
		if p.LastExit == nil || p.LastExit.Code != 137 || p.LastExit.Signal != "SIGKILL" {
			t.Fatalf("last exit %+v; want 137 (SIGKILL)", p.LastExit)
		}
		pauses = append(pauses, p.StartedAt.Sub(p.LastExit.At))
		pid = p.PID
	}
	// The pause is at least the backoff, which doubles: a lower bound on
	// what ganger-init did, not a claim about speed.
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second} {
		if pauses[i] < want {
			t.Errorf("pause before restart %d: %s; want at least %s", i+1, pauses[i], want)
		}
	}
	logs := c.logs()
	for _, want := range []string{"process=victim in=500ms", "process=victim in=1s"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
}

// TestEngineStopWaitsForTrap: docker stop's TERM reaches a script that
// traps it and takes 2 s to finish; the container waits and leaves with
// the script's exit code.
func TestEngineStopWaitsForTrap(t *testing.T) {
	t.Parallel()
	c := runContainer(t, nil, "--", "sh", "-c", `trap 'echo trapped; sleep 2; echo leaving; exit 7' TERM; echo up; sleep 3600 & wait`)
	c.waitLog("up")
	if code := c.stop(); code != 7 {
		t.Fatalf("exit code %d; want 7; logs:\n%s", code, c.logs())
	}
	// In order; ganger-init's own lines may come between.
	if logs := c.logs(); !strings.Contains(logs, "trapped") || strings.Index(logs, "leaving") < strings.Index(logs, "trapped") {
		t.Fatalf("the trap did not run to its end; logs:\n%s", logs)
	}
}

// TestEngineStopTimeoutKills: a process that ignores TERM is KILLed at its
// stop timeout (1s) by ganger-init, which then exits by itself with 137:
// Docker's own KILL (after 30 s) was not needed.
func TestEngineStopTimeoutKills(t *testing.T) {
	t.Parallel()
	cfg := `processes:
  stubborn:
    cmd: [sh, -c, "trap '' TERM; echo up; while :; do sleep 1; done"]
    main: true
    stop: {timeout: 1s}
`
	c := runContainer(t, []string{"-e", "GI_CONFIG=" + cfg}, "--config-env", "GI_CONFIG")
	c.waitLog("[stubborn] up")
	if code := c.stop(); code != 137 {
		t.Fatalf("exit code %d; want 137; logs:\n%s", code, c.logs())
	}
	logs := c.logs()
	for _, want := range []string{
		`msg="ganger-init: did not stop in time: killing it" process=stubborn timeout=1s`,
		`msg="ganger-init: exiting" code=137`, // ganger-init ended itself: Docker did not KILL it
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
}

// TestEngineExitCodes: the child's exit code is the container's; 128+n
// when signal n killed it; -e maps a code to 0.
func TestEngineExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		script string
		want   int
	}{
		{"zero", nil, "exit 0", 0},
		{"three", nil, "exit 3", 3},
		{"killed", nil, "kill -9 $$", 137},
		{"terminated", nil, "kill -TERM $$", 143},
		{"remapped", []string{"-e", "143"}, "kill -TERM $$", 0},
		{"not remapped", []string{"-e", "143"}, "exit 3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append(slices.Clone(tc.args), "--", "sh", "-c", tc.script)
			c := runContainer(t, nil, args...)
			if code := c.wait(); code != tc.want {
				t.Fatalf("ganger-init %v: exit code %d; want %d; logs:\n%s", args, code, tc.want, c.logs())
			}
		})
	}
}

// orderScript is a process that notes its start and its stop in
// /tmp/order.
func orderScript(name string) string {
	return fmt.Sprintf(`[sh, -c, 'echo start %[1]s >> /tmp/order; trap "echo stop %[1]s >> /tmp/order; exit 0" TERM; sleep 3600 & wait']`, name)
}

// TestEngineDependencyOrder: db, then api once db is ready, then web once
// api is ready; stopped in reverse: web, api, db (not by name).
func TestEngineDependencyOrder(t *testing.T) {
	t.Parallel()
	ready := func(name string) string {
		return fmt.Sprintf(`{exec: [grep, -q, "start %s", /tmp/order], interval: 50ms}`, name)
	}
	cfg := fmt.Sprintf(`shutdown_grace: 2s
processes:
  api:
    cmd: %s
    after: [{process: db, condition: ready}]
    ready: %s
  db:
    cmd: %s
    ready: %s
  web:
    cmd: %s
    after: [{process: api, condition: ready}]
`, orderScript("api"), ready("api"), orderScript("db"), ready("db"), orderScript("web"))
	c := runContainer(t, []string{"-e", "GI_CONFIG=" + cfg}, "--config-env", "GI_CONFIG")
	c.until("web never ran", func(st map[string]initproto.Process) bool { return st["web"].State == "running" })
	if code := c.stop(); code != 0 {
		t.Errorf("exit code %d; want 0 (every process exited 0)", code)
	}
	got := strings.Split(strings.TrimSpace(c.read("/tmp/order")), "\n")
	want := []string{"start db", "start api", "start web", "stop web", "stop api", "stop db"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q; want %q; logs:\n%s", got, want, c.logs())
	}
}

// TestEngineRunitDir: runit's layout in /etc/service: a service that exits
// 3 once, whose finish script is given "3 0", then "-1 9" once it is
// killed, and whose output goes to its log service; a service with a down
// file, not started until ctl starts it.
func TestEngineRunitDir(t *testing.T) {
	t.Parallel()
	c := newContainer(t, nil, "--dir", "/etc/service")
	c.copyIn("/etc/service", map[string]string{
		"web/run":     "#!/bin/sh\necho hello from web\nif [ ! -e /tmp/web.once ]; then touch /tmp/web.once; exit 3; fi\nexec sleep 3600\n",
		"web/finish":  "#!/bin/sh\necho \"$@\" >> /tmp/finish\n",
		"web/log/run": "#!/bin/sh\nwhile read -r line; do echo \"log: $line\" >> /tmp/web.log; done\n",
		"later/run":   "#!/bin/sh\necho later runs\nexec sleep 3600\n",
		"later/down":  "",
	}, 0o755)
	c.start()
	st := c.until("web never ran a second time", func(st map[string]initproto.Process) bool {
		return st["web"].Restarts == 1 && st["web"].State == "running"
	})
	if got := c.mustExec("cat", "/tmp/finish"); got != "3 0\n" {
		t.Errorf("finish got %q; want \"3 0\\n\"", got)
	}
	if st["later"].State != "down" || st["later"].PID != 0 {
		t.Errorf("later (a down file): %+v; want down, not started", st["later"])
	}
	if st["web/log"].State != "running" {
		t.Errorf("web's log service: %+v; want running", st["web/log"])
	}
	c.mustExec("kill", "-9", strconv.Itoa(st["web"].PID))
	c.until("web's finish never saw its kill", func(map[string]initproto.Process) bool {
		out, _ := c.exec("cat", "/tmp/finish")
		return out == "3 0\n-1 9\n"
	})
	var p initproto.Process
	c.ctl(&p, "start", "later")
	c.until("later never started", func(st map[string]initproto.Process) bool {
		return st["later"].State == "running" && st["later"].PID > 0
	})
	c.waitLog("[later] later runs")
	if got := c.mustExec("cat", "/tmp/web.log"); !strings.HasPrefix(got, "log: hello from web\nlog: hello from web\n") {
		t.Errorf("web's log service wrote %q; want its lines", got)
	}
	if logs := c.logs(); strings.Contains(logs, "[web] hello from web") {
		t.Errorf("web's output went to ganger-init's stdout, not to its log service:\n%s", logs)
	}
	// With no main process, the code is that of the last process to exit
	// on its own: web, killed above (config.go's exit_code_from).
	if code := c.stop(); code != 137 {
		t.Errorf("exit code %d after docker stop; want 137 (web's last run, killed)", code)
	}
}

// controlConfig is the config of TestEngineControl; v is one's variable.
func controlConfig(v string) string {
	return fmt.Sprintf(`processes:
  one:
    cmd: [sh, -c, 'echo hello one $V; trap "echo got USR1" USR1; while :; do sleep 3600 & wait; done']
    env: {V: "%s"}
  two:
    cmd: [sleep, "3600"]
`, v)
}

// TestEngineControl: every control call through ganger-init ctl: status,
// log, signal, stop, start, restart, reload (which restarts only the
// process whose config changed).
func TestEngineControl(t *testing.T) {
	t.Parallel()
	c := newContainer(t, nil, "--config", "/etc/gi.yaml")
	c.write("/etc/gi.yaml", controlConfig("1"), 0o644)
	c.start()
	running := func(name string, not int) func(map[string]initproto.Process) bool {
		return func(st map[string]initproto.Process) bool {
			return st[name].State == "running" && st[name].PID > 0 && st[name].PID != not
		}
	}
	c.until("never both running", func(st map[string]initproto.Process) bool {
		return running("one", 0)(st) && running("two", 0)(st)
	})
	if out := c.mustExec("/ganger-init", "ctl", "status"); !strings.Contains(out, "NAME") || !strings.Contains(out, "two") {
		t.Errorf("ctl status:\n%s", out)
	}

	c.waitLog("[one] hello one 1")
	c.ctl(nil, "signal", "one", "USR1")
	var lines initproto.Log
	dockertest.Eventually(t, 30*time.Second, "one never logged its USR1", func() bool {
		c.ctl(&lines, "log", "one")
		return slices.Contains(lines.Lines, "got USR1")
	})
	if lines.Lines[0] != "hello one 1" {
		t.Errorf("ctl log one: %q; want its first line first", lines.Lines)
	}

	var p initproto.Process
	c.ctl(&p, "stop", "one")
	c.until("one never stopped", func(st map[string]initproto.Process) bool {
		return st["one"].State == "down" && st["one"].PID == 0
	})
	c.ctl(&p, "start", "one")
	st := c.until("one never started again", running("one", 0))

	two := st["two"].PID
	c.ctl(&p, "restart", "two")
	st = c.until("two never restarted", running("two", two))

	one, two := st["one"].PID, st["two"].PID
	c.write("/etc/gi.yaml", controlConfig("2"), 0o644)
	var r initproto.Reload
	c.ctl(&r, "reload")
	if !slices.Equal(r.Restarted, []string{"one"}) || len(r.Added) != 0 || len(r.Removed) != 0 {
		t.Fatalf("reload: %+v; want one restarted, nothing else", r)
	}
	st = c.until("one never restarted after the reload", running("one", one))
	if st["two"].PID != two {
		t.Errorf("two's pid went from %d to %d: a reload that did not change it restarted it", two, st["two"].PID)
	}
	c.waitLog("[one] hello one 2")
}

// TestEngineUnprivileged: as nobody, on a read-only root, or both, the
// control socket cannot be made: ganger-init says so and carries on (its
// processes run; the TCP control answers).
func TestEngineUnprivileged(t *testing.T) {
	t.Parallel()
	cfg := `control: {listen: "127.0.0.1:7070", token: secret}
processes:
  app:
    cmd: [sh, -c, 'echo "uid $(id -u)"; trap "exit 0" TERM; sleep 3600 & wait']
    main: true
`
	for _, tc := range []struct {
		name string
		opts []string
		uid  string
	}{
		{"nobody", []string{"--user", "65534"}, "65534"},
		{"read-only", []string{"--read-only"}, "0"},
		{"nobody read-only", []string{"--user", "65534", "--read-only"}, "65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := runContainer(t, append(slices.Clone(tc.opts), "-e", "GI_CONFIG="+cfg), "--config-env", "GI_CONFIG")
			c.waitLog("[app] uid " + tc.uid)
			if logs := c.logs(); !strings.Contains(logs, `msg="ganger-init: no control socket" path=/run/ganger-init.sock`) {
				t.Errorf("no word of the missing control socket:\n%s", logs)
			}
			var st initproto.Status
			c.ctl(&st, "--addr", "127.0.0.1:7070", "--token", "secret", "status")
			if len(st.Processes) != 1 || st.Processes[0].State != "running" {
				t.Errorf("status over TCP: %+v", st)
			}
			if code := c.stop(); code != 0 {
				t.Errorf("exit code %d; want 0; logs:\n%s", code, c.logs())
			}
		})
	}
	t.Run("one command", func(t *testing.T) {
		t.Parallel()
		c := runContainer(t, []string{"--user", "65534", "--read-only"}, "--", "sh", "-c", "id -u; exit 3")
		if code := c.wait(); code != 3 {
			t.Fatalf("exit code %d; want 3; logs:\n%s", code, c.logs())
		}
		if logs := c.logs(); !strings.Contains(logs, "65534") {
			t.Errorf("not run as nobody:\n%s", logs)
		}
	})
}
