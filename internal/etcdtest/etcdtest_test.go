package etcdtest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEtcd: a server answers, keeps its data across Restart, answers
// nothing while stopped, and leaves neither process nor directory after
// Close.
func TestEtcd(t *testing.T) {
	t.Parallel()
	e, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Ctl("put", "/k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Ctl("get", "/k", "--print-value-only"); err != nil || strings.TrimSpace(out) != "v" {
		t.Fatalf("after Restart: got %q, %v; want v", out, err)
	}
	pid := e.proc.cmd.Process.Pid
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(e.Endpoint(), "http://")); err == nil {
		c.Close()
		t.Fatal("a stopped server accepts connections")
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.Dir()); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", e.Dir(), err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !os.IsNotExist(err) {
		t.Errorf("etcd %d still there after Close", pid)
	}
}

// TestParallel: servers started at once get their own ports and
// directories.
func TestParallel(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 3 {
		e := New(t)
		for _, s := range []string{e.Endpoint(), e.Dir(), strconv.Itoa(e.peerPort)} {
			if seen[s] {
				t.Fatalf("%s given twice", s)
			}
			seen[s] = true
		}
		if _, err := e.Ctl("endpoint", "health"); err != nil {
			t.Fatal(err)
		}
	}
}
