package server_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// extras are two extra Docker daemons on this machine, started the first
// time a multi-host test asks for them and stopped when the package's tests
// end.
var extras struct {
	once sync.Once
	list []*dockertest.Extra
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, e := range extras.list {
		e.Stop()
	}
	os.Exit(code)
}

// extraDaemons returns the two extra daemons, starting them if need be.
func extraDaemons(t *testing.T) []*dockertest.Extra {
	t.Helper()
	dockertest.Daemon(t) // skips under GANGER_SKIP_DOCKER
	extras.once.Do(func() {
		for i := 1; i <= 2; i++ {
			e, err := dockertest.StartExtra(i, false)
			if err != nil {
				extras.err = err
				return
			}
			extras.list = append(extras.list, e)
		}
	})
	if extras.err != nil {
		t.Fatalf("extra daemons: %v", extras.err)
	}
	return extras.list
}

// threeDaemons is the daemons YAML for the local daemon and the two extras,
// each with room for max.
func threeDaemons(t *testing.T, max int) string {
	ex := extraDaemons(t)
	y := fmt.Sprintf("  - {name: local, host: unix:///var/run/docker.sock, max_containers: %d}\n", max)
	for _, e := range ex {
		y += fmt.Sprintf("  - {name: %s, host: %q, max_containers: %d}\n", e.Name, e.Host, max)
	}
	return y
}
