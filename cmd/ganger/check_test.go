package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A setting that weakens isolation is printed as a warning; the file is
// still valid, so check exits 0.
func TestCheckWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warn.yaml")
	y := "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: x\n    port: 7777\n    limits:\n      cap_add: [sys_admin]\n"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "check", "--config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	want := "warning: " + path + ":7: services[0].limits.cap_add[0]: sys_admin lets the container"
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "ok (") {
		t.Fatalf("got:\n%s\nwant a line starting:\n%s\nand ok", out, want)
	}
}
