package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// privateExtras is how many extra Docker daemons this package starts
// (numbers 1 to privateExtras; other packages use other numbers).
const privateExtras = 3

// extras are this package's own Docker daemons on this machine, started
// the first time a test asks for them and stopped when the package's tests
// end. No other package places containers there, and tests within the
// package run one at a time: a test that puts a cap on one, or asserts
// where containers go, sees only its own node's containers. The local
// daemon is shared with every package running alongside, and Ganger counts
// other nodes' containers against a daemon's max_containers.
var extras struct {
	once sync.Once
	mu   sync.Mutex
	list []*dockertest.Extra
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, e := range startedExtras() {
		e.Stop()
	}
	os.Exit(code)
}

// extraDaemons returns the package's extra daemons, in order, starting
// them (at once, side by side) if need be.
func extraDaemons(t *testing.T) []*dockertest.Extra {
	t.Helper()
	dockertest.Daemon(t) // skips under GANGER_SKIP_DOCKER
	extras.once.Do(startExtras)
	if extras.err != nil {
		t.Fatalf("extra daemons: %v", extras.err)
	}
	return startedExtras()
}

func startExtras() {
	started := make([]*dockertest.Extra, privateExtras)
	errs := make([]error, privateExtras)
	var wg sync.WaitGroup
	for i := range privateExtras {
		wg.Go(func() { started[i], errs[i] = dockertest.StartExtra(i+1, false) })
	}
	wg.Wait()
	extras.mu.Lock()
	defer extras.mu.Unlock()
	for _, e := range started {
		if e != nil {
			extras.list = append(extras.list, e)
		}
	}
	extras.err = errors.Join(errs...)
}

// startedExtras returns the extra daemons started so far, starting none.
func startedExtras() []*dockertest.Extra {
	extras.mu.Lock()
	defer extras.mu.Unlock()
	return extras.list
}

// onExtras is the daemons YAML for the first n extra daemons, each with
// room for max of Ganger's containers.
func onExtras(t *testing.T, n, max int) string {
	t.Helper()
	y := ""
	for _, e := range extraDaemons(t)[:n] {
		y += fmt.Sprintf("  - {name: %s, host: %q, max_containers: %d}\n", e.Name, e.Host, max)
	}
	return y
}

// ownedOn counts node's containers on an extra daemon.
func ownedOn(t *testing.T, e *dockertest.Extra, node string) int {
	t.Helper()
	return len(dockertest.Owned(t, dockertest.DaemonAt(t, e.Host), node))
}

// noneLeftOnExtras checks that the extra daemons started so far hold no
// container of node, and removes any it finds. Register it before the
// node's shutdown: cleanups run last first.
func noneLeftOnExtras(t *testing.T, node string) {
	t.Cleanup(func() {
		for _, e := range startedExtras() {
			noneLeftOn(t, e, node)
		}
	})
}

// noneLeftOn fails t if node left containers on e, and removes them.
func noneLeftOn(t *testing.T, e *dockertest.Extra, node string) {
	t.Helper()
	d := dockertest.DaemonAt(t, e.Host)
	for _, m := range dockertest.Owned(t, d, node) {
		t.Errorf("container %s (%s) left on %s", m.Name, m.State, e.Name)
		d.Remove(context.Background(), m.ID) // t.Context is over in a cleanup
	}
}
