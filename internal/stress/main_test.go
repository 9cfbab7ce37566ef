// Package stress holds end-to-end stress tests of Ganger: they build
// cmd/ganger, run it as a child process against the real Docker Engine and
// drive it with TCP clients only, so they depend on no internal package
// beyond dockertest.
//
// Run them with:
//
//	go test -race -count=1 -v -timeout 20m ./internal/stress/
//
// They need the local engine and the demo image (make image); the storms
// run on extra dockerd number 6 (/tmp/gd6), which nothing else uses, so
// they do not slow the other packages' tests on the local daemon; the
// stalled-daemon test starts number 5 (/tmp/gd5).
package stress

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// binary is the ganger binary TestMain builds.
var binary string

// stormd is the extra daemon the storms run on, started by the first.
var stormd struct {
	once sync.Once
	e    *dockertest.Extra
	err  error
}

// stormDaemon returns the storms' daemon and the daemons YAML naming it.
func stormDaemon(t *testing.T) (*docker.Daemon, string) {
	t.Helper()
	dockertest.Daemon(t) // the local engine answers, with the image
	stormd.once.Do(func() { stormd.e, stormd.err = dockertest.StartExtra(6, false) })
	if stormd.err != nil {
		t.Fatalf("storm daemon: %v", stormd.err)
	}
	return dockertest.DaemonAt(t, stormd.e.Host), fmt.Sprintf("daemons:\n  - {name: storm, host: %q}\n", stormd.e.Host)
}

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
	if stormd.e != nil {
		stormd.e.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
