// Package stress holds end-to-end stress tests of Ganger: they build
// cmd/ganger, run it as a child process against the real Docker Engine and
// drive it with TCP clients only, so they depend on no internal package
// beyond dockertest.
//
// Run them with:
//
//	go test -race -count=1 -v -timeout 20m ./internal/stress/
//
// They need the local engine and the demo image (make image); test 6 also
// starts extra dockerd number 5 (/tmp/gd5).
package stress

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is the ganger binary TestMain builds.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ganger-stress")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ganger")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/ganger").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ganger: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
