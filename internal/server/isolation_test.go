package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// shell is one session of a service of the demo image in its command mode:
// a stand-in for a player's shell.
type shell struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func openShell(t *testing.T, h *harness, service string) *shell {
	t.Helper()
	c := h.dial(service)
	s := &shell{t: t, c: c, r: bufio.NewReader(c)}
	readLine(t, c, s.r) // the banner: the container is ready
	return s
}

func (s *shell) run(cmd string) string {
	s.t.Helper()
	fmt.Fprintln(s.c, cmd)
	return readLine(s.t, s.c, s.r)
}

func (s *shell) ip() string {
	s.t.Helper()
	ips := strings.Fields(s.run("ip"))
	if len(ips) != 1 {
		s.t.Fatalf("container addresses %v; want one", ips)
	}
	return ips[0]
}

// On the isolated network (the default) one player's container cannot
// reach another's, either way; on Docker's default bridge, with the stock
// inter-container rule, it can: the probe works.
func TestPlayersCannotReachEachOther(t *testing.T) {
	h := start(t, svc("shell", `["-commands", "-banner", "%h"]`)+svc("open", `["-commands", "-banner", "%h"]`, "network: bridge"))
	a, b := openShell(t, h, "shell"), openShell(t, h, "shell")
	ipA, ipB := a.ip(), b.ip()
	if got := a.run("dial " + ipB + ":7777"); got == "connected" {
		t.Fatalf("player A reached player B's container at %s", ipB)
	}
	if got := b.run("dial " + ipA + ":7777"); got == "connected" {
		t.Fatalf("player B reached player A's container at %s", ipA)
	}
	if got := a.run("route"); got != "default" {
		t.Errorf("egress allow: %q; want a default route", got)
	}
	c, d := openShell(t, h, "open"), openShell(t, h, "open")
	if got := c.run("dial " + d.ip() + ":7777"); got != "connected" {
		t.Fatalf("on Docker's bridge the probe got %q; want connected (else the isolation check proves nothing)", got)
	}
}

// Containers that must talk (an instance's sidecars, a cluster's members)
// get a network of their own, where they reach each other and nothing else.
func TestGroupNetworkConnectsItsMembers(t *testing.T) {
	d := dockertest.Daemon(t)
	name := "ganger-test-group-" + randHex()
	ctx := context.Background()
	if err := d.EnsureNetwork(ctx, ganger.NetworkSpec{Name: name, ICC: true, Labels: map[string]string{ganger.LabelManaged: "true"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.RemoveNetwork(context.Background(), name) }) // after the node's shutdown
	h := start(t, svc("group", `["-commands", "-banner", "%h"]`, "network: "+name)+svc("shell", `["-commands", "-banner", "%h"]`))
	a, b := openShell(t, h, "group"), openShell(t, h, "group")
	if got := a.run("dial " + b.ip() + ":7777"); got != "connected" {
		t.Fatalf("a member could not reach the other on their network: %q", got)
	}
	outsider := openShell(t, h, "shell")
	if got := outsider.run("dial " + a.ip() + ":7777"); got == "connected" {
		t.Fatal("a container on the isolated network reached a group's member")
	}
}

// egress: none leaves a container no way out of the host, while Ganger
// still reaches it: a listener "outside" (a network namespace of the
// test's own, reached through the host's forwarding as another network
// would be; no traffic leaves the machine) is reached from an isolated
// container with egress allowed, and not from one with egress none.
func TestEgressNone(t *testing.T) {
	out := dockertest.StartOutside(t, 1, "../../bin/ganger-echo")
	h := start(t, svc("sealed", `["-commands", "-banner", "%h"]`, "egress: none")+svc("open", `["-commands", "-banner", "%h"]`))
	if got := openShell(t, h, "open").run("dial " + out.Addr); got != "connected" {
		t.Fatalf("egress allow could not reach the outside listener: %q (else the check proves nothing)", got)
	}
	s := openShell(t, h, "sealed")
	if got := s.run("dial " + out.Addr); got == "connected" {
		t.Fatal("egress none reached the outside listener")
	}
	if got := s.run("hello"); got != "hello" {
		t.Fatalf("echo through Ganger: %q", got)
	}
}

// Silent connections cannot squat on a service's containers: with room for
// two, two clients that connect and say nothing are closed after
// timeouts.first_byte, and a real client that came after them is served.
func TestSilentClientsCannotSquat(t *testing.T) {
	h := start(t, svc("capped", `["-banner", "hi"]`, "max_containers: 2", "timeouts: {first_byte: 1s}", "queue: {max: 10, timeout: 30s}"))
	for range 2 {
		s := h.dial("capped")
		readLine(t, s, bufio.NewReader(s)) // its container is up, and it says nothing
	}
	real := h.dial("capped")
	r := bufio.NewReader(real)
	if got := readLine(t, real, r); got != "hi" { // served once a squatter is closed
		t.Fatalf("got %q", got)
	}
	fmt.Fprintln(real, "hello")
	if got := readLine(t, real, r); got != "hello" {
		t.Fatalf("echo: %q", got)
	}
	if n := len(h.logs.Lines("session end", "outcome=silent")); n < 1 {
		t.Fatalf("%d sessions ended silent; want the squatters closed", n)
	}
}

// With start: data, connections that close, reset or say nothing cost no
// Docker call: the daemon's own event log shows no container created for
// them; a client that speaks is served.
func TestStartDataCreatesNothingForSilence(t *testing.T) {
	h := start(t, svc("lazy", `[]`, "start: data", "ready: {first_byte: 300ms}"))
	since := time.Now()
	for i := range 20 {
		c := h.dial("lazy")
		switch i % 3 {
		case 0:
			c.Close()
		case 1:
			c.SetLinger(0)
			c.Close()
		default:
			expectClosed(t, c) // says nothing: closed after ready.first_byte
		}
	}
	h.waitLog("session end", "outcome=silent")
	if n := createdSince(t, h, since); n != 0 {
		t.Fatalf("%d containers created for clients that sent nothing; want 0", n)
	}
	c := h.dial("lazy")
	fmt.Fprintln(c, "hello")
	if got := readLine(t, c, bufio.NewReader(c)); got != "hello" {
		t.Fatalf("got %q", got)
	}
	if n := createdSince(t, h, since); n != 1 {
		t.Fatalf("%d containers created; want 1, for the client that spoke", n)
	}
}

// createdSince counts the node's containers the daemon says it created
// since t0, from its event log.
func createdSince(t *testing.T, h *harness, t0 time.Time) int {
	t.Helper()
	out, err := exec.Command("docker", "events", "--since", t0.Format(time.RFC3339Nano), "--until", time.Now().Format(time.RFC3339Nano),
		"--filter", "event=create", "--filter", "label=ganger.owner="+h.node, "--format", "{{.ID}}").Output()
	if err != nil {
		t.Fatalf("docker events: %v", err)
	}
	return len(strings.Fields(string(out)))
}
