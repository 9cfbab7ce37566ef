package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/discovery"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
	"github.com/ganger-dev/ganger/internal/server"
	"github.com/ganger-dev/ganger/internal/view"
)

// host returns the node's view of one host, if it lists it.
func host(h *harness, name string) (view.Host, bool) {
	for _, v := range h.srv.Hosts() {
		if v.Name == name {
			return v, true
		}
	}
	return view.Host{}, false
}

// registerHost registers the local daemon under name, as an agent would.
func registerHost(t *testing.T, c *discovery.Client, name string) *discovery.Registration {
	t.Helper()
	v, _ := json.Marshal(discovery.Host{Name: name, ID: "agent-" + name, Docker: config.DaemonFromEnv().Host, Advertise: "127.0.0.1",
		MaxContainers: 100000, RegisteredAt: time.Now().UTC()})
	r, err := c.Register(context.Background(), "hosts", name, "agent-"+name, func() []byte { return v }, 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A node with discovery and no daemons of its own: a host registered in
// etcd joins and takes sessions; its key gone past lost_grace, it takes no
// new one while an open session goes on; empty, it leaves the fleet;
// registered again, it is used again. The node registers itself, a second
// node with its id is refused, and etcd stopping leaves it serving,
// degraded, until etcd is back.
func TestDiscoveredHosts(t *testing.T) {
	e := etcdtest.New(t)
	top := "discovery:\n  etcd: {endpoints: [" + e.Endpoint() + "], lost_grace: 1s, ttl: 2s}\n"
	h := start(t, svc("echo", `["-banner", "hi"]`, "queue: {max: 5, timeout: 1s, reject_message: none}"), opts{top: top, daemons: "  []\n"})
	if hs := h.srv.Hosts(); len(hs) != 0 {
		t.Fatalf("hosts before any registered: %+v", hs)
	}
	c, err := discovery.Connect(context.Background(), discovery.Options{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nodes, err := c.Nodes(context.Background())
	if err != nil || nodes[h.node].Name != h.node {
		t.Fatalf("nodes in etcd: %v, %v; want this node registered", nodes, err)
	}

	reg := registerHost(t, c, "h1")
	dockertest.Eventually(t, 30*time.Second, "h1 never up", func() bool { v, ok := host(h, "h1"); return ok && v.State == "up" && v.Source == "etcd" })
	open := h.dial("echo")
	r := bufio.NewReader(open)
	if got := readLine(t, open, r); got != "hi" {
		t.Fatalf("banner %q", got)
	}

	reg.Revoke(context.Background())
	dockertest.Eventually(t, 30*time.Second, "h1 never lost", func() bool { v, _ := host(h, "h1"); return v.State == "lost" })
	open.Write([]byte("still here\n"))
	if got := readLine(t, open, r); got != "still here" {
		t.Fatalf("the open session on a lost host: %q", got)
	}
	refused := h.dial("echo")
	if got := expectClosed(t, refused); string(got) != "none\n" {
		t.Fatalf("a new session with the only host lost: %q; want the queue's refusal", got)
	}

	// Registered again (an agent stopped past its TTL, then continued):
	// the host is used again, its live session untouched.
	reg = registerHost(t, c, "h1")
	dockertest.Eventually(t, 30*time.Second, "h1 never back from lost", func() bool { v, _ := host(h, "h1"); return v.State == "up" })
	open.Write([]byte("after the return\n"))
	if got := readLine(t, open, r); got != "after the return" {
		t.Fatalf("the open session once its host returned: %q", got)
	}
	reg.Revoke(context.Background())
	dockertest.Eventually(t, 30*time.Second, "h1 never lost again", func() bool { v, _ := host(h, "h1"); return v.State == "lost" })
	open.Close()
	dockertest.Eventually(t, 30*time.Second, "the lost host, empty, never left the fleet", func() bool { _, ok := host(h, "h1"); return !ok })

	registerHost(t, c, "h1")
	dockertest.Eventually(t, 30*time.Second, "h1 never back", func() bool { v, ok := host(h, "h1"); return ok && v.State == "up" })
	again := h.dial("echo")
	if got := readLine(t, again, bufio.NewReader(again)); got != "hi" {
		t.Fatalf("banner after h1 came back: %q", got)
	}
	again.Close()

	// The same node id cannot start twice.
	cfg, _ := config.Parse("t.yaml", []byte(top+"node: "+h.node+"\ndaemons: []\nservices:\n"+svc("echo", `[]`)))
	if err := startCfgErr(t, cfg); err == nil || !strings.Contains(err.Error(), "is already running") {
		t.Fatalf("a second node with this id: %v; want refused", err)
	}

	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	dockertest.Eventually(t, 30*time.Second, "not degraded with etcd down", func() bool { return len(h.srv.Degraded()) > 0 })
	if v, ok := host(h, "h1"); !ok || v.State != "up" {
		t.Fatalf("h1 with etcd down: %+v; want kept, up", v)
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	dockertest.Eventually(t, 60*time.Second, "still degraded with etcd back", func() bool { return len(h.srv.Degraded()) == 0 })
}

// startCfgErr runs a node's start-up with cfg and returns its error; a
// node that starts is stopped at once.
func startCfgErr(t *testing.T, cfg *config.Config) error {
	t.Helper()
	srv, err := server.NewDocker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Start(context.Background())
}
