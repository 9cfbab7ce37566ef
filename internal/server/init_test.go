package server_test

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

// initTop is the top-level YAML that points a node at ganger-init.
func initTop(in ganger.Init) string { return fmt.Sprintf("init_binary: %q\n", in.Binary) }

// sessionContainer is the one container of the node's service, while a
// session holds it.
func (h *harness) sessionContainer(service string) ganger.Managed {
	h.t.Helper()
	var found []ganger.Managed
	for _, m := range dockertest.Owned(h.t, h.d, h.node) {
		if m.Labels[ganger.LabelService] == service {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		h.t.Fatalf("containers of %s: %+v; want one", service, found)
	}
	return found[0]
}

// processes lists the commands a container runs, as the host sees them
// (docker top), PID 1 first.
func processes(t *testing.T, id string) []string {
	t.Helper()
	out := dockertest.Docker(t, "top", id, "-o", "pid,args")
	var cmds []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if _, args, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			cmds = append(cmds, strings.TrimSpace(args))
		}
	}
	return cmds
}

// A per-connection service with init: ganger serves a client from an image
// that holds no ganger-init (ganger-echo is FROM scratch): the
// container's PID 1 is ganger-init, from its volume, running the image's
// entrypoint with the service's cmd, as nobody, with every capability
// dropped.
func TestInitGangerServes(t *testing.T) {
	dockertest.Daemon(t) // skipped without an engine, before the build
	in := fleettest.BuildInit(t, false)
	h := start(t, svc("echo", `["-banner", "hello under init"]`, "init: ganger"), opts{top: initTop(in)})
	c := h.dial("echo")
	r := bufio.NewReader(c)
	if got := readLine(t, c, r); got != "hello under init" {
		t.Fatalf("banner %q", got)
	}
	fmt.Fprintln(c, "ping")
	if got := readLine(t, c, r); got != "ping" {
		t.Fatalf("echo %q", got)
	}
	id := h.sessionContainer("echo").ID
	if got := strings.TrimSpace(dockertest.Docker(t, "inspect", "-f", "{{.Path}} {{.Config.User}} {{.HostConfig.CapDrop}}", id)); got != "/.ganger-init/ganger-init 65534:65534 [ALL]" {
		t.Errorf("container runs %q; want ganger-init as nobody, capabilities dropped", got)
	}
	procs := processes(t, id)
	if len(procs) != 2 || procs[0] != "/.ganger-init/ganger-init -- /ganger-echo -banner hello under init" || procs[1] != "/ganger-echo -banner hello under init" {
		t.Errorf("processes %q; want ganger-init, and the echo server its child", procs)
	}
	c.Close()
	h.waitNoContainers()
}

// With init_config, one container runs several processes: ganger-init
// runs both echo servers; the session reaches the first, and the second
// answers on its own port.
func TestInitConfigRunsSeveralProcesses(t *testing.T) {
	dockertest.Daemon(t)
	in := fleettest.BuildInit(t, false)
	service := fmt.Sprintf(`  - name: two
    listen: 127.0.0.1:0
    image: %s
    port: 7777
    init: ganger
    init_config:
      processes:
        first: {cmd: [/ganger-echo, -listen, ":7777", -banner, one], main: true}
        second: {cmd: [/ganger-echo, -listen, ":7778", -banner, two]}
`, dockertest.Image)
	h := start(t, service, opts{top: initTop(in)})
	c := h.dial("two")
	if got := readLine(t, c, bufio.NewReader(c)); got != "one" {
		t.Fatalf("banner %q; want one", got)
	}
	id := h.sessionContainer("two").ID
	ip := strings.TrimSpace(dockertest.Docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id))
	other, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "7778"), 5*time.Second)
	if err != nil {
		t.Fatalf("the second process: %v", err)
	}
	defer other.Close()
	if got := readLine(t, other, bufio.NewReader(other)); got != "two" {
		t.Fatalf("second process's banner %q; want two", got)
	}
	procs := strings.Join(processes(t, id), "\n")
	if !strings.HasPrefix(procs, "/.ganger-init/ganger-init --config-env") || strings.Count(procs, "/ganger-echo -listen") != 2 {
		t.Errorf("processes:\n%s\nwant ganger-init and both echo servers", procs)
	}
	c.Close()
	other.Close()
	h.waitNoContainers()
}

// A daemon that joins is given ganger-init once: the first node's start
// makes its volume, a second node's start on the same daemon finds it and
// makes nothing. The binary is the test's own, so the volume is new.
func TestInitProvidedOnceAcrossNodes(t *testing.T) {
	dockertest.Daemon(t)
	in := fleettest.BuildInit(t, true)
	t.Cleanup(func() {
		for _, args := range [][]string{{"volume", "rm", "-f", in.Volume()}, {"image", "rm", "-f", in.Image()}} {
			if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
				t.Errorf("docker %v: %v: %s", args, err, out)
			}
		}
	})
	created := func() string {
		return strings.TrimSpace(dockertest.Docker(t, "volume", "inspect", "-f", "{{.CreatedAt}} {{index .Labels \""+ganger.LabelInit+"\"}}", in.Volume()))
	}
	serve := func() *harness {
		h := start(t, svc("echo", `["-banner", "hi"]`, "init: ganger"), opts{top: initTop(in)})
		c := h.dial("echo")
		if got := readLine(t, c, bufio.NewReader(c)); got != "hi" {
			t.Fatalf("banner %q", got)
		}
		c.Close()
		h.waitNoContainers()
		return h
	}
	first := serve()
	made := created()
	if !strings.HasSuffix(made, " "+in.Digest) {
		t.Fatalf("volume %s: %q; want it labelled with the digest", in.Volume(), made)
	}
	first.shutdown()
	serve()
	if again := created(); again != made {
		t.Fatalf("volume made again by the second node: created %q, then %q", made, again)
	}
}
