// Package initd is ganger-init's supervisor: one reaper owns every wait4,
// processes are started and stopped by a protocol, their output is
// prefixed line by line, and a control interface steers them. It imports
// the standard library, golang.org/x/sys, the YAML parser and Ganger's
// small init protocol package, nothing else: ganger-init stays small.
package initd

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Status is how a process ended.
type Status struct {
	Code     int            // exit code, if it exited
	Signal   syscall.Signal // the signal that killed it, if one did
	Signaled bool
}

// ExitCode is the shell's view: the code, or 128+n when killed by signal n.
func (s Status) ExitCode() int {
	if s.Signaled {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// OK reports whether it exited with code 0.
func (s Status) OK() bool { return !s.Signaled && s.Code == 0 }

func (s Status) String() string {
	if s.Signaled {
		return "killed by " + signalName(s.Signal)
	}
	return "exit code " + strconv.Itoa(s.Code)
}

// Reaper owns every wait4 of this process: each exit status goes to the
// one that started the process, by pid; any other child (an orphan
// re-parented here) is reaped and counted. Nothing else may wait for a
// child: no exec.Cmd.Wait, no os.Process.Wait.
type Reaper struct {
	mu      sync.Mutex // held around fork+register and around each reaping pass
	owners  map[int]chan Status
	orphans atomic.Int64
	none    chan struct{} // closed (and replaced) whenever wait4 says no child is left
	sigs    chan os.Signal
}

// NewReaper starts reaping on SIGCHLD. Call Stop when done.
func NewReaper() *Reaper {
	r := &Reaper{owners: map[int]chan Status{}, none: make(chan struct{}), sigs: make(chan os.Signal, 1)}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go func() {
		for range r.sigs {
			r.Reap()
		}
	}()
	return r
}

// Stop stops listening for SIGCHLD.
func (r *Reaper) Stop() {
	signal.Stop(r.sigs)
	close(r.sigs)
}

// Orphans is how many children nobody started here were reaped.
func (r *Reaper) Orphans() int64 { return r.orphans.Load() }

// Start forks and execs argv[0] (a path) with attr and returns its pid
// and a channel that receives its status once, when it ends.
func (r *Reaper) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Status, 1)
	r.owners[pid] = ch
	return pid, ch, nil
}

// Reap collects every child that has ended, without blocking.
func (r *Reaper) Reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			close(r.none)
			r.none = make(chan struct{})
			return
		}
		if err != nil || pid <= 0 {
			return
		}
		st := Status{Code: ws.ExitStatus()}
		if ws.Signaled() {
			st = Status{Signal: syscall.Signal(ws.Signal()), Signaled: true}
		}
		if ch, ok := r.owners[pid]; ok {
			delete(r.owners, pid)
			ch <- st
		} else {
			r.orphans.Add(1)
		}
	}
}

// NoChildren returns a channel closed the next time a reaping pass finds
// no child left at all.
func (r *Reaper) NoChildren() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.none
}

// Children lists the pids whose parent is this process (re-parented
// orphans included), from /proc.
func Children() []int {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			out = append(out, pid)
		}
	}
	return out
}

// SignalAll sends sig to every process left: as PID 1, all of the
// namespace (kill -1); otherwise each child of this process and its
// process group.
func SignalAll(sig syscall.Signal) {
	if os.Getpid() == 1 {
		syscall.Kill(-1, sig)
		return
	}
	for _, pid := range Children() {
		signalTree(pid, sig)
	}
}

// signalTree signals a child and, if it leads one, its process group.
func signalTree(pid int, sig syscall.Signal) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		syscall.Kill(-pid, sig)
	}
	syscall.Kill(pid, sig)
}

// Subreaper makes this process the reaper of its orphaned descendants
// when it is not PID 1 (where it is already).
func Subreaper() error {
	if os.Getpid() == 1 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a subreaper: %w", err)
	}
	return nil
}

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "CONT": syscall.SIGCONT,
	"STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "WINCH": syscall.SIGWINCH, "ALRM": syscall.SIGALRM,
	"PWR": syscall.SIGPWR, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG,
	"XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ, "VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF,
	"IO": syscall.SIGIO, "SYS": syscall.SIGSYS, "TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT,
	"PIPE": syscall.SIGPIPE,
}

// ParseSignal reads TERM, SIGTERM, term or 15.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	if sig, ok := signalNames[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func signalName(s syscall.Signal) string {
	for n, v := range signalNames {
		if v == s {
			return "SIG" + n
		}
	}
	return "signal " + strconv.Itoa(int(s))
}
