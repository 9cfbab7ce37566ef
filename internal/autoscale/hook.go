package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// hookInput is what a hook reads on stdin.
type hookInput struct {
	Action    Action       `json:"action"`
	RequestID string       `json:"request_id"`
	Host      string       `json:"host,omitempty"`
	Reason    string       `json:"reason"`
	Snapshot  hookSnapshot `json:"snapshot"`
}

// hookSnapshot is the fleet a hook is told about: used and capacity are
// the load's, over usable hosts.
type hookSnapshot struct {
	At       time.Time `json:"at"`
	Hosts    []Host    `json:"hosts"`
	Used     int       `json:"used"`
	Capacity int       `json:"capacity"`
	Queued   int       `json:"queued"`
}

func newHookSnapshot(snap Snapshot) hookSnapshot {
	u := measure(snap)
	hosts := snap.Hosts
	if hosts == nil {
		hosts = []Host{}
	}
	return hookSnapshot{At: snap.At, Hosts: hosts, Used: u.used, Capacity: u.capacity, Queued: snap.Queued}
}

const (
	// tailBytes is how much of a hook's stdout and of its stderr is kept.
	tailBytes = 2048
	// pipeGrace bounds the wait for a hook's output once it has exited:
	// a process it left behind may hold the pipes open.
	pipeGrace = 2 * time.Second
)

// runHook runs h with in and reports how it went; run.Started is the
// caller's to set. ctx ending kills the hook like its timeout does.
func runHook(ctx context.Context, h Hook, in hookInput) HookRun {
	run := HookRun{Action: in.Action, RequestID: in.RequestID, Host: in.Host, ExitCode: -1}
	body, err := json.Marshal(in)
	if err != nil {
		run.Error = fmt.Sprintf("cannot encode hook input: %v", err)
		return run
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(), "GANGER_ACTION="+string(in.Action), "GANGER_REQUEST_ID="+in.RequestID)
	if in.Host != "" {
		cmd.Env = append(cmd.Env, "GANGER_HOST="+in.Host)
	}
	var stdout, stderr tail
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = pipeGrace
	start := time.Now()
	err = cmd.Run()
	run.DurationSeconds = time.Since(start).Seconds()
	run.Stdout, run.Stderr = stdout.String(), stderr.String()
	if cmd.ProcessState != nil {
		run.ExitCode = cmd.ProcessState.ExitCode() // -1 if a signal ended it
	}
	run.Accepted, run.Error = outcome(ctx, h, run.ExitCode, err)
	return run
}

// outcome names how a hook ended, where it ended.
func outcome(ctx context.Context, h Hook, code int, err error) (bool, string) {
	switch {
	case code == 0 && (err == nil || errors.Is(err, exec.ErrWaitDelay)):
		// ErrWaitDelay: a process left behind held the output open; the
		// hook itself said yes.
		return true, ""
	case code > 0:
		return false, fmt.Sprintf("exit status %d", code)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return false, fmt.Sprintf("timeout after %s: process group killed", h.Timeout)
	case ctx.Err() != nil:
		return false, "stopped: process group killed"
	case err != nil && !isExit(err):
		return false, fmt.Sprintf("cannot run hook %s: %v", h.Command[0], err)
	}
	return false, fmt.Sprintf("hook %s: %v", h.Command[0], err)
}

func isExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// tail keeps the last tailBytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	cut bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}
