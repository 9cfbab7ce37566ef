package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// banner opens a session and returns its container's host name.
func banner(t *testing.T, h *harness, service string) (net.Conn, string) {
	t.Helper()
	c := h.dial(service)
	return c, readLine(t, c, bufio.NewReader(c))
}

func ids(t *testing.T, h *harness) map[string]bool {
	out := map[string]bool{}
	for _, m := range dockertest.Owned(t, h.d, h.node) {
		out[m.ID[:12]] = true
	}
	return out
}

// A session served from the warm pool gets a container started before it
// connected; the pool then refills.
func TestPoolHitAndRefill(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "%h"]`, "pool: {min: 1}"))
	h.waitLog("pool: container ready")
	before := ids(t, h)
	if len(before) != 1 {
		t.Fatalf("%d containers before any client; want the 1 pooled", len(before))
	}
	_, host := banner(t, h, "echo")
	if !before[host] {
		t.Fatalf("served by %s, not by the pooled container %v: a container was started for it", host, before)
	}
	dockertest.Eventually(t, 30*time.Second, "pool not refilled", func() bool {
		return len(h.logs.Lines("pool: container ready")) == 2 && len(ids(t, h)) == 2
	})
}

func TestPoolReplacesAKilledContainer(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "%h"]`, "pool: {min: 1}"))
	h.waitLog("pool: container ready")
	var victim string
	for id := range ids(t, h) {
		victim = id
	}
	dockertest.Docker(t, "kill", victim)
	h.waitLog("pooled container exited; replacing it")
	dockertest.Eventually(t, 30*time.Second, "no replacement", func() bool {
		now := ids(t, h)
		return len(now) == 1 && !now[victim] && len(h.logs.Lines("pool: container ready")) == 2
	})
	if _, host := banner(t, h, "echo"); host == victim {
		t.Fatal("served by the killed container")
	}
}

// reuse: 2 — a container serves two sessions one after another, never two
// at once; the third session gets a new one.
func TestReuse(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "%h"]`, "reuse: 2", "pool: {max: 2}")) // keep both given back
	c1, a := banner(t, h, "echo")
	c2, b := banner(t, h, "echo") // while c1 is open: not shared
	if a == b {
		t.Fatal("two concurrent sessions shared a container")
	}
	c1.Close()
	c2.Close()
	dockertest.Eventually(t, 30*time.Second, "containers not given back", func() bool {
		return len(h.logs.Lines("session end", "outcome=closed")) == 2
	})
	seen := map[string]int{a: 1, b: 1}
	for i := range 2 {
		c, host := banner(t, h, "echo")
		seen[host]++
		c.Close()
		dockertest.Eventually(t, 30*time.Second, "session did not end", func() bool {
			return len(h.logs.Lines("session end")) == 3+i
		})
	}
	for host, n := range seen {
		if n > 2 {
			t.Fatalf("container %s served %d sessions; reuse is 2", host, n)
		}
	}
	if len(h.logs.Lines("session end", "from=pool")) != 2 {
		t.Fatalf("want 2 sessions on given-back containers:\n%s", strings.Join(h.logs.Lines("session end"), "\n"))
	}
	c, host := banner(t, h, "echo")
	defer c.Close()
	if seen[host] != 0 {
		t.Fatalf("the fifth session got %s, which served %d already; want a new container", host, seen[host])
	}
}

// Shared mode: many concurrent clients on one container, started once for
// all of them; it stops when no connection has been open for idle_stop.
func TestSharedMode(t *testing.T) {
	h := start(t, svc("shared", `["-banner", "%h", "-delay", "500ms"]`, "mode: shared", "shared: {replicas: 1, idle_stop: 700ms}"))
	var wg sync.WaitGroup
	hosts := make(chan string, 12)
	for range 12 {
		wg.Go(func() {
			c, host := banner(t, h, "shared")
			fmt.Fprintln(c, "ping")
			if got := readLine(t, c, bufio.NewReader(c)); got != "ping" {
				t.Errorf("got %q", got)
			}
			hosts <- host
			c.Close()
		})
	}
	wg.Wait()
	close(hosts)
	first := <-hosts
	for h := range hosts {
		if h != first {
			t.Fatalf("sessions on %s and %s; want one shared container", first, h)
		}
	}
	if n := len(h.logs.Lines("shared: container ready")); n != 1 {
		t.Fatalf("%d containers started for 12 clients; want 1", n)
	}
	h.waitLog("shared: container idle; stopping it")
	h.waitNoContainers()
	_, again := banner(t, h, "shared") // scaled to zero, it starts again
	if again == first {
		t.Fatal("served by the stopped container")
	}
}

// Shared mode with a per-container cap spreads over replicas. (The queue
// timeout leaves room for a replica's start on a daemon busy with other
// packages' tests: a client that waits for it is no refusal.)
func TestSharedReplicas(t *testing.T) {
	h := start(t, svc("shared", `["-banner", "%h"]`, "mode: shared", "shared: {replicas: 2, max_sessions_per_container: 2}", "queue: {timeout: 5s, reject_message: full}"))
	seen := map[string]int{}
	for range 4 {
		_, host := banner(t, h, "shared")
		seen[host]++
	}
	if len(seen) != 2 {
		t.Fatalf("got %v; want 2 containers with 2 sessions each", seen)
	}
	if got := expectClosed(t, h.dial("shared")); string(got) != "full\n" {
		t.Fatalf("fifth client got %q; want refused after the queue timeout", got)
	}
}

// A reload to a new image while a session is open: that session goes on
// on its container, new sessions get the new image, and the old container
// is removed once its session ends.
func TestReloadToNewImage(t *testing.T) {
	tag := "ganger-echo:v2-" + randHex()
	dockertest.Docker(t, "tag", dockertest.Image, tag)
	t.Cleanup(func() { exec.Command("docker", "rmi", tag).Run() })
	h := start(t, svc("echo", `["-banner", "v1 %h"]`))
	old, v1 := banner(t, h, "echo")
	if !strings.HasPrefix(v1, "v1 ") {
		t.Fatalf("got %q", v1)
	}
	reload(t, h, strings.Replace(svc("echo", `["-banner", "v2 %h"]`), dockertest.Image, tag, 1))
	_, v2 := banner(t, h, "echo")
	if !strings.HasPrefix(v2, "v2 ") {
		t.Fatalf("new session got %q; want the new configuration", v2)
	}
	fmt.Fprintln(old, "still v1")
	if got := readLine(t, old, bufio.NewReader(old)); got != "still v1" {
		t.Fatalf("old session broken by the reload: %q", got)
	}
	oldID := strings.TrimPrefix(v1, "v1 ")
	if !ids(t, h)[oldID] {
		t.Fatal("the old container was removed under its session")
	}
	old.Close()
	dockertest.Eventually(t, 30*time.Second, "old container not removed after its session", func() bool {
		return !ids(t, h)[oldID]
	})
}

// Clients connecting in a loop through reloads are never refused; a reload
// that adds a service starts it and one that drops a service drains it.
func TestReloadRefusesNoConnection(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`, "pool: {min: 2}"))
	addr := h.srv.Addr("echo").String()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused, served int
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				refused++
				continue
			}
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				served++
			}
			c.Close()
		}
	})
	for i := range 3 {
		reload(t, h, svc("echo", fmt.Sprintf(`["-banner", "hi", "-listen", ":7777"] # %d`, i), "pool: {min: 2}")+svc("extra", `["-banner", "x"]`))
		time.Sleep(300 * time.Millisecond)
	}
	reload(t, h, svc("echo", `["-banner", "hi"]`))
	close(stop)
	wg.Wait()
	if refused != 0 || served == 0 {
		t.Fatalf("%d connections refused, %d served, through 4 reloads; want none refused", refused, served)
	}
	if h.srv.Addr("extra") != nil {
		t.Fatal("a service dropped by the reload still listens")
	}
	h.waitLog("reload: retired service drained", "service=extra")
}

func reload(t *testing.T, h *harness, services string) {
	t.Helper()
	cfg, err := config.Parse("reload.yaml", []byte(fmt.Sprintf("node: %s\ndaemons:\n  - {name: local, host: unix:///var/run/docker.sock}\nservices:\n%s", h.node, services)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.srv.Reload(ctx, cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
}
