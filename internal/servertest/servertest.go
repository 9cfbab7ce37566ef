// Package servertest holds what the test harnesses that run a real server
// process (etcdtest, pgtest) share: a working directory that says which
// test process owns it, the sweep of those a killed test left, the stop
// of the server's process, and the end of its log for error messages.
package servertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OwnerFile, in a server's directory, holds the pid of the test process
// that made it.
const OwnerFile = "owner.pid"

// Dir makes a directory prefix-* under the temporary directory, owned by
// this process.
func Dir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Sweep removes the prefix-* directories whose owner is gone without its
// cleanup (killed), unless busy says something in one still runs.
func Sweep(prefix string, busy func(dir string) bool) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, OwnerFile))
		if err != nil {
			continue // not ours, or being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if busy != nil && busy(dir) {
			continue
		}
		os.RemoveAll(dir)
	}
}

// Stop sends sig to cmd's process unless exited is closed already, and
// waits for it; SIGKILL after grace.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal, grace time.Duration) {
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

// Tail is the end of a log file, for error messages.
func Tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
