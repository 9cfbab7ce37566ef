// Package sdnotify tells systemd (or any service manager speaking its
// notify protocol) how a service is doing: READY=1 once it serves,
// RELOADING=1 and STOPPING=1 around a reload and at shutdown, STATUS= for
// `systemctl status`, and WATCHDOG=1 keep-alives. See sd_notify(3).
//
// The protocol is a datagram of newline-separated KEY=VALUE lines sent to
// the unix datagram socket named by $NOTIFY_SOCKET: a path, or, starting
// with '@', a name in the abstract namespace. Without $NOTIFY_SOCKET
// (not started by systemd, or Type= is not notify) every call does nothing.
package sdnotify

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state to the service manager. A nil *Notifier does
// nothing, so callers need not ask whether systemd is there.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration // how often to ping (half of WATCHDOG_USEC); 0: no watchdog
	log      *slog.Logger  // where a failed send is logged; nil: nowhere

	mu     sync.Mutex
	warned bool // a failed send was logged: later ones are not
}

// FromEnv returns the notifier $NOTIFY_SOCKET asks for, or nil when it is
// unset. It unsets NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID: they
// are meant for this process, not for what it runs (hooks), which could
// otherwise speak for it. A failed send is logged once on log (nil: not
// logged); the service goes on regardless. An unusable WATCHDOG_USEC is
// an error returned with a working notifier that has no watchdog.
func FromEnv(log *slog.Logger) (*Notifier, error) {
	socket := os.Getenv("NOTIFY_SOCKET")
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("NOTIFY_SOCKET")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if socket == "" {
		return nil, nil
	}
	n, err := New(socket, log)
	if err != nil {
		return nil, err
	}
	n.watchdog, err = watchdogInterval(usec, pid, os.Getpid())
	return n, err
}

// New returns a notifier sending to socket: a path, or an abstract name
// written with a leading '@'.
func New(socket string, log *slog.Logger) (*Notifier, error) {
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		// systemd ≥ 254 may also name a vsock (vsock:CID:PORT), for
		// services in virtual machines; Ganger does not run there.
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: want a path or an @abstract name", socket)
	}
	// Go's net package maps a leading '@' to the abstract namespace (a
	// leading NUL byte), as systemd means it.
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}, log: log}, nil
}

// watchdogInterval is how often to send WATCHDOG=1: half of
// WATCHDOG_USEC, if set and meant for this process (WATCHDOG_PID unset,
// or ours), else 0.
func watchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" && pid != strconv.Itoa(self) {
		return 0, nil // the watchdog is another process's
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	return time.Duration(u) * time.Microsecond / 2, nil
}

// Send sends one datagram made of the given KEY=VALUE lines.
func (n *Notifier) Send(lines ...string) error {
	if n == nil {
		return nil
	}
	for _, l := range lines {
		if !strings.Contains(l, "=") || strings.Contains(l, "\n") {
			return fmt.Errorf("sdnotify: %q: want one KEY=VALUE line", l)
		}
	}
	// A fresh socket per message, as libsystemd does: nothing to keep
	// open, nothing stale if the manager re-executes.
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return n.failed(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return n.failed(err)
	}
	return nil
}

// failed logs the first failed send (systemd gone, or the socket not
// writable) and returns err.
func (n *Notifier) failed(err error) error {
	err = fmt.Errorf("sd_notify to %s: %w", n.addr.Name, err)
	n.mu.Lock()
	first := !n.warned
	n.warned = true
	n.mu.Unlock()
	if first && n.log != nil {
		n.log.Warn("cannot notify the service manager (logged once)", "err", err)
	}
	return err
}

// Status sets the one-line state `systemctl status` shows.
func (n *Notifier) Status(status string) error {
	return n.Send(status1(status))
}

// Ready says start-up (or a reload) is complete: the service serves.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", status1(status))
}

// Reloading says a reload begins; Ready ends it. MONOTONIC_USEC is the
// CLOCK_MONOTONIC time of the message, which systemd ≥ 253 requires (to
// tell this reload from an earlier one) when the unit is
// Type=notify-reload; older ones ignore it.
func (n *Notifier) Reloading(status string) error {
	if n == nil {
		return nil
	}
	now, err := Monotonic()
	if err != nil {
		return err
	}
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(now.Microseconds(), 10), status1(status))
}

// Stopping says shutdown begins.
func (n *Notifier) Stopping(status string) error {
	return n.Send("STOPPING=1", status1(status))
}

// Monotonic reads CLOCK_MONOTONIC, the clock of MONOTONIC_USEC.
func Monotonic() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// status1 is STATUS=s on one line.
func status1(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}

// WatchdogInterval is how often Watchdog pings: half of $WATCHDOG_USEC,
// or 0 when systemd watches no watchdog of this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Watchdog sends WATCHDOG=1 now, before it returns, and then every
// WatchdogInterval until stop is called, if systemd asks for it
// (WatchdogSec=); else it does nothing. The pings say that the process is
// alive and its Go runtime schedules; they go on through a drain, which
// may outlast the watchdog.
func (n *Notifier) Watchdog() (stop func()) {
	every := n.WatchdogInterval()
	if every == 0 {
		return func() {}
	}
	n.Send("WATCHDOG=1")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n.Send("WATCHDOG=1")
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
