package servertest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Sweep: the directory of a dead test process goes, a live one's stays,
// and so does a dead one's whose server still runs.
func TestSweep(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(pid int) string {
		dir, err := os.MkdirTemp("", "servertest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	gone, kept, busy := mk(dead.Process.Pid), mk(os.Getpid()), mk(dead.Process.Pid)
	Sweep("servertest", func(dir string) bool { return dir == busy })
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("the directory of a dead process is still there: %v", err)
	}
	for _, dir := range []string{kept, busy} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s went: %v", dir, err)
		}
	}
	own, err := Dir("servertest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(own)
	if b, _ := os.ReadFile(filepath.Join(own, OwnerFile)); string(b) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("owner %q", b)
	}
}

// Stop: a process that ignores the signal is killed after the grace.
func TestStop(t *testing.T) {
	cmd := exec.Command("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // the trap is set
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	Stop(cmd, exited, syscall.SIGTERM, 200*time.Millisecond)
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("ended %v; want killed by SIGKILL", cmd.ProcessState)
	}
	Stop(cmd, exited, syscall.SIGTERM, time.Second) // exited: nothing to do
}
