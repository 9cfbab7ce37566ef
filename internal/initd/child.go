package initd

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ChildOptions run one command the way tini does (ganger-init -- CMD).
type ChildOptions struct {
	Argv  []string
	Group bool         // -g: signals go to the child's process group
	Remap map[int]bool // -e: these exit codes become 0
	Grace time.Duration
	Log   *slog.Logger
}

// forwarded are the signals passed on to the child. SIGCHLD is the
// reaper's; SIGURG is the Go runtime's; SIGKILL and SIGSTOP cannot be
// caught.
var forwarded = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGWINCH, syscall.SIGALRM, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
	syscall.SIGPWR, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGIO,
}

// RunChild runs the command with ganger-init's own stdio, forwards
// signals to it, and once it ends stops whatever is left (TERM, then KILL
// after the grace) and returns the exit code to leave with: the child's,
// 128+n if signal n killed it, 0 if remapped.
func RunChild(opt ChildOptions) int {
	log := opt.Log
	if err := Subreaper(); err != nil {
		log.Debug("not a subreaper", "err", err) // stacked under another init: it reaps
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	r := NewReaper()
	defer r.Stop()

	path, err := exec.LookPath(opt.Argv[0])
	if err != nil {
		log.Error("cannot run the command", "cmd", opt.Argv[0], "err", err)
		return 127
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if isTerminal(0) {
		sys.Foreground, sys.Ctty = true, 0 // the child gets the terminal's signals (^C)
	}
	pid, done, err := r.Start(path, opt.Argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: sys})
	if err != nil {
		log.Error("cannot start the command", "cmd", path, "err", err)
		return 126
	}
	var st Status
wait:
	for {
		select {
		case s := <-sigs:
			sig := s.(syscall.Signal)
			target := pid
			if opt.Group {
				target = -pid
			}
			if err := syscall.Kill(target, sig); err != nil {
				log.Debug("cannot forward a signal", "signal", signalName(sig), "err", err)
			}
		case st = <-done:
			break wait
		}
	}
	cleanUp(r, opt.Grace, log)
	code := st.ExitCode()
	if opt.Remap[code] {
		code = 0
	}
	return code
}

// cleanUp stops every process left (re-parented daemons too): TERM, then
// KILL once grace has passed; it returns when none is left. Not PID 1, it
// sees only its own children: a process re-parented to it meanwhile (its
// parent just died) is signalled as it appears.
func cleanUp(r *Reaper, grace time.Duration, log *slog.Logger) {
	none := r.NoChildren()
	r.Reap()
	select {
	case <-none:
		return
	default:
	}
	log.Info("stopping the processes left", "signal", "SIGTERM", "grace", grace)
	termed := map[int]bool{}
	term := func() {
		if len(termed) == 0 {
			SignalAll(syscall.SIGTERM)
			SignalAll(syscall.SIGCONT)
		} else if os.Getpid() == 1 {
			return // kill(-1) reached every process at once
		}
		for _, pid := range Children() {
			if !termed[pid] {
				termed[pid] = true
				signalTree(pid, syscall.SIGTERM)
				signalTree(pid, syscall.SIGCONT)
			}
		}
		termed[0] = true // not empty: the first round is done
	}
	if waitNone(r, grace, term) {
		return
	}
	log.Warn("processes left after the grace: killing them", "grace", grace)
	if !waitNone(r, 10*time.Second, func() { SignalAll(syscall.SIGKILL) }) {
		log.Error("processes survive SIGKILL", "pids", fmt.Sprint(Children()))
	}
}

// waitNone waits up to d for no child to be left, calling each (if not
// nil) at once and every 100ms meanwhile.
func waitNone(r *Reaper, d time.Duration, each func()) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(100 * time.Millisecond) // also catches a SIGCHLD merged with another
	defer tick.Stop()
	for {
		if each != nil {
			each()
		}
		none := r.NoChildren()
		r.Reap()
		select {
		case <-none:
			return true
		case <-t.C:
			return false
		case <-tick.C:
		}
	}
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
