package sdnotify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unix datagram socket, as systemd does, at a path or
// (name "@...") in the abstract namespace, and returns its name for
// NOTIFY_SOCKET and a function that reads the next datagram.
func listen(t *testing.T, abstract bool) (string, func() string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	if abstract {
		b := make([]byte, 8)
		rand.Read(b)
		name = "@ganger-sdnotify-test-" + hex.EncodeToString(b)
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if abstract {
		// The socket is in the abstract namespace: no file, and the
		// kernel reports the name with its leading NUL as '@'.
		if _, err := os.Stat(name); err == nil {
			t.Fatalf("%s exists as a file", name)
		}
		if b, err := os.ReadFile("/proc/net/unix"); err == nil && !strings.Contains(string(b), " "+name+"\n") {
			t.Fatalf("%s is not among the abstract sockets of /proc/net/unix", name)
		}
	}
	return name, func() string {
		t.Helper()
		// A bound on a hung test, not a timing expectation: every
		// message read here was sent before the read.
		c.SetReadDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no datagram: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifyMessages(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(map[bool]string{false: "path", true: "abstract"}[abstract], func(t *testing.T) {
			socket, next := listen(t, abstract)
			n, err := New(socket, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				send func() error
				want string
			}{
				{func() error { return n.Status("starting") }, "STATUS=starting"},
				{func() error { return n.Ready("serving 2 services") }, "READY=1\nSTATUS=serving 2 services"},
				{func() error { return n.Stopping("draining\nsessions") }, "STOPPING=1\nSTATUS=draining sessions"},
				{func() error { return n.Send("WATCHDOG=1") }, "WATCHDOG=1"},
			} {
				if err := c.send(); err != nil {
					t.Fatal(err)
				}
				if got := next(); got != c.want {
					t.Errorf("sent %q; want %q", got, c.want)
				}
			}

			before, _ := Monotonic()
			if err := n.Reloading("reloading"); err != nil {
				t.Fatal(err)
			}
			after, _ := Monotonic()
			lines := strings.Split(next(), "\n")
			if len(lines) != 3 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || lines[2] != "STATUS=reloading" {
				t.Fatalf("reloading sent %q", lines)
			}
			usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
			if err != nil || usec < before.Microseconds() || usec > after.Microseconds() {
				t.Fatalf("MONOTONIC_USEC=%d, not between CLOCK_MONOTONIC before (%d) and after (%d) the call",
					usec, before.Microseconds(), after.Microseconds())
			}
		})
	}
}

// Lines that are not KEY=VALUE, or hold a newline, are refused before
// anything is sent.
func TestNotifySendRefusesBadLines(t *testing.T) {
	socket, next := listen(t, false)
	n, _ := New(socket, nil)
	for _, bad := range []string{"READY", "STATUS=a\nREADY=1"} {
		if err := n.Send(bad); err == nil {
			t.Errorf("Send(%q) accepted", bad)
		}
	}
	n.Send("STATUS=after")
	if got := next(); got != "STATUS=after" {
		t.Fatalf("first datagram %q; want only the valid one", got)
	}
}

func TestNotifyFromEnv(t *testing.T) {
	socket, next := listen(t, true)
	pid := strconv.Itoa(os.Getpid())
	t.Setenv("NOTIFY_SOCKET", socket)
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", pid)
	n, err := FromEnv(nil)
	if err != nil || n == nil {
		t.Fatalf("FromEnv: %v, %v", n, err)
	}
	if got := n.WatchdogInterval(); got != 15*time.Second {
		t.Errorf("watchdog every %v; want 15s (half of WATCHDOG_USEC)", got)
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%s still set: a child process would inherit it", k, v)
		}
	}
	n.Ready("up")
	if got := next(); got != "READY=1\nSTATUS=up" {
		t.Fatalf("sent %q", got)
	}

	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"2000000", "", time.Second, false},     // no WATCHDOG_PID: ours
		{"2000000", "1", 0, false},              // another process's watchdog
		{"2000000", pid + "0", 0, false},        // another process's watchdog
		{"soon", pid, 0, true},                  // garbage
		{"0", "", 0, true},                      // garbage
		{"-5", "", 0, true},                     // garbage
		{"1", "", 500 * time.Nanosecond, false}, // tiny, but what was asked
	} {
		t.Setenv("NOTIFY_SOCKET", socket)
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		n, err := FromEnv(nil)
		if (err != nil) != c.err || (err == nil && n.WatchdogInterval() != c.want) {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, %v; want every %v (error: %v)", c.usec, c.pid, n.WatchdogInterval(), err, c.want, c.err)
		}
	}
}

// No NOTIFY_SOCKET: no notifier, and a nil one does nothing.
func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	t.Setenv("WATCHDOG_USEC", "1000000")
	n, err := FromEnv(nil)
	if n != nil || err != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET: %v, %v; want nil, nil", n, err)
	}
	for _, f := range []func(string) error{n.Ready, n.Status, n.Reloading, n.Stopping} {
		if err := f("x"); err != nil {
			t.Fatal(err)
		}
	}
	if n.WatchdogInterval() != 0 {
		t.Fatal("a nil notifier has a watchdog")
	}
	n.Watchdog()()
}

func TestNotifyRefusesOtherAddresses(t *testing.T) {
	for _, s := range []string{"relative/notify", "vsock:2:1234"} {
		if _, err := New(s, nil); err == nil {
			t.Errorf("New(%q) accepted", s)
		}
	}
}

// A send that fails (no one listens) returns its error and is logged
// once, not at every watchdog ping.
func TestNotifyFailureLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	n, _ := New(filepath.Join(t.TempDir(), "nobody"), slog.New(slog.NewTextHandler(&logs, nil)))
	for range 3 {
		if err := n.Ready("x"); err == nil {
			t.Fatal("a send to a socket nobody listens on succeeded")
		}
	}
	if got := strings.Count(logs.String(), "cannot notify the service manager"); got != 1 {
		t.Fatalf("logged %d times; want once:\n%s", got, logs.String())
	}
}

// WATCHDOG=1 is sent at once and then every half WATCHDOG_USEC until the
// watchdog is stopped.
func TestNotifyWatchdog(t *testing.T) {
	socket, next := listen(t, false)
	t.Setenv("NOTIFY_SOCKET", socket)
	t.Setenv("WATCHDOG_USEC", "2000") // a ping per millisecond
	t.Setenv("WATCHDOG_PID", "")
	n, err := FromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := n.Watchdog()
	for range 3 {
		if got := next(); got != "WATCHDOG=1" {
			t.Fatalf("sent %q; want WATCHDOG=1", got)
		}
	}
	stop()
	stop() // twice is harmless
}
