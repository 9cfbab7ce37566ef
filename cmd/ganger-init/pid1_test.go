package main

// ganger-init without Docker: PID 1 of a PID namespace made by unshare,
// and a subreaper under another init. Both are watched from the host's
// /proc.

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// orphanScript double-forks a long-lived orphan (sleep 3601) and 1,000
// short-lived ones, then waits.
const orphanScript = `echo "ppid $PPID"; (sleep 3601 &); for i in $(seq 1000); do (sleep 0.01 &); done; echo forked; exec sleep 3600`

// hostProcs reads the host's /proc, with each process's command line.
func hostProcs() map[int]procEntry {
	out := map[int]procEntry{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if p, ok := parseStat(string(b)); ok {
			cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			p.comm = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
			out[p.pid] = p
		}
	}
	return out
}

// descendants lists root's descendants in ps (root not included).
func descendants(ps map[int]procEntry, root int) []procEntry {
	kids := map[int][]int{}
	for _, p := range ps {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var out []procEntry
	queue := kids[root]
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, ps[pid])
		queue = append(queue, kids[pid]...)
	}
	return out
}

// hostInit is a ganger-init started on the host, its output kept.
type hostInit struct {
	cmd  *exec.Cmd
	out  *dockertest.Logs
	pid  int // ganger-init's own pid (in the host's namespace)
	done chan struct{}
}

// startHost runs argv (ganger-init, or unshare running it) and finds
// ganger-init's pid: argv's own, or its child's when wrapped.
func startHost(t *testing.T, wrapped bool, argv ...string) *hostInit {
	t.Helper()
	h := &hostInit{cmd: exec.Command(argv[0], argv[1:]...), out: &dockertest.Logs{}, done: make(chan struct{})}
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() { h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		for _, p := range descendants(hostProcs(), h.cmd.Process.Pid) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		h.cmd.Process.Kill()
		<-h.done
	})
	h.pid = h.cmd.Process.Pid
	if wrapped {
		dockertest.Eventually(t, 10*time.Second, "unshare never forked ganger-init", func() bool {
			for _, p := range descendants(hostProcs(), h.cmd.Process.Pid) {
				if p.ppid == h.cmd.Process.Pid && strings.HasPrefix(p.comm, binary) {
					h.pid = p.pid
					return true
				}
			}
			return false
		})
	}
	return h
}

func (h *hostInit) waitOutput(t *testing.T, s string) {
	t.Helper()
	dockertest.Eventually(t, 30*time.Second, "no "+strconv.Quote(s)+" in the output", func() bool {
		return strings.Contains(h.out.String(), s)
	})
}

// checkReaps: the short-lived orphans all go, none a zombie; the
// long-lived one is ganger-init's child, and once killed it is reaped.
// Then TERM stops ganger-init, which leaves with the child's 143.
func (h *hostInit) checkReaps(t *testing.T) int {
	t.Helper()
	h.waitOutput(t, "forked")
	var orphan procEntry
	dockertest.Eventually(t, 60*time.Second, "the short-lived orphans never went", func() bool {
		ds := descendants(hostProcs(), h.pid)
		orphan = procEntry{}
		for _, p := range ds {
			if p.comm == "sleep 3601" {
				orphan = p
			}
		}
		return len(ds) == 2 && len(zombies(ds)) == 0 && orphan.pid != 0 // sleep 3600 (the script) and 3601
	})
	if orphan.ppid != h.pid {
		t.Fatalf("the orphan's parent is %d; want ganger-init (%d)", orphan.ppid, h.pid)
	}
	syscall.Kill(orphan.pid, syscall.SIGKILL)
	dockertest.Eventually(t, 30*time.Second, "the killed orphan was never reaped", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(orphan.pid))
		return errors.Is(err, os.ErrNotExist)
	})
	syscall.Kill(h.pid, syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("ganger-init did not exit after SIGTERM; output:\n%s", h.out)
	}
	return h.cmd.ProcessState.ExitCode()
}

// TestPID1Namespace: ganger-init is PID 1 of a new PID namespace (unshare,
// no Docker) and reaps the orphans of its child.
func TestPID1Namespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("unshare --pid needs root: run the tests as root to see ganger-init as PID 1 without Docker")
	}
	t.Parallel()
	h := startHost(t, true, "unshare", "--pid", "--fork", "--mount-proc", binary, "--", "sh", "-c", orphanScript)
	h.waitOutput(t, "ppid ")
	if !strings.Contains(h.out.String(), "ppid 1\n") {
		t.Fatalf("the script's parent is not PID 1:\n%s", h.out)
	}
	if code := h.checkReaps(t); code != 143 {
		t.Fatalf("exit code %d; want 143; output:\n%s", code, h.out)
	}
}

// TestSubreaper: not PID 1, ganger-init makes itself the subreaper of its
// child's descendants: their orphans are its children, and it reaps them.
func TestSubreaper(t *testing.T) {
	t.Parallel()
	h := startHost(t, false, binary, "--", "sh", "-c", orphanScript)
	h.waitOutput(t, "ppid ")
	if !strings.Contains(h.out.String(), "ppid "+strconv.Itoa(h.pid)+"\n") {
		t.Fatalf("the script's parent is not ganger-init (%d):\n%s", h.pid, h.out)
	}
	if code := h.checkReaps(t); code != 143 {
		t.Fatalf("exit code %d; want 143; output:\n%s", code, h.out)
	}
}
