package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// A daemon dies under load: its sessions end promptly (within the ready
// timeout, not left hanging), the others go on, new sessions land on the
// daemons still up, and when it returns nothing of ours is left on it.
func TestDaemonKilledMidLoad(t *testing.T) {
	var node string
	noneLeftOnExtras(t, &node)
	victim := extraDaemons(t)[0]
	h := start(t, svc("echo", `["-banner", "%h"]`, "ready: {timeout: 10s}", "queue: {timeout: 10s}"),
		opts{daemons: threeDaemons(t, 4), top: "health: {interval: 200ms, timeout: 500ms, failures: 2}\n"})
	node = h.node
	type sess struct {
		c    net.Conn
		r    *bufio.Reader
		host string
	}
	var all []sess
	for range 6 {
		c := h.dial("echo")
		r := bufio.NewReader(c)
		all = append(all, sess{c, r, readLine(t, c, r)})
	}
	onVictim := map[string]bool{}
	for _, m := range dockertest.Owned(t, dockertest.DaemonAt(t, victim.Host), h.node) {
		onVictim[m.ID[:12]] = true
	}
	if len(onVictim) != 2 {
		t.Fatalf("%d sessions on %s; want 2 of 6 spread over 3", len(onVictim), victim.Name)
	}

	victim.Kill()
	restarted := false
	t.Cleanup(func() { // later tests need it, even if this one fails
		if !restarted {
			victim.Restart()
		}
	})
	for _, s := range all {
		if !onVictim[s.host] {
			continue
		}
		s.c.SetReadDeadline(time.Now().Add(10 * time.Second)) // the ready timeout
		if _, err := io.ReadAll(s.r); err != nil {
			t.Fatalf("session on the dead daemon not ended within the ready timeout: %v", err)
		}
	}
	h.waitLog("daemon down", "daemon="+victim.Name)
	for _, s := range all {
		if onVictim[s.host] {
			continue
		}
		fmt.Fprintln(s.c, "still here")
		if got := readLine(t, s.c, s.r); got != "still here" {
			t.Fatalf("a session on a live daemon broke: %q", got)
		}
	}
	openSessions(t, h, "echo", 3)
	if n := len(h.logs.Lines("session end", "daemon="+victim.Name, "outcome=daemon_down")); n != 2 {
		t.Errorf("%d sessions ended as daemon_down; want 2", n)
	}
	live := len(dockertest.Owned(t, h.d, h.node)) + len(dockertest.Owned(t, dockertest.DaemonAt(t, extraDaemons(t)[1].Host), h.node))
	if live != 7 {
		t.Fatalf("%d containers on the live daemons; want 4 survivors + 3 new (room for 8)", live)
	}

	restarted = true
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	h.waitLog("daemon up again", "daemon="+victim.Name)
	// Removals still being retried, or the rejoin sweep, take them.
	dockertest.Eventually(t, 30*time.Second, "containers left on the daemon after it returned", func() bool {
		return len(dockertest.Owned(t, dockertest.DaemonAt(t, victim.Host), h.node)) == 0
	})
}

// Images are made present on every daemon: pulled from a real registry
// (Debian's docker-registry on 127.0.0.1) where missing. A daemon that
// cannot get a service's image is not used for that service; others are.
func TestImagesOnEveryDaemon(t *testing.T) {
	reg := dockertest.Registry(t)
	ref := reg + "/ganger-echo:multi-" + randHex()
	dockertest.Docker(t, "tag", dockertest.Image, ref)
	dockertest.Docker(t, "push", ref)
	dockertest.Docker(t, "rmi", ref)
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })
	bare, err := dockertest.StartExtra(3, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bare.Stop) // runs after the node's shutdown
	daemons := fmt.Sprintf("  - {name: local, host: unix:///var/run/docker.sock}\n  - {name: %s, host: %q}\n", bare.Name, bare.Host)
	services := strings.Replace(svc("pulled", `["-banner", "hi"]`), dockertest.Image, ref, 1) + svc("never", `["-banner", "hi"]`, "pull: never")
	h := start(t, services, opts{daemons: daemons})
	for _, d := range []string{"local", bare.Name} {
		if len(h.logs.Lines("image pulled", "daemon="+d, ref)) != 1 {
			t.Errorf("no pull of %s logged on %s", ref, d)
		}
	}
	if len(h.logs.Lines("cannot get the image", "daemon="+bare.Name, "service=never")) != 1 {
		t.Errorf("the daemon without the never-pulled image is not logged as unused for it")
	}
	openSessions(t, h, "pulled", 2) // spread: one on each daemon
	if n := len(dockertest.Owned(t, dockertest.DaemonAt(t, bare.Host), h.node)); n != 1 {
		t.Fatalf("%d sessions on the daemon that pulled; want 1 of 2", n)
	}
	openSessions(t, h, "never", 2)
	local, err := h.d.ListManaged(context.Background(), h.node)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range local {
		if m.Labels[ganger.LabelService] == "never" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d of 2 never-pull sessions on the daemon with the image", n)
	}
}

// Pulls log in with credentials from Ganger's config or from the Docker
// CLI's config.json; without them the registry refuses and start-up says so.
// pull: always pulls even an image that is present.
func TestRegistryCredentials(t *testing.T) {
	reg := dockertest.AuthRegistry(t, "ganger", "s3cret")
	cli := t.TempDir() // the CLI's login goes here, not into root's own config
	ref := reg + "/ganger-echo:auth-" + randHex()
	dockertest.Docker(t, "tag", dockertest.Image, ref)
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })
	login := exec.Command("docker", "--config", cli, "login", "-u", "ganger", "--password-stdin", reg)
	login.Stdin = strings.NewReader("s3cret")
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("docker login: %v: %s", err, out)
	}
	dockertest.Docker(t, "--config", cli, "push", ref)
	service := strings.Replace(svc("private", `["-banner", "hi"]`), dockertest.Image, ref, 1)

	t.Run("none", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		dockertest.Docker(t, "rmi", ref)
		err := startErr(t, service, "")
		if err == nil || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "auth") {
			t.Fatalf("got %v; want start-up to fail naming %s, for want of authentication", err, ref)
		}
		t.Log(err)
	})
	t.Run("config", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		exec.Command("docker", "rmi", ref).Run()
		pw := filepath.Join(t.TempDir(), "password")
		os.WriteFile(pw, []byte("s3cret\n"), 0o600) // the trailing newline is cut
		h := start(t, service, opts{top: fmt.Sprintf("registries:\n  - {host: %q, username: ganger, password_file: %q}\n", reg, pw)})
		h.waitLog("image pulled", ref)
		openSessions(t, h, "private", 1)
	})
	t.Run("docker config.json, pull always", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", cli)
		h := start(t, strings.Replace(service, "    port:", "    pull: always\n    port:", 1)) // present: pulled anyway
		h.waitLog("pulling image (pull: always)", ref)
		h.waitLog("image pulled", ref)
		openSessions(t, h, "private", 1)
	})
}

// Containers of other Ganger nodes on a shared daemon count against its
// max_containers, as seen at each reconcile. The daemon is an extra one,
// which no other package's tests use: they run alongside, with nodes of
// their own on the local daemon.
func TestOtherNodesShareCapacity(t *testing.T) {
	e := extraDaemons(t)[1]
	var nodeA, nodeB string
	noneLeftOnExtras(t, &nodeA)
	noneLeftOnExtras(t, &nodeB)
	only := fmt.Sprintf("  - {name: %s, host: %q, max_containers: 2}\n", e.Name, e.Host)
	a := start(t, svc("echo", `["-banner", "hi"]`), opts{daemons: only})
	nodeA = a.node
	openSessions(t, a, "echo", 2)
	b := start(t, svc("echo", `["-banner", "hi"]`, "queue: {max: 0}"), opts{daemons: only, top: "reconcile: 100ms\n"})
	nodeB = b.node
	dockertest.Eventually(t, 30*time.Second, "b never refused", func() bool {
		c := b.dial("echo")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		c.Close()
		return err != nil // closed unanswered: the daemon is full of a's containers
	})
	b.waitLog("session end", "outcome=queue_full")
}
