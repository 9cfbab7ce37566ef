package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
	"github.com/ganger-dev/ganger/internal/sdnotify"
)

// notifySocket listens on a unix datagram socket, as systemd does, and
// sets NOTIFY_SOCKET to it for the processes the test starts. next
// returns the next datagram, WATCHDOG=1 pings aside (counted in
// *pings).
func notifySocket(t *testing.T, pings *int) (next func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return func() string {
		t.Helper()
		for {
			// A bound on a hung test (start-up may pull nothing here,
			// but talks to Docker), not a timing expectation.
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("no notification: %v", err)
			}
			if m := string(buf[:n]); m != "WATCHDOG=1" {
				return m
			}
			*pings++
		}
	}
}

// expectNotify reads the next notification and checks it line by line:
// each line of want is the line sent, a "*" in it standing for any text.
func expectNotify(t *testing.T, next func() string, want ...string) []string {
	t.Helper()
	got := strings.Split(next(), "\n")
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = globMatch(want[i], got[i])
	}
	if !ok {
		t.Fatalf("notified %q; want %q", got, want)
	}
	return got
}

// globMatch says whether s is pattern, each "*" in it any text.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// Under systemd (Type=notify): READY=1 comes once the service and the API
// listen; SIGHUP is RELOADING=1 (with MONOTONIC_USEC) then READY=1 again;
// the first SIGTERM is STOPPING=1; WATCHDOG_USEC means pings.
func TestNotifyServe(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	pings := 0
	next := notifySocket(t, &pings)
	t.Setenv("WATCHDOG_USEC", "60000000") // a ping at start, then every 30s
	// Addresses known before the start: the test connects right after
	// READY=1, without waiting for a log line.
	svcAddr, apiAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "ganger.yaml")
	y := fmt.Sprintf(`node: %s
api: {listen: %q, public_read: true}
services:
  - {name: echo, listen: %q, image: %s, port: 7777, cmd: [-banner, hi], timeouts: {drain: 1s}}
`, node, apiAddr, svcAddr, dockertest.Image)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, cfg)

	expectNotify(t, next, "STATUS=starting: daemons, images, listeners")
	if pings != 1 {
		t.Fatalf("%d WATCHDOG=1 before start-up; want the first ping at once", pings)
	}
	expectNotify(t, next, "READY=1", "STATUS=serving 1 service(s) from "+cfg)
	// Ready means listening: no retry, no wait.
	openSession(t, svcAddr)
	resp, err := http.Get("http://" + apiAddr + "/healthz")
	if err != nil {
		t.Fatalf("API not answering after READY=1: %v", err)
	}
	resp.Body.Close()

	before, _ := sdnotify.Monotonic()
	p.cmd.Process.Signal(syscall.SIGHUP) // what ExecReload=/bin/kill -HUP $MAINPID does
	got := expectNotify(t, next, "RELOADING=1", "MONOTONIC_USEC=*", "STATUS=reloading "+cfg)
	after, _ := sdnotify.Monotonic()
	usec, err := strconv.ParseInt(strings.TrimPrefix(got[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before.Microseconds() || usec > after.Microseconds() {
		t.Fatalf("%s: not CLOCK_MONOTONIC between the SIGHUP (%d) and its receipt (%d)", got[1], before.Microseconds(), after.Microseconds())
	}
	expectNotify(t, next, "READY=1", "STATUS=serving; config reloaded *")
	// An invalid file: still ready, on the previous config, and said so.
	if err := os.WriteFile(cfg, []byte("services:\n  - name: echo\n    lisen: oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	expectNotify(t, next, "RELOADING=1", "MONOTONIC_USEC=*", "STATUS=reloading "+cfg)
	expectNotify(t, next, "READY=1", "STATUS=serving; the reload of * failed, the previous config goes on (see the log)")

	p.cmd.Process.Signal(syscall.SIGTERM)
	expectNotify(t, next, "STOPPING=1", "STATUS=shutting down: no new sessions; draining")
	if err := p.wait(); err != nil {
		t.Fatalf("ganger exited with %v; want 0", err)
	}
	if !strings.Contains(p.logs.String(), "reload done") {
		t.Fatal("the reload notified is not logged as done")
	}
}

// The agent: READY=1 once its host's key is in etcd; STOPPING=1 at SIGTERM.
func TestNotifyAgent(t *testing.T) {
	dockertest.Daemon(t)
	e := etcdtest.New(t)
	c := etcdClient(t, e)
	pings := 0
	next := notifySocket(t, &pings)
	t.Setenv("WATCHDOG_USEC", "") // no watchdog
	// --drain-timeout: the drain waits for every Ganger container on the
	// daemon, other tests' too.
	p := startAgent(t, e, "h1", t.TempDir(), "--drain-timeout", "1s")
	expectNotify(t, next, "STATUS=starting: pinging Docker, connecting to etcd")
	expectNotify(t, next, "STATUS=registering in etcd as host h1")
	expectNotify(t, next, "READY=1", "STATUS=registered as "+agentPrefix+"hosts/h1")
	if _, ok := hostKey(t, c, "h1"); !ok {
		t.Fatal("READY=1 before the host's key is in etcd")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	expectNotify(t, next, "STOPPING=1", "STATUS=draining: no new containers here; waiting for Ganger's to end")
	expectNotify(t, next, "STATUS=deregistering")
	if err := p.exited(); err != nil {
		t.Fatalf("after SIGTERM: %v; want exit 0", err)
	}
	if pings != 0 {
		t.Fatalf("%d WATCHDOG=1 without WATCHDOG_USEC", pings)
	}
}
