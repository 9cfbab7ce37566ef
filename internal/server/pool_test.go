package server_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// pool.max_age replaces a pooled container once it is too old, and the
// replacement is made from what the image's tag names now: an image
// re-tagged on the daemon reaches the pool without a reload. The old
// container is removed; a client is served by the new one.
func TestPoolMaxAge(t *testing.T) {
	t.Parallel()
	d := dockertest.Daemon(t)
	tag := "ganger-retag-" + dockertest.Node(t, d) + ":v"
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	docker("tag", dockertest.Image, tag)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() }) // after the node's shutdown: cleanups run last first

	h := start(t, "  - name: aging\n    listen: 127.0.0.1:0\n    image: "+tag+"\n    port: 7777\n    cmd: [-banner, hi]\n    pool: {min: 1, max_age: 2s}\n")
	first := pooledID(t, h.waitLog("pool: container ready"))

	// Re-tag: the same binary, a new image id.
	tmp := docker("create", "--label", "ganger.managed=true", "--label", "ganger.owner="+h.node, dockertest.Image)
	docker("commit", "--change", "LABEL ganger.test.generation=2", tmp, tag)
	docker("rm", tmp)
	newID := docker("image", "inspect", "-f", "{{.Id}}", tag)

	h.waitLog("pool: container past max_age", "container="+first)
	dockertest.Eventually(t, time.Minute, "no pooled container made from the re-tagged image", func() bool {
		for _, l := range h.logs.Lines("pool: container ready") {
			id := pooledID(t, l)
			if id == first {
				continue
			}
			img, err := exec.Command("docker", "inspect", "-f", "{{.Image}}", id).Output()
			if err == nil && strings.TrimSpace(string(img)) == newID {
				return true
			}
		}
		return false
	})
	dockertest.Eventually(t, time.Minute, "the aged container was not removed", func() bool {
		return exec.Command("docker", "inspect", first).Run() != nil
	})
	c := h.dial("aging")
	if got := readLine(t, c, newReader(c)); got != "hi" {
		t.Fatalf("banner %q", got)
	}
	c.Close()
	h.waitLog("session end", "from=pool")
}

var containerRE = regexp.MustCompile(`container=([0-9a-f]{12})`)

// pooledID is the short container id a log line names.
func pooledID(t *testing.T, line string) string {
	t.Helper()
	m := containerRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no container id in %q", line)
	}
	return m[1]
}

// A pool takes only room no client waits for, on the real engine: a pool
// holding a daemon's every slot gives a container back when a client of
// another service waits for room, the client is served, and the pool
// does not refill the slot while the client holds it.
func TestPoolYieldsToWaitingClient(t *testing.T) {
	h := start(t, svc("pooled", `["-banner", "pooled"]`, "pool: {min: 2}")+
		svc("other", `["-banner", "other"]`, "queue: {max: 5, timeout: 1m}"),
		opts{daemons: onExtras(t, 1, 2)})
	dockertest.Eventually(t, time.Minute, "the pool never filled the daemon", func() bool {
		return len(h.logs.Lines("pool: container ready")) >= 2
	})
	c := h.dial("other")
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if got := readLine(t, c, newReader(c)); got != "other" {
		t.Fatalf("waiting client got %q; want served once the pool gave room back", got)
	}
	h.waitLog("pool: a client waits for room; giving a pooled container back")
	e := extraDaemons(t)[0]
	if n := ownedOn(t, e, h.node); n != 2 {
		t.Fatalf("%d containers on the daemon; want 2 (one pooled, one serving)", n)
	}
	c.Close()
}
