package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/server"
)

// harness is one in-process Ganger node on the real Docker Engine.
type harness struct {
	t      *testing.T
	d      *docker.Daemon
	node   string
	srv    *server.Server
	logs   *dockertest.Logs
	stop   context.CancelFunc
	served chan error
}

// opts adjust a node. By default it has one daemon, the local one, with
// room for localRoom containers. A test that puts a cap on a daemon, or
// asserts where containers go, places on the package's extra daemons
// instead (see onExtras).
type opts struct {
	daemonHost string // if set, replaces the local daemon's address
	top        string // extra top-level YAML
	daemons    string // the daemons list's YAML, replacing the local daemon
}

// localRoom is the local daemon's max_containers. Other packages' tests
// run alongside with nodes of their own there (a storm test holds up to a
// hundred containers), and Ganger counts them against that room, as seen
// at start-up and each reconcile: with the default of 100 a node could
// start with no room at all.
const localRoom = 100000

func start(t *testing.T, services string, o ...opts) *harness {
	t.Helper()
	d := dockertest.Daemon(t)
	h := &harness{t: t, d: d, node: dockertest.Node(t, d), logs: &dockertest.Logs{}}
	noneLeftOnExtras(t, h.node) // runs after the shutdown below
	host := config.DaemonFromEnv().Host
	if len(o) > 0 && o[0].daemonHost != "" {
		host = o[0].daemonHost
	}
	top := ""
	if len(o) > 0 {
		top = o[0].top
	}
	daemons := fmt.Sprintf("  - {name: local, host: %q, max_containers: %d}\n", host, localRoom)
	if len(o) > 0 && o[0].daemons != "" {
		daemons = o[0].daemons
		// Extra daemons on this host must not make networks of their own
		// (see dockertest.Extra): services use each daemon's default bridge.
		services = strings.ReplaceAll(services, "    port: 7777\n", "    port: 7777\n    network: bridge\n")
	}
	yml := fmt.Sprintf(top+"node: %s\nlog: {level: debug}\ndaemons:\n%sservices:\n%s", h.node, daemons, services)
	cfg, err := config.Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yml, err)
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.srv, err = server.NewDocker(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.srv.Start(ctx); err != nil {
		h.srv.Close()
		t.Fatalf("start: %v\nlogs:\n%s", err, h.logs)
	}
	sctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	h.served = make(chan error, 1)
	go func() { h.served <- h.srv.Serve(sctx, context.Background()) }()
	t.Cleanup(h.shutdown)
	// Serve starts in the background; a reload before it has begun is
	// refused ("not serving").
	ready := h.srv.Ready
	if len(o) > 0 && strings.TrimSpace(o[0].daemons) == "[]" {
		ready = h.srv.Serving // no daemon yet: hosts come through discovery
	}
	dockertest.Eventually(t, 30*time.Second, "the node does not serve", ready)
	return h
}

// shutdown stops the node and waits for it; dockertest.Node's cleanup and
// noneLeftOnExtras then check that no container is left.
func (h *harness) shutdown() {
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	select {
	case err := <-h.served:
		if err != nil {
			h.t.Errorf("serve: %v", err)
		}
	case <-time.After(2 * time.Minute):
		h.t.Errorf("shutdown did not finish")
	}
	if h.t.Failed() {
		h.t.Logf("ganger logs:\n%s", h.logs)
	}
}

func (h *harness) dial(service string) *net.TCPConn {
	h.t.Helper()
	addr := h.srv.Addr(service)
	if addr == nil {
		h.t.Fatalf("no service %q", service)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// waitLog waits for a log line holding every word.
func (h *harness) waitLog(words ...string) string {
	h.t.Helper()
	var line string
	dockertest.Eventually(h.t, 30*time.Second, fmt.Sprintf("no log line with %q", words), func() bool {
		ls := h.logs.Lines(words...)
		if len(ls) > 0 {
			line = ls[0]
		}
		return len(ls) > 0
	})
	return line
}

func (h *harness) waitNoContainers() {
	h.t.Helper()
	dockertest.Eventually(h.t, 30*time.Second, "containers of this node remain", func() bool {
		return len(dockertest.Owned(h.t, h.d, h.node)) == 0
	})
}

// readLine reads one line, failing after 30s.
func readLine(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// expectClosed reads until the connection ends, failing after 30s.
func expectClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after 30s (read %q)", b)
	}
	return b
}

// svc is the YAML of one echo service on 127.0.0.1:0.
func svc(name string, cmd string, extra ...string) string {
	s := fmt.Sprintf("  - name: %s\n    listen: 127.0.0.1:0\n    image: %s\n    port: 7777\n    cmd: %s\n", name, dockertest.Image, cmd)
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// startErr runs a node's start-up with the given services and top-level
// YAML and returns its error; a node that starts is stopped at once.
func startErr(t *testing.T, services, top string) error {
	t.Helper()
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	cfg, err := config.Parse("t.yaml", []byte(top+"node: "+node+"\nservices:\n"+services))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewDocker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Start(context.Background())
}
