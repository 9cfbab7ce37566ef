package initd_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// The tests run the real binary, as a subreaper (not PID 1): a script
// plays each process, and records what it sees.

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ganger-init-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "ganger-init")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ganger-dev/ganger/cmd/ganger-init").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building ganger-init: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const bound = 20 * time.Second

type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// run is one ganger-init process.
type run struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *buf // stdout and stderr together
	code chan int
}

func start(t *testing.T, args ...string) *run {
	t.Helper()
	r := &run{t: t, cmd: exec.Command(bin, args...), out: &buf{}, code: make(chan int, 1)}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.cmd.Wait()
		r.code <- r.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		select {
		case <-r.code:
		case <-time.After(bound):
		}
	})
	return r
}

// config starts ganger-init with the YAML as its config file.
func config(t *testing.T, yml string, extra ...string) (*run, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "init.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	return start(t, append([]string{"--config", path, "--control", sock}, extra...)...), sock
}

func (r *run) wait() int {
	r.t.Helper()
	select {
	case c := <-r.code:
		r.code <- c
		return c
	case <-time.After(bound):
		r.t.Fatalf("ganger-init did not exit\n%s", r.out)
	}
	return -1
}

func (r *run) signal(sig syscall.Signal) { r.cmd.Process.Signal(sig) }

// until waits for the output to contain s.
func (r *run) until(s string) {
	r.t.Helper()
	eventually(r.t, fmt.Sprintf("output never held %q", s), func() bool { return strings.Contains(r.out.String(), s) })
}

func eventually(t *testing.T, msg string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(bound); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// tini's job: the child's exit code passes through, 128+n when killed by
// signal n, a remapped code becomes 0, a missing command is 127.
func TestChildExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--", "sh", "-c", "exit 0"}, 0},
		{[]string{"--", "sh", "-c", "exit 3"}, 3},
		{[]string{"--", "sh", "-c", "kill -KILL $$"}, 137},
		{[]string{"--", "sh", "-c", "kill -TERM $$"}, 143},
		{[]string{"-e", "143", "--", "sh", "-c", "kill -TERM $$"}, 0},
		{[]string{"--", "/no/such/command"}, 127},
	} {
		if got := start(t, tc.args...).wait(); got != tc.want {
			t.Errorf("%v: exit %d; want %d", tc.args, got, tc.want)
		}
	}
}

// Signals reach the child (its group with -g); its exit code on TERM is
// kept.
func TestChildSignals(t *testing.T) {
	t.Parallel()
	script := `trap 'echo got USR1' USR1; trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done`
	for _, args := range [][]string{{"--"}, {"-g", "--"}} {
		r := start(t, append(args, "sh", "-c", script)...)
		r.until("ready")
		r.signal(syscall.SIGUSR1)
		r.until("got USR1")
		r.signal(syscall.SIGTERM)
		if code := r.wait(); code != 7 || !strings.Contains(r.out.String(), "got TERM") {
			t.Fatalf("%v: exit %d; want the trap's 7\n%s", args, code, r.out)
		}
	}
}

// When the child ends, what it left behind (a daemon re-parented to
// ganger-init, ignoring TERM) gets TERM, then KILL after the grace; only
// then does ganger-init exit, with the child's code.
func TestChildLeftoversStopped(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := start(t, "--grace", "300ms", "--", "sh", "-c", `sh -c 'trap "" TERM; echo $$ > `+pidFile+`; exec sleep 1000' & sleep 0.2; exit 4`)
	if code := r.wait(); code != 4 {
		t.Fatalf("exit %d; want the child's 4\n%s", code, r.out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid) {
		t.Fatalf("the left-behind daemon %d still runs", pid)
	}
	if !strings.Contains(r.out.String(), "processes left after the grace: killing them") {
		t.Fatalf("no KILL after the grace in the log:\n%s", r.out)
	}
}

// loop is a process that says when it starts and stops.
func loop(name string) string {
	// The trap is set before the line that says it started: a test that
	// waits for the line can stop it at once.
	return fmt.Sprintf(`["sh", "-c", "trap 'echo stop %s; exit 0' TERM; echo start %s; while :; do sleep 0.05; done"]`, name, name)
}

// Dependencies order the start (after a oneshot completed, a process
// ready), and the stop goes the other way.
func TestOrderAndStop(t *testing.T) {
	t.Parallel()
	r, _ := config(t, `processes:
  setup: {cmd: ["sh", "-c", "sleep 0.2; echo start setup"], oneshot: true}
  db:    {cmd: `+loop("db")+`, after: [{process: setup, condition: completed}], ready: {exec: ["sh", "-c", "sleep 0.2"]}}
  api:   {cmd: `+loop("api")+`, after: [{process: db, condition: ready}]}
  web:   {cmd: `+loop("web")+`, after: [{process: api}]}
`)
	r.until("[web] start web")
	r.until("[api] start api") // its trap is set: its stop is clean
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
	// The orders from ganger-init's log: a process's own lines reach the
	// output through a pipe each, in no set order between processes.
	re := regexp.MustCompile(`ganger-init: (start)ed" process=(\w+)|ganger-init: exited" process=(\w+) status="exit code 0" asked=true`)
	var seen []string
	for _, m := range re.FindAllStringSubmatch(r.out.String(), -1) {
		if m[1] != "" {
			seen = append(seen, "start "+m[2])
		} else {
			seen = append(seen, "stop "+m[3])
		}
	}
	want := "start setup,start db,start api,start web,stop web,stop api,stop db"
	if got := strings.Join(seen, ","); got != want {
		t.Fatalf("order %s; want %s\n%s", got, want, r.out)
	}
}

// A failing process is restarted with growing pauses; past max_restarts
// it is fatal, and a required one stops everything with its code.
func TestRestartBackoffFatal(t *testing.T) {
	t.Parallel()
	r, _ := config(t, `processes:
  flaky: {cmd: ["sh", "-c", "echo run; exit 3"], required: true, max_restarts: 3, backoff: {initial: 50ms, max: 400ms}}
  other: {cmd: `+loop("other")+`}
`)
	if code := r.wait(); code != 3 {
		t.Fatalf("exit %d; want the required process's 3\n%s", code, r.out)
	}
	out := r.out.String()
	for _, want := range []string{`in=50ms`, `in=100ms`, `in=200ms`, "restarted too often: fatal", "stop other"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(out, "[flaky] run"); n != 4 {
		t.Errorf("%d runs; want 4 (1 + 3 restarts)\n%s", n, out)
	}
}

// A main process ending stops the rest; its code is the exit code. With
// only oneshots, ganger-init exits 0 once they completed.
func TestMainAndOneshots(t *testing.T) {
	t.Parallel()
	r, _ := config(t, `processes:
  app: {cmd: ["sh", "-c", "sleep 0.3; exit 5"], main: true, restart: never}
  side: {cmd: `+loop("side")+`}
`)
	if code := r.wait(); code != 5 || !strings.Contains(r.out.String(), "stop side") {
		t.Fatalf("exit %d; want main's 5, side stopped\n%s", code, r.out)
	}
	r, _ = config(t, `processes:
  a: {cmd: ["true"], oneshot: true}
  b: {cmd: ["sh", "-c", "echo b"], oneshot: true, after: [{process: a, condition: completed}]}
`)
	if code := r.wait(); code != 0 || !strings.Contains(r.out.String(), "[b] b") {
		t.Fatalf("oneshots: exit %d\n%s", code, r.out)
	}
}

// A process that ignores its stop signal is KILLed at its timeout.
func TestStopTimeoutKills(t *testing.T) {
	t.Parallel()
	r, _ := config(t, `processes:
  stubborn: {cmd: ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"], main: true, stop: {timeout: 300ms}}
`)
	r.until("[stubborn] up")
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 137 || !strings.Contains(r.out.String(), "did not stop in time: killing it") {
		t.Fatalf("exit %d; want 137 after a KILL\n%s", code, r.out)
	}
}

// Lines are prefixed whole, an overlong one is cut with a marker, and
// --log-format json gives one object per line.
func TestOutput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 20000)
	r, _ := config(t, `processes:
  p: {cmd: ["sh", "-c", "echo one; printf '`+long+`\nafter\n'; echo err >&2"], oneshot: true}
`)
	r.wait()
	out := r.out.String()
	cut := "[p] " + long[:16<<10] + " [ganger-init: line cut]\n"
	if !strings.Contains(out, "[p] one\n") || !strings.Contains(out, cut) || !strings.Contains(out, "[p] after\n") || !strings.Contains(out, "[p] err\n") ||
		strings.Index(out, "[p] after") < strings.Index(out, cut) {
		t.Fatalf("output:\n%s", strings.ReplaceAll(out, long[:1000], "x×1000 "))
	}
	r, _ = config(t, "processes:\n  p: {cmd: [\"echo\", \"hi\"], oneshot: true}\n", "--log-format", "json")
	r.wait()
	if !strings.Contains(r.out.String(), `"process":"p","stream":"stdout","line":"hi"}`) {
		t.Fatalf("json output:\n%s", r.out)
	}
}

// Every control call, and a reload that restarts only what changed.
func TestControl(t *testing.T) {
	t.Parallel()
	yml := `processes:
  a: {cmd: ["sh", "-c", "trap 'echo hup' HUP; echo a up; while :; do sleep 0.05; done"]}
  b: {cmd: ["sh", "-c", "echo b v1; while :; do sleep 0.05; done"]}
`
	r, sock := config(t, yml)
	c := initproto.NewUnix(sock)
	ctx := context.Background()
	var st initproto.Status
	eventually(t, "status never showed both running", func() bool {
		var err error
		st, err = c.Status(ctx)
		return err == nil && len(st.Processes) == 2 && st.Processes[0].State == "running" && st.Processes[1].State == "running"
	})
	pidA := st.Processes[0].PID
	if lines, err := c.Log(ctx, "a", 10); err != nil || len(lines) != 1 || lines[0] != "a up" {
		t.Fatalf("log a: %q, %v", lines, err)
	}
	if err := c.Signal(ctx, "a", "HUP"); err != nil {
		t.Fatal(err)
	}
	r.until("[a] hup")
	if p, err := c.Act(ctx, "b", "stop"); err != nil || p.State != "stopping" {
		t.Fatalf("stop b: %+v, %v", p, err)
	}
	eventually(t, "b never down", func() bool { st, _ := c.Status(ctx); return st.Processes[1].State == "down" })
	if _, err := c.Act(ctx, "b", "start"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b never started again", func() bool { st, _ := c.Status(ctx); return st.Processes[1].State == "running" })
	if _, err := c.Act(ctx, "a", "restart"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a never restarted", func() bool {
		st, _ := c.Status(ctx)
		return st.Processes[0].State == "running" && st.Processes[0].PID != pidA
	})
	st, _ = c.Status(ctx)
	pidA, pidB := st.Processes[0].PID, st.Processes[1].PID
	if err := c.Signal(ctx, "a", "NOPE"); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Fatalf("a bad signal: %v", err)
	}
	if _, err := c.Act(ctx, "zz", "stop"); err == nil || !strings.Contains(err.Error(), "no process") {
		t.Fatalf("an unknown process: %v", err)
	}

	// Reload: b changes, c is new, a is untouched.
	path := strings.TrimSuffix(sock, "ctl.sock") + "init.yaml"
	os.WriteFile(path, []byte(strings.Replace(yml, "b v1", "b v2", 1)+"  c: {cmd: [\"sh\", \"-c\", \"echo c; sleep 1000\"]}\n"), 0o644)
	res, err := c.Reload(ctx)
	if err != nil || strings.Join(res.Restarted, ",") != "b" || strings.Join(res.Added, ",") != "c" {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	r.until("[b] b v2")
	r.until("[c] c")
	st, _ = c.Status(ctx)
	if st.Processes[0].PID != pidA || st.Processes[1].PID == pidB {
		t.Fatalf("after reload a %d (was %d), b %d (was %d): want a untouched, b restarted", st.Processes[0].PID, pidA, st.Processes[1].PID, pidB)
	}
	os.WriteFile(path, []byte("processes:\n  a: {cmd: []}\n"), 0o644)
	if _, err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "processes.a.cmd: missing") {
		t.Fatalf("reload of a bad config: %v", err)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// runit's layout: a service with a finish script (given the exit code and
// signal) and a log service fed its output; one with a down file starts
// only when asked.
func TestDirMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := filepath.Join(dir, "finish.log")
	write := func(path, body string) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "svc", "web", "run"), `echo "web in $(pwd)"; exit 2`)
	write(filepath.Join(dir, "svc", "web", "finish"), `echo "$1 $2" >> `+rec)
	write(filepath.Join(dir, "svc", "web", "log", "run"), `while read l; do echo "LOG: $l"; done`)
	write(filepath.Join(dir, "svc", "idle", "run"), `echo idle up; exec sleep 1000`)
	os.WriteFile(filepath.Join(dir, "svc", "idle", "down"), nil, 0o644)
	sock := filepath.Join(dir, "ctl.sock")
	r := start(t, "--dir", filepath.Join(dir, "svc"), "--control", sock, "--grace", "500ms")
	r.until("[web/log] LOG: web in " + filepath.Join(dir, "svc", "web"))
	eventually(t, "finish never ran twice", func() bool {
		b, _ := os.ReadFile(rec)
		return strings.Count(string(b), "2 0\n") >= 2
	})
	if strings.Contains(r.out.String(), "idle up") {
		t.Fatal("a service with a down file started")
	}
	if _, err := initproto.NewUnix(sock).Act(context.Background(), "idle", "start"); err != nil {
		t.Fatal(err)
	}
	r.until("[idle] idle up")
	r.signal(syscall.SIGTERM)
	r.wait()
}

// At shutdown a runit log service gets what its service wrote last: the
// service stops first, then the log service reads its input to the end
// (as under runsv), rather than being sent TERM with lines still queued.
func TestDirModeLogDrainsAtStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logged := filepath.Join(dir, "logged")
	write := func(path, body string) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "svc", "web", "run"), `trap 'echo "web: got TERM"; exit 0' TERM; echo "web up"; while :; do sleep 0.05; done`)
	// A slow logger: a TERM while it works would lose the line it holds.
	write(filepath.Join(dir, "svc", "web", "log", "run"), `while read l; do sleep 0.2; echo "$l" >> `+logged+`; done`)
	r := start(t, "--dir", filepath.Join(dir, "svc"), "--control", "none", "--grace", "2s")
	eventually(t, "the log service never wrote web's first line", func() bool {
		b, _ := os.ReadFile(logged)
		return strings.Contains(string(b), "web up")
	})
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
	if b, _ := os.ReadFile(logged); !strings.Contains(string(b), "web: got TERM") {
		t.Fatalf("the log service lost web's last line: %q\n%s", b, r.out)
	}
}

// A health check failing `failures` times in a row restarts the process;
// a ready check gates its dependents; user runs it as another user.
func TestChecksAndUser(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("user: needs root")
	}
	sick := filepath.Join(t.TempDir(), "sick")
	r, sock := config(t, `processes:
  svc:
    cmd: ["sh", "-c", "echo up as $(id -u); while :; do sleep 0.05; done"]
    user: "65534"
    health: {exec: ["sh", "-c", "test ! -e `+sick+`"], interval: 50ms, failures: 2}
  dep: {cmd: ["sh", "-c", "echo dep; sleep 1000"], after: [{process: svc, condition: healthy}]}
`)
	r.until("[svc] up as 65534")
	r.until("[dep] dep")
	if err := os.WriteFile(sick, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.until("unhealthy: 2 checks in a row failed")
	eventually(t, "svc not restarted after failing its health check", func() bool {
		return strings.Count(r.out.String(), "[svc] up as 65534") >= 2
	})
	st, err := initproto.NewUnix(sock).Status(context.Background())
	if err != nil || st.Processes[1].Restarts < 1 {
		t.Fatalf("status %+v, %v; want a restart counted", st, err)
	}
	os.Remove(sick)
	r.signal(syscall.SIGTERM)
	r.wait()
}

// The control interface over TCP wants its token.
func TestControlTCP(t *testing.T) {
	t.Parallel()
	r, _ := config(t, `control: {listen: "127.0.0.1:0", token: s3cret, socket: none}
processes:
  a: {cmd: ["sleep", "1000"]}
`)
	r.until("control listening")
	m := regexp.MustCompile(`control listening" addr=(\S+)`).FindStringSubmatch(r.out.String())
	if _, err := initproto.NewTCP(m[1], "wrong").Status(context.Background()); err == nil || !strings.Contains(err.Error(), "control token") {
		t.Fatalf("wrong token: %v", err)
	}
	st, err := initproto.NewTCP(m[1], "s3cret").Status(context.Background())
	if err != nil || len(st.Processes) != 1 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// An http ready check passes on a 2xx and holds back dependents; one
// that never passes within its time restarts the process.
func TestHTTPReady(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	r, _ := config(t, `processes:
  good: {cmd: ["sleep", "1000"], ready: {http: "`+srv.URL+`/ok"}}
  after: {cmd: ["sh", "-c", "echo after good; sleep 1000"], after: [{process: good, condition: ready}]}
  bad: {cmd: ["sh", "-c", "echo bad run; sleep 1000"], ready: {http: "`+srv.URL+`/down", interval: 50ms, within: 300ms}, backoff: {initial: 50ms}}
`)
	r.until("[after] after good")
	r.until("not ready within 300ms")
	eventually(t, "bad not restarted", func() bool { return strings.Count(r.out.String(), "[bad] bad run") >= 2 })
	if !strings.Contains(r.out.String(), "answered 500") {
		t.Fatalf("no reason given:\n%s", r.out)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Not PID 1, ganger-init sees only its own children: a daemon in its own
// session, ignoring TERM, re-parented to it only once its parent died of
// the first KILL, is killed all the same before ganger-init exits.
func TestLeftoversReparentedLate(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := start(t, "--grace", "300ms", "--", "sh", "-c",
		`sh -c "trap '' TERM; setsid sh -c 'echo \$\$ > `+pidFile+`; exec sleep 3599' & while :; do sleep 0.05; done" & sleep 0.3; exit 0`)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("no pid written: %q\n%s", b, r.out)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the daemon re-parented late (%d) survived ganger-init\n%s", pid, r.out)
	}
	if strings.Contains(r.out.String(), "survive SIGKILL") {
		t.Fatalf("ganger-init gave up on a process:\n%s", r.out)
	}
}

// --config-env: the config is read from the environment and not passed on
// to the processes (it may hold the control token).
func TestConfigEnvNotInherited(t *testing.T) {
	t.Parallel()
	r := &run{t: t, cmd: exec.Command(bin, "--config-env", "INIT_YAML", "--control", "none"), out: &buf{}, code: make(chan int, 1)}
	r.cmd.Env = append(os.Environ(), `INIT_YAML=processes:
  p: {cmd: ["sh", "-c", "echo seen=${INIT_YAML:-none}"], oneshot: true}
`)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); r.code <- r.cmd.ProcessState.ExitCode() }()
	if code := r.wait(); code != 0 || !strings.Contains(r.out.String(), "[p] seen=none") {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}

// A main process that cannot start stops everything: nothing else is
// started after, and nothing is left running when ganger-init exits.
func TestMainCannotStart(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	for range 5 {
		r, _ := config(t, `processes:
  a: {cmd: ["/no/such/command"], main: true, restart: never}
  b: {cmd: ["sh", "-c", "echo $$ > `+pidFile+`; exec sleep 1000"]}
`)
		if code := r.wait(); code != 127 {
			t.Fatalf("exit %d; want 127\n%s", code, r.out)
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("b (%d) outlived ganger-init\n%s", pid, r.out)
			}
		}
		if strings.Contains(r.out.String(), "panic") {
			t.Fatalf("ganger-init panicked:\n%s", r.out)
		}
	}
}

// A process removed by a reload and added back by the next, before it
// stopped, runs again.
func TestReloadRemovedThenBack(t *testing.T) {
	t.Parallel()
	yml := `processes:
  a: {cmd: ["sleep", "1000"]}
  x: {cmd: ["sh", "-c", "echo x up; trap 'sleep 0.5; exit 0' TERM; while :; do sleep 0.05; done"]}
`
	r, sock := config(t, yml)
	c := initproto.NewUnix(sock)
	ctx := context.Background()
	r.until("[x] x up")
	path := strings.TrimSuffix(sock, "ctl.sock") + "init.yaml"
	os.WriteFile(path, []byte("processes:\n  a: {cmd: [\"sleep\", \"1000\"]}\n"), 0o644)
	if res, err := c.Reload(ctx); err != nil || strings.Join(res.Removed, ",") != "x" {
		t.Fatalf("reload without x: %+v, %v", res, err)
	}
	os.WriteFile(path, []byte(yml), 0o644)
	if res, err := c.Reload(ctx); err != nil || strings.Join(res.Added, ",") != "x" {
		t.Fatalf("reload with x back: %+v, %v", res, err)
	}
	eventually(t, "x never ran again", func() bool { return strings.Count(r.out.String(), "[x] x up") == 2 })
	r.signal(syscall.SIGTERM)
	r.wait()
}

// With no main process, ganger-init leaves with the code of the last
// process to exit on its own, as it was then: not the TERM that ended
// its restarted self at shutdown.
func TestExitCodeOfTheLastOwnExit(t *testing.T) {
	t.Parallel()
	r, _ := config(t, `processes:
  flaky: {cmd: ["sh", "-c", "echo flaky up; sleep 0.1; exit 7"], restart: always, backoff: {initial: 10ms}}
  idle: {cmd: ["sleep", "1000"]}
`)
	eventually(t, "flaky never restarted", func() bool { return strings.Count(r.out.String(), "[flaky] flaky up") >= 2 })
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 7 {
		t.Fatalf("exit %d; want 7, flaky's own exit\n%s", code, r.out)
	}
}
