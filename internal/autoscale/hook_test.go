package autoscale

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// At its timeout a hook is killed with everything it started.
func TestHookTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	hook := Hook{Command: []string{writeScript(t, "sleep 1000 & echo $! > "+pidFile+"; wait")}, Timeout: 200 * time.Millisecond}
	run := runHook(t.Context(), hook, hookInput{Action: ActionUp, RequestID: "up-1"})
	if run.Accepted || run.ExitCode != -1 || run.Error != "timeout after 200ms: process group killed" {
		t.Fatalf("run %+v", run)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL was sent before runHook returned; the process dies as it is
	// next scheduled: wait for that, not for a time.
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the hook's child %d outlived the hook", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive: pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// A hook that exits 0 leaving a process that holds its output open is
// accepted: the hook said yes.
func TestHookLeavesProcess(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	hook := Hook{Command: []string{writeScript(t, "echo started; sleep 1000 & echo $! > "+pidFile)}, Timeout: time.Minute}
	run := runHook(t.Context(), hook, hookInput{Action: ActionUp, RequestID: "up-1"})
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if !run.Accepted || run.ExitCode != 0 || run.Stdout != "started\n" {
		t.Fatalf("run %+v", run)
	}
}

// A hook that cannot start fails with why.
func TestHookCannotStart(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	run := runHook(t.Context(), Hook{Command: []string{missing}, Timeout: time.Minute}, hookInput{Action: ActionDown})
	if run.Accepted || run.ExitCode != -1 || !strings.HasPrefix(run.Error, "cannot run hook "+missing+": ") {
		t.Fatalf("run %+v", run)
	}
}

// Only the tail of a chatty hook's output is kept.
func TestHookOutputTail(t *testing.T) {
	t.Parallel()
	hook := Hook{Command: []string{writeScript(t, "i=0; while [ $i -lt 500 ]; do echo line $i >&2; i=$((i+1)); done; exit 1")}, Timeout: time.Minute}
	run := runHook(t.Context(), hook, hookInput{Action: ActionUp})
	if run.Accepted || run.Error != "exit status 1" || !strings.HasPrefix(run.Stderr, "…") ||
		!strings.HasSuffix(run.Stderr, "line 499\n") || len(run.Stderr) > tailBytes+len("…") {
		t.Fatalf("run %+v", run)
	}
}
