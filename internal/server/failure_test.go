package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/server"
)

// socketRelay forwards a unix socket to the real Docker socket, and can be
// cut to make the daemon unreachable and restored on the same path.
type socketRelay struct {
	t      *testing.T
	path   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newRelay(t *testing.T) *socketRelay {
	target := strings.TrimPrefix(config.DaemonFromEnv().Host, "unix://")
	r := &socketRelay{t: t, path: filepath.Join(t.TempDir(), "docker.sock"), target: target}
	r.up()
	t.Cleanup(func() { r.down(); r.wg.Wait() })
	return r
}

func (r *socketRelay) up() {
	ln, err := net.Listen("unix", r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Go(func() { r.relay(c) })
		}
	})
}

func (r *socketRelay) relay(c net.Conn) {
	u, err := net.Dial("unix", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.conns = append(r.conns, c, u)
	r.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// down closes the socket and every relayed connection.
func (r *socketRelay) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// The daemon becomes unreachable: the session's create fails, the daemon
// is found down at once and marked so, and with no other daemon and no
// queue the client is closed at once. When it answers again it is used.
func TestDaemonUnreachable(t *testing.T) {
	relay := newRelay(t)
	h := start(t, svc("echo", `["-banner", "hi"]`, "queue: {max: 0}"), opts{daemonHost: "unix://" + relay.path, top: "health: {interval: 100ms}\n"})
	relay.down()
	c := h.dial("echo")
	if got := expectClosed(t, c); len(got) != 0 {
		t.Fatalf("got %q; want the client closed", got)
	}
	h.waitLog("daemon down", "daemon=local")
	line := h.waitLog("session end", "outcome=queue_full")
	if !strings.Contains(line, "err=") {
		t.Fatalf("end line does not say why: %s", line)
	}
	relay.up()
	h.waitLog("daemon up again", "daemon=local")
	c = h.dial("echo")
	if got := readLine(t, c, newReader(c)); got != "hi" {
		t.Fatalf("after the daemon came back: got %q; want hi", got)
	}
}

func TestImageMissingAtSessionTime(t *testing.T) {
	tag := "ganger-echo:gone-" + randHex()
	if out, err := exec.Command("docker", "tag", dockertest.Image, tag).CombinedOutput(); err != nil {
		t.Fatalf("docker tag: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", tag).Run() })
	services := strings.Replace(svc("gone", `["-banner", "hi"]`), dockertest.Image, tag, 1) + svc("echo", `["-banner", "still here"]`)
	h := start(t, services)
	if out, err := exec.Command("docker", "rmi", tag).CombinedOutput(); err != nil {
		t.Fatalf("docker rmi: %v: %s", err, out)
	}
	c := h.dial("gone")
	if got := expectClosed(t, c); len(got) != 0 {
		t.Fatalf("got %q; want the client closed", got)
	}
	line := h.waitLog("session end", "service=gone", "outcome=create_failed")
	if !strings.Contains(strings.ToLower(line), "no such image") {
		t.Fatalf("end line does not name the missing image: %s", line)
	}
	c = h.dial("echo")
	if got := readLine(t, c, newReader(c)); got != "still here" {
		t.Fatalf("other service: got %q", got)
	}
}

// An image that is neither present nor pullable stops start-up with an
// error naming it; nothing listens. The registry is 127.0.0.1:1, which
// refuses at once: no traffic leaves the machine.
func TestStartupFailsOnUnpullableImage(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	yml := "node: " + node + "\nservices:\n" + strings.Replace(svc("x", `[]`), dockertest.Image, "127.0.0.1:1/ganger/missing:v1", 1)
	cfg, err := config.Parse("t.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewDocker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	err = srv.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/ganger/missing:v1") || !strings.Contains(err.Error(), "service x") {
		t.Fatalf("got %v; want an error naming the service and image", err)
	}
	if srv.Addr("x") != nil {
		t.Fatal("a service listens after a failed start-up")
	}
}

func randHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// An image missing on the daemon is pulled at start-up, with progress in the
// log, from a real registry (Debian's docker-registry on 127.0.0.1).
func TestStartupPullsMissingImage(t *testing.T) {
	reg := dockertest.Registry(t)
	ref := reg + "/ganger-echo:pull-" + randHex()
	dockertest.Docker(t, "tag", dockertest.Image, ref)
	dockertest.Docker(t, "push", ref)
	dockertest.Docker(t, "rmi", ref)
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })

	h := start(t, strings.Replace(svc("pulled", `["-banner", "pulled"]`), dockertest.Image, ref, 1))
	for _, want := range []string{"image missing, pulling", "pull progress", "image pulled"} {
		if len(h.logs.Lines(want, ref)) == 0 {
			t.Errorf("no log line %q for %s", want, ref)
		}
	}
	c := h.dial("pulled")
	if got := readLine(t, c, newReader(c)); got != "pulled" {
		t.Fatalf("got %q", got)
	}
}

// The reconciler removes containers of this node that no live session owns,
// and leaves a live session's container alone.
func TestReconcilerRemovesOrphans(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`), opts{top: "reconcile: 100ms\n"})
	c := h.dial("echo")
	r := newReader(c)
	readLine(t, c, r)
	for _, orphan := range []struct{ service, session string }{{"echo", "gone1"}, {"retired", "gone2"}} {
		_, err := h.d.Create(context.Background(), ganger.Spec{
			Name: "ganger-orphan-" + orphan.session + "-" + h.node, Image: dockertest.Image, Port: 7777, Network: "bridge",
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: h.node, ganger.LabelService: orphan.service, ganger.LabelSession: orphan.session},
			Limits: ganger.Limits{Memory: 64 << 20, Pids: 16},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	dockertest.Eventually(t, 30*time.Second, "orphans not reconciled", func() bool {
		return len(dockertest.Owned(t, h.d, h.node)) == 1
	})
	if got := h.logs.Lines("reconcile: removed orphan"); len(got) != 2 {
		t.Fatalf("got %d orphan removals logged; want 2", len(got))
	}
	fmt.Fprintln(c, "still mine")
	if got := readLine(t, c, r); got != "still mine" {
		t.Fatalf("live session broken after reconciling: %q", got)
	}
}

// A daemon at max_containers, with no queue, refuses new clients at once; a
// slot frees when a container is removed, not before. The daemon is an
// extra one: other packages' containers on the local daemon would count
// against its cap.
func TestMaxContainers(t *testing.T) {
	d := dockertest.DaemonAt(t, extraDaemons(t)[0].Host)
	h := start(t, svc("a", `["-banner", "a"]`, "queue: {max: 0}")+svc("b", `["-banner", "b"]`, "queue: {max: 0}"), opts{daemons: onExtras(t, 1, 2)})
	a := h.dial("a")
	readLine(t, a, newReader(a))
	b := h.dial("b")
	readLine(t, b, newReader(b))
	over := h.dial("a")
	if got := expectClosed(t, over); len(got) != 0 {
		t.Fatalf("third client got %q; want closed at once", got)
	}
	h.waitLog("session end", "outcome=queue_full")
	if n := len(dockertest.Owned(t, d, h.node)); n != 2 {
		t.Fatalf("got %d containers; want 2", n)
	}
	a.Close()
	h.waitLog("session end", "service=a", "outcome=closed")
	dockertest.Eventually(t, 30*time.Second, "container a not removed", func() bool {
		return len(dockertest.Owned(t, d, h.node)) == 1
	})
	var c net.Conn
	dockertest.Eventually(t, 30*time.Second, "no slot freed after the removal", func() bool {
		c = h.dial("b")
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := newReader(c).ReadString('\n')
		return err == nil && line == "b\n"
	})
}

// The overall cap (limits.max_sessions) and a service's cap
// (max_containers) hold on the real engine, with room on the daemon.
func TestServiceAndGlobalCaps(t *testing.T) {
	t.Run("service", func(t *testing.T) {
		h := start(t, svc("one", `["-banner", "hi"]`, "max_containers: 1", "queue: {max: 0}")+svc("other", `["-banner", "hi"]`))
		openSessions(t, h, "one", 1)
		if got := expectClosed(t, h.dial("one")); len(got) != 0 {
			t.Fatalf("second session of a service capped at 1 got %q", got)
		}
		h.waitLog("session end", "service=one", "outcome=queue_full")
		openSessions(t, h, "other", 2) // the cap is the service's, not the daemon's
	})
	t.Run("global", func(t *testing.T) {
		h := start(t, svc("a", `["-banner", "hi"]`, "queue: {max: 0}")+svc("b", `["-banner", "hi"]`, "queue: {max: 0}"), opts{top: "limits: {max_sessions: 1}\n"})
		openSessions(t, h, "a", 1)
		if got := expectClosed(t, h.dial("b")); len(got) != 0 {
			t.Fatalf("a session past max_sessions got %q", got)
		}
		h.waitLog("session end", "service=b", "outcome=queue_full")
	})
}
