package docker_test

import (
	"os/exec"
	"testing"

	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

var _ fleet.Backend = (*docker.Daemon)(nil)

func TestBackendConformance(t *testing.T) {
	fleettest.RunBackendTests(t, func(t *testing.T) (fleet.Backend, string, func(string)) {
		d := dockertest.Daemon(t)
		kill := func(id string) {
			if out, err := exec.Command("docker", "kill", id).CombinedOutput(); err != nil {
				t.Fatalf("docker kill: %v: %s", err, out)
			}
		}
		return d, dockertest.Image, kill
	})
}
