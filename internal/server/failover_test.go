package server_test

import (
	"bufio"
	"context"
	"fmt"
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

// A daemon whose dockerd dies is down for placement only: no new container
// goes there, but the sessions on it go on (proxying never goes through
// the daemon; their containers still run). They end when their containers
// do: here when the host comes back with its containers dead, as after a
// reboot, and the daemon's event stream reports them gone. The daemons are
// the package's own extras, so the spread is exact.
func TestDaemonKilledMidLoad(t *testing.T) {
	ex := extraDaemons(t)
	victim, others := ex[0], ex[1:]
	h := start(t, svc("echo", `["-banner", "%h"]`, "ready: {timeout: 10s}", "queue: {timeout: 10s}"),
		opts{daemons: onExtras(t, 3, 4), top: "health: {interval: 200ms, timeout: 500ms, failures: 2}\n"})
	var all []echoSession
	for range 6 {
		all = append(all, openEcho(t, h))
	}
	if got := perDaemon(t, h); got != "222" {
		t.Fatalf("containers per daemon %s; want 222", got)
	}
	onVictim := map[string]bool{}
	for _, m := range dockertest.Owned(t, dockertest.DaemonAt(t, victim.Host), h.node) {
		onVictim[m.ID[:12]] = true
	}

	victim.Kill()
	restarted := false
	t.Cleanup(func() { // later tests need it, even if this one fails
		if !restarted {
			victim.Restart()
		}
	})
	h.waitLog("daemon down", "daemon="+victim.Name)
	if daemonUp(h, victim.Name) {
		t.Fatalf("%s is up after its dockerd was killed", victim.Name)
	}
	for _, s := range all {
		s.echo(t, "still here") // the 2 on the dead daemon too
	}
	for range 3 {
		all = append(all, openEcho(t, h))
	}
	if n := ownedOn(t, others[0], h.node) + ownedOn(t, others[1], h.node); n != 7 {
		t.Fatalf("%d containers on the daemons up; want 4 + the 3 new (room for 8)", n)
	}
	if live, _ := h.srv.Sessions(); len(live) != 9 || len(h.logs.Lines("session end")) != 0 {
		t.Fatalf("%d live sessions, %d ended; want all 9 live while the daemon is down:\n%s", len(live), len(h.logs.Lines("session end")), h.logs.Lines("session end"))
	}

	restarted = true
	if err := victim.Restart(); err != nil { // kills its containers
		t.Fatal(err)
	}
	for _, s := range all {
		if onVictim[s.host] {
			expectClosed(t, s.c)
		}
	}
	h.waitLog("daemon up again", "daemon="+victim.Name)
	dockertest.Eventually(t, 30*time.Second, "the dead containers' sessions not ended as container_died", func() bool {
		return len(h.logs.Lines("session end", "daemon="+victim.Name, "outcome=container_died")) == 2
	})
	if n := len(h.logs.Lines("session end")); n != 2 {
		t.Fatalf("%d sessions ended; want only the 2 on %s:\n%s", n, victim.Name, h.logs.Lines("session end"))
	}
	for _, s := range all {
		if !onVictim[s.host] {
			s.echo(t, "still here after it came back")
		}
	}
	back := dockertest.DaemonAt(t, victim.Host)
	dockertest.Eventually(t, 30*time.Second, "containers left on the daemon after it returned", func() bool {
		return len(dockertest.Owned(t, back, h.node)) == 0
	})
}

// echoSession is one session of an echo service whose banner is its
// container's host name (its short id).
type echoSession struct {
	c    net.Conn
	r    *bufio.Reader
	host string
}

func openEcho(t *testing.T, h *harness) echoSession {
	t.Helper()
	c := h.dial("echo")
	r := bufio.NewReader(c)
	return echoSession{c, r, readLine(t, c, r)}
}

// echo checks that the session still echoes a line.
func (s echoSession) echo(t *testing.T, line string) {
	t.Helper()
	fmt.Fprintln(s.c, line)
	if got := readLine(t, s.c, s.r); got != line {
		t.Fatalf("session on %s: got %q; want %q", s.host, got, line)
	}
}

// daemonUp reports whether the node counts the named daemon as up.
func daemonUp(h *harness, name string) bool {
	for _, d := range h.srv.Daemons() {
		if d.Name == name {
			return d.Up
		}
	}
	return false
}

// Images are made present on every daemon: pulled from a real registry
// (Debian's docker-registry on 127.0.0.1) where missing. A daemon that
// cannot get a service's image is not used for that service; others are.
// Both daemons are extras, so where sessions go is this node's doing
// alone: the first of the package's own, and a bare one with no image.
func TestImagesOnEveryDaemon(t *testing.T) {
	reg := dockertest.Registry(t)
	ref := reg + "/ganger-echo:multi-" + randHex()
	dockertest.Docker(t, "tag", dockertest.Image, ref)
	dockertest.Docker(t, "push", ref)
	dockertest.Docker(t, "rmi", ref)
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })
	loaded := extraDaemons(t)[0]
	t.Cleanup(func() { exec.Command("docker", "-H", loaded.Host, "rmi", ref).Run() })
	bare, err := dockertest.StartExtra(4, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bare.Stop) // runs after the node's shutdown and the check below
	var node string
	t.Cleanup(func() {
		if node != "" {
			noneLeftOn(t, bare, node)
		}
	})
	daemons := fmt.Sprintf("  - {name: %s, host: %q}\n  - {name: %s, host: %q}\n", loaded.Name, loaded.Host, bare.Name, bare.Host)
	services := strings.Replace(svc("pulled", `["-banner", "hi"]`), dockertest.Image, ref, 1) + svc("never", `["-banner", "hi"]`, "pull: never")
	h := start(t, services, opts{daemons: daemons})
	node = h.node
	for _, d := range []string{loaded.Name, bare.Name} {
		if len(h.logs.Lines("image pulled", "daemon="+d, ref)) != 1 {
			t.Errorf("no pull of %s logged on %s", ref, d)
		}
	}
	if len(h.logs.Lines("cannot get the image", "daemon="+bare.Name, "service=never")) != 1 {
		t.Errorf("the daemon without the never-pulled image is not logged as unused for it")
	}
	openSessions(t, h, "pulled", 2) // spread: one on each daemon
	if n := ownedOn(t, bare, h.node); n != 1 {
		t.Fatalf("%d sessions on the daemon that pulled; want 1 of 2", n)
	}
	openSessions(t, h, "never", 2)
	list, err := dockertest.DaemonAt(t, loaded.Host).ListManaged(context.Background(), h.node)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range list {
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
	only := onExtras(t, 1, 2)
	a := start(t, svc("echo", `["-banner", "hi"]`), opts{daemons: only})
	openSessions(t, a, "echo", 2)
	b := start(t, svc("echo", `["-banner", "hi"]`, "queue: {max: 0}"), opts{daemons: only, top: "reconcile: 100ms\n"})
	dockertest.Eventually(t, 30*time.Second, "b never refused", func() bool {
		c := b.dial("echo")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		c.Close()
		return err != nil // closed unanswered: the daemon is full of a's containers
	})
	b.waitLog("session end", "outcome=queue_full")
}
