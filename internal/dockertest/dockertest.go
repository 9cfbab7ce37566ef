// Package dockertest helps tests talk to the real Docker Engine: it fails a
// test (never skips it silently) when no engine answers, and checks that a
// test leaves no container behind.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
)

// Image is the demo service image that `make image` builds.
const Image = "ganger-echo:latest"

// Daemon returns the local daemon, or fails t if it does not answer. With
// GANGER_SKIP_DOCKER set (make test-unit) the test is skipped instead.
func Daemon(t testing.TB) *docker.Daemon {
	t.Helper()
	if os.Getenv("GANGER_SKIP_DOCKER") != "" {
		t.Skip("GANGER_SKIP_DOCKER is set")
	}
	d := DaemonAt(t, config.DaemonFromEnv().Host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.EnsureImage(ctx, Image, "never"); err != nil {
		t.Fatalf("demo image missing (run `make image`): %v", err)
	}
	return d
}

// DaemonAt returns a handle on the daemon at host, failing t if it does
// not answer.
func DaemonAt(t testing.TB, host string) *docker.Daemon {
	t.Helper()
	cfg := docker.Config{Name: "local", Host: host, Advertise: "127.0.0.1", PublishIP: "127.0.0.1", Dial: ganger.DialContainer}
	d, err := docker.New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.Ping(ctx); err != nil {
		t.Fatalf("no Docker Engine answers at %s (run `make docker`, or make test-unit): %v", host, err)
	}
	return d
}

// Node returns a fresh node id, so that a test's containers are told apart
// from every other test's by their ganger.owner label. It checks, when t
// ends, that none of them is left.
func Node(t testing.TB, d *docker.Daemon) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	node := "test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		left := Owned(t, d, node)
		for _, m := range left {
			t.Errorf("container %s (%s) left behind", m.Name, m.State)
			d.Remove(context.Background(), m.ID)
		}
		// Ganger removes its networks at shutdown once its containers are
		// gone; a benchmark's baseline containers, made under the node's
		// name, may outlive that moment, so there it is only noted.
		for _, n := range ganger.IsolatedNetworks(node) {
			if exec.Command("docker", "-H", d.Host(), "network", "inspect", n.Name).Run() != nil {
				continue // gone, as it should be
			}
			var err error
			for range 60 { // a container's endpoint may take a moment to go
				if err = d.RemoveNetwork(context.Background(), n.Name); err == nil {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			switch _, bench := t.(*testing.B); {
			case err != nil:
				t.Errorf("network %s left behind, and cannot be removed: %v", n.Name, err)
			case bench:
				t.Logf("network %s left behind after the benchmark's baseline; removed", n.Name)
			default:
				t.Errorf("network %s left behind", n.Name)
			}
		}
	})
	return node
}

// Owned lists the containers of node.
func Owned(t testing.TB, d *docker.Daemon, node string) []ganger.Managed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := d.ListManaged(ctx, node)
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return list
}

// Eventually polls cond every 20ms until it holds or timeout passes, then
// fails t with msg. It bounds a wait for something asynchronous (a removal
// in the background); it is not a claim about speed.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
