package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ganger-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ganger")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ganger: %v\n%s", err, out)
		os.Exit(1)
	}
	// ganger-init next to it, static (it runs in images FROM scratch): the
	// default init_binary of init: ganger.
	initBuild := exec.Command("go", "build", "-o", filepath.Join(dir, "ganger-init"), "../ganger-init")
	initBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := initBuild.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ganger-init: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestCheck(t *testing.T) {
	out, err := exec.Command(binary, "check", "--config", "../../examples/ganger.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("check examples/ganger.yaml: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    imgae: x\n    port: 7777\n"), 0o644)
	out, err = exec.Command(binary, "check", "--config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("check of a bad file exited 0:\n%s", out)
	}
	want := bad + `:4: services[0].imgae: unknown key "imgae" (did you mean "image"?)`
	if !strings.Contains(string(out), want) {
		t.Fatalf("got:\n%s\nwant a line:\n%s", out, want)
	}
}

// With no --config, GANGER_CONFIG names the file (as in Ganger's image).
func TestConfigFromEnvironment(t *testing.T) {
	cmd := exec.Command(binary, "check")
	cmd.Env = append(os.Environ(), "GANGER_CONFIG=../../examples/ganger.yaml")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("check with GANGER_CONFIG: %v\n%s", err, out)
	}
	cmd = exec.Command(binary, "check")
	cmd.Env = append(os.Environ(), "GANGER_CONFIG=/nonexistent/ganger.yaml")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "/nonexistent/ganger.yaml") {
		t.Fatalf("check with GANGER_CONFIG naming no file: %v\n%s", err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"serve"}, {"check"}} {
		err := exec.Command(binary, args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("ganger %v: got %v; want exit code 2", args, err)
		}
	}
}

// proc is a `ganger serve` child process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *dockertest.Logs
	done chan error
}

func writeConfig(t *testing.T, node, drain string, extra ...string) string {
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	cfg := fmt.Sprintf(strings.Join(extra, "")+`node: %s
api: {listen: 127.0.0.1:0}
services:
  - name: echo
    listen: 127.0.0.1:0
    image: %s
    port: 7777
    cmd: ["-banner", "hi"]
    timeouts: {drain: %s}
`, node, dockertest.Image, drain)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startProc runs `ganger serve --config config [extra...]`; at the test's
// end it is stopped with SIGTERM if still running.
func startProc(t *testing.T, config string, extra ...string) *proc {
	p := &proc{t: t, logs: &dockertest.Logs{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"serve", "--config", config}, extra...)...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil { // still running: stop it as an operator would
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(time.Minute):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("ganger logs:\n%s", p.logs)
		}
	})
	return p
}

var listenRE = regexp.MustCompile(`msg=listening service=echo addr=(\S+)|"msg":"listening","service":"echo","addr":"([^"]+)"`)

// addr waits for the service to listen and returns its address.
func (p *proc) addr() string {
	var addr string
	dockertest.Eventually(p.t, time.Minute, "ganger never listened", func() bool {
		if m := listenRE.FindStringSubmatch(p.logs.String()); m != nil {
			addr = m[1] + m[2]
		}
		return addr != ""
	})
	return addr
}

func (p *proc) wait() error {
	select {
	case err := <-p.done:
		return err
	case <-time.After(2 * time.Minute):
		p.t.Fatal("ganger did not exit")
		return nil
	}
}

// openSession opens a session and waits for its banner: its container runs.
func openSession(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "hi\n" {
		t.Fatalf("banner: %q, %v", line, err)
	}
	c.SetReadDeadline(time.Time{})
	return c, r
}

// SIGTERM: no new sessions, live ones drain (and still work) until the
// drain timeout, then every container is removed and ganger exits 0.
func TestSIGTERMDrainsAndCleansUp(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	p := startProc(t, writeConfig(t, node, "1500ms"))
	addr := p.addr()
	a, ra := openSession(t, addr)
	b, _ := openSession(t, addr)
	if n := len(dockertest.Owned(t, d, node)); n != 2 {
		t.Fatalf("got %d containers; want 2", n)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	dockertest.Eventually(t, 30*time.Second, "ganger kept accepting after SIGTERM", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// A SIGHUP during the drain (a reload racing a stop) is not fatal.
	p.cmd.Process.Signal(syscall.SIGHUP)
	fmt.Fprintln(a, "during drain")
	a.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := ra.ReadString('\n'); err != nil || line != "during drain\n" {
		t.Fatalf("a draining session stopped working: %q, %v", line, err)
	}
	for _, c := range []net.Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("session not closed at the end of the drain: %v", err)
		}
	}
	if err := p.wait(); err != nil {
		t.Fatalf("ganger exited with %v; want 0", err)
	}
	if !strings.Contains(p.logs.String(), "SIGHUP ignored: shutting down") {
		t.Errorf("the SIGHUP during the drain was not logged as ignored")
	}
	if left := dockertest.Owned(t, d, node); len(left) != 0 {
		t.Fatalf("%d containers left after shutdown", len(left))
	}
}

// kill -9 with sessions open leaves their containers; the next start of the
// same node sweeps them.
func TestCrashRecovery(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	config := writeConfig(t, node, "1s")
	p := startProc(t, config)
	addr := p.addr()
	openSession(t, addr)
	openSession(t, addr)
	p.cmd.Process.Kill()
	p.wait()
	if n := len(dockertest.Owned(t, d, node)); n != 2 {
		t.Fatalf("got %d containers after kill -9; want the 2 orphans", n)
	}
	p2 := startProc(t, config)
	p2.addr()
	if !strings.Contains(p2.logs.String(), `when=start-up daemon=local owner=`+node+` removed=2`) {
		t.Fatalf("start-up did not log sweeping 2 orphans")
	}
	if n := len(dockertest.Owned(t, d, node)); n != 0 {
		t.Fatalf("got %d containers after the sweep; want 0", n)
	}
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.wait(); err != nil {
		t.Fatalf("ganger exited with %v", err)
	}
}

func TestJSONLogs(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	p := startProc(t, writeConfig(t, node, "1s", "log: {format: json}\n"))
	c, _ := openSession(t, p.addr())
	c.Close()
	dockertest.Eventually(t, 30*time.Second, "no session end line", func() bool {
		return strings.Contains(p.logs.String(), `"msg":"session end"`)
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
	var start, end map[string]any
	for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		switch m["msg"] {
		case "session start":
			start = m
		case "session end":
			end = m
		}
	}
	if start == nil || end == nil || start["session"] != end["session"] {
		t.Fatalf("start %v, end %v; want one session's two lines", start, end)
	}
	for _, k := range []string{"session", "client", "service", "daemon", "container", "ready", "bytes_in", "bytes_out", "duration", "outcome"} {
		if _, ok := end[k]; !ok {
			t.Errorf("session end lacks %q: %v", k, end)
		}
	}
}

// A second SIGTERM skips the drain: sessions are closed and every container
// removed at once. The drain here is 10 minutes; the test waits at most 2.
func TestSecondSignalSkipsDrain(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	p := startProc(t, writeConfig(t, node, "10m"))
	c, _ := openSession(t, p.addr())
	p.cmd.Process.Signal(syscall.SIGTERM)
	dockertest.Eventually(t, 30*time.Second, "first signal not logged", func() bool {
		return strings.Contains(p.logs.String(), "shutting down gracefully")
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("session not closed after the second signal: %v", err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("ganger exited with %v; want 0", err)
	}
	if left := dockertest.Owned(t, d, node); len(left) != 0 {
		t.Fatalf("%d containers left", len(left))
	}
}

// ganger reload: an invalid file is refused by the command and, sent by
// SIGHUP anyway, changes nothing; a valid one is applied.
func TestReloadCommand(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	dir := t.TempDir()
	cfgPath, pidPath := filepath.Join(dir, "ganger.yaml"), filepath.Join(dir, "ganger.pid")
	write := func(banner string) {
		y := fmt.Sprintf("node: %s\napi: {listen: 127.0.0.1:0}\nservices:\n  - {name: echo, listen: 127.0.0.1:0, image: %s, port: 7777, cmd: [-banner, %s], timeouts: {drain: 1s}}\n", node, dockertest.Image, banner)
		if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("v1")
	p := startProc(t, cfgPath, "--pid-file", pidPath)
	addr := p.addr()
	expectBanner := func(want string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line != want+"\n" {
			t.Fatalf("banner %q; want %q", line, want)
		}
	}
	expectBanner("v1")

	os.WriteFile(cfgPath, []byte("services:\n  - name: echo\n    lisen: oops\n"), 0o644)
	out, err := exec.Command(binary, "reload", "--pid-file", pidPath, "--config", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown key "lisen"`) {
		t.Fatalf("reload of an invalid file: %v\n%s", err, out)
	}
	p.cmd.Process.Signal(syscall.SIGHUP) // sent anyway: the daemon refuses it too
	dockertest.Eventually(t, 30*time.Second, "invalid reload not logged", func() bool {
		return strings.Contains(p.logs.String(), "reload: invalid config; nothing changed")
	})
	expectBanner("v1")

	write("v2")
	if out, err := exec.Command(binary, "reload", "--pid-file", pidPath, "--config", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	dockertest.Eventually(t, 30*time.Second, "reload not done", func() bool {
		return strings.Contains(p.logs.String(), "reload done")
	})
	expectBanner("v2")
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
		t.Fatal("pid file left behind")
	}
}
