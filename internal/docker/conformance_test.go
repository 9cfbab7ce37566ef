package docker_test

import (
	"os/exec"
	"testing"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

var _ fleet.Backend = (*docker.Daemon)(nil)

func TestBackendConformance(t *testing.T) {
	host := dockertest.Daemon(t).Host()
	in := fleettest.BuildInit(t, true) // provided by one subtest, removed at the end
	t.Cleanup(func() { removeInit(t, host, in) })
	fleettest.RunBackendTests(t, func(t *testing.T) fleettest.Subject {
		d := dockertest.Daemon(t)
		kill := func(id string) {
			if out, err := exec.Command("docker", "kill", id).CombinedOutput(); err != nil {
				t.Fatalf("docker kill: %v: %s", err, out)
			}
		}
		return fleettest.Subject{Backend: d, Image: dockertest.Image, Kill: kill, Init: in}
	})
}

// removeInit removes the image and volume that providing in left: in is
// this test's own (fleettest.BuildInit with unique).
func removeInit(t *testing.T, host string, in ganger.Init) {
	for _, args := range [][]string{{"volume", "rm", "-f", in.Volume()}, {"image", "rm", "-f", in.Image()}} {
		if out, err := exec.Command("docker", append([]string{"-H", host}, args...)...).CombinedOutput(); err != nil {
			t.Errorf("docker %v: %v: %s", args, err, out)
		}
	}
}
