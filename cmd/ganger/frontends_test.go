package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
	"github.com/ganger-dev/ganger/internal/store/pgtest"
)

// haproxyBinary is Debian's haproxy (make test-deps installs it).
const haproxyBinary = "/usr/sbin/haproxy"

// Two front-ends behind haproxy speaking PROXY protocol, sharing etcd
// (where an agent registers the one Docker host) and PostgreSQL: both see
// the host; clients through haproxy reach both, each node seeing the
// client's own address; twenty concurrent instance creates by one owner
// over both APIs give per_owner instances; node a killed with -9 while one
// of its sessions is open, node b serves every new client and, reconciling
// all the while, leaves a's container alone; a started again sweeps it and
// serves again.
func TestTwoFrontEndsBehindHAProxy(t *testing.T) {
	d := dockertest.Daemon(t)
	if err := d.EnsureImage(context.Background(), redisImage, "never"); err != nil {
		t.Fatalf("%s: %v (make test builds it: make redis-image)", redisImage, err)
	}
	e := etcdtest.New(t)
	dsn := pgtest.DSN(t)
	a := &frontEnd{node: dockertest.Node(t, d), echo: freeAddr(t)}
	b := &frontEnd{node: dockertest.Node(t, d), echo: freeAddr(t)}
	host := "fe-" + a.node // unique per test
	startAgent(t, e, host, t.TempDir(), "--max-containers", "100")
	for _, f := range []*frontEnd{a, b} {
		f.config = writeFrontEndConfig(t, f.node, e.Endpoint(), dsn, f.echo)
		f.start(t)
	}
	for _, f := range []*frontEnd{a, b} {
		f.waitHost(t, host)
	}
	front := freeAddr(t)
	hp := startHAProxy(t, front, map[string]string{"a": a.echo, "b": b.echo})
	hp.waitStatus(t, "a", "UP")
	hp.waitStatus(t, "b", "UP")

	// Both serve through haproxy, each seeing the real client's address
	// (its port is the client's, not haproxy's).
	held := holdOnEach(t, front, a, b)

	// Each sees the other's container on the shared host (placement
	// counts it): /v1/hosts says so.
	for _, f := range []*frontEnd{a, b} {
		dockertest.Eventually(t, 30*time.Second, "node "+f.node+" never counted the other node's container", func() bool {
			var hosts []struct {
				Others int `json:"other_nodes_containers"`
			}
			call(t, "GET", f.api+"/v1/hosts", token, &hosts)
			return len(hosts) == 1 && hosts[0].Others >= 1
		})
	}

	quotaAcrossFrontEnds(t, a.api, b.api)

	// kill -9 a while its session is open: its container stays, labelled
	// with a's id.
	leftover := held[a]
	if n := sessionContainers(t, a.node, leftover); n != 1 {
		t.Fatalf("a's open session %s has %d containers; want 1", leftover, n)
	}
	a.p.cmd.Process.Kill()
	a.p.wait()
	hp.waitStatus(t, "a", "DOWN")
	for range 3 {
		c, _ := openSession(t, front)
		whoServed(t, c.LocalAddr().String(), b)
		c.Close()
	}
	// b reconciles (every 200ms) and removes only its own orphans: each
	// planted orphan of b's is gone after two of b's passes, a's leftover
	// stays throughout.
	for i := range 2 {
		plantOrphan(t, b, fmt.Sprintf("fe-orphan-%s-%d", b.node, i))
		if n := sessionContainers(t, a.node, leftover); n != 1 {
			t.Fatalf("after b's reconcile passes, a's container of session %s: %d; want 1 (b must not remove it)", leftover, n)
		}
	}

	// a again, same config: it sweeps its leftover and serves again.
	a.start(t)
	a.waitHost(t, host)
	dockertest.Eventually(t, time.Minute, "restarted a never swept its leftover container", func() bool {
		return sessionContainers(t, a.node, leftover) == 0
	})
	hp.waitStatus(t, "a", "UP")
	reach(t, front, a, a, b)
}

// frontEnd is one `ganger serve` of the pair. Its echo listener has a
// fixed address, which haproxy's backend names and a restart keeps.
type frontEnd struct {
	node, config, echo string
	p                  *proc
	api                string
}

// writeFrontEndConfig writes the config of a node with no daemon of its
// own (its hosts come from etcd), the shared store, an echo service that
// takes PROXY headers from 127.0.0.1 and a public Redis instance service.
func writeFrontEndConfig(t *testing.T, node, etcd, dsn, echo string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	y := fmt.Sprintf(`node: %s
reconcile: 200ms
api: {listen: 127.0.0.1:0, token: %s}
daemons: []
discovery:
  etcd: {endpoints: [%s], prefix: %s, lost_grace: 2s, ttl: 2s}
store: {driver: postgres, dsn: %q}
services:
  - name: echo
    listen: %s
    image: %s
    port: 7777
    cmd: ["-banner", "hi"]
    proxy_protocol: true
    trusted_proxies: [127.0.0.1/32]
    timeouts: {drain: 1s}
  - name: redis
    mode: instance
    image: %s
    ports: [6379]
    cmd: ["--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/tmp", "--requirepass", "{{.Secrets.password}}"]
    instance:
      public: true
      ttl: 1m
      per_owner: 2
      create_rate: {rate: 100, burst: 100}
      secrets: {password: 24}
      connect: "redis://:{{.Secrets.password}}@{{.Host}}:{{.Port 6379}}"
`, node, token, etcd, agentPrefix, dsn, echo, dockertest.Image, redisImage)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs the node (again, after a kill) and waits for its API and its
// echo listener.
func (f *frontEnd) start(t *testing.T) {
	t.Helper()
	f.p, f.api = startInstanceProc(t, f.config)
	if got := f.p.addr(); got != f.echo {
		t.Fatalf("node %s listens for echo at %s; want %s", f.node, got, f.echo)
	}
}

// waitHost waits until the node lists exactly the one host, found in
// etcd, up.
func (f *frontEnd) waitHost(t *testing.T, host string) {
	t.Helper()
	var hosts []struct{ Name, Source, State string }
	dockertest.Eventually(t, time.Minute, "node "+f.node+" never listed host "+host+" up", func() bool {
		hosts = nil
		call(t, "GET", f.api+"/v1/hosts", token, &hosts)
		return len(hosts) == 1 && hosts[0].Name == host && hosts[0].Source == "etcd" && hosts[0].State == "up"
	})
	out, err := ctlRun(t, "--api", f.api, "--token", token, "hosts")
	if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(host)+`\s+etcd\s+up\s+\d+/\d+\s`).MatchString(out) {
		t.Fatalf("ctl hosts on %s: %v\n%s", f.node, err, out)
	}
}

// holdOnEach opens sessions through haproxy at front until each node
// holds one, and returns their ids by node; the sessions stay open.
func holdOnEach(t *testing.T, front string, nodes ...*frontEnd) map[*frontEnd]string {
	t.Helper()
	held := map[*frontEnd]string{}
	for i := 0; len(held) < len(nodes); i++ {
		if i == 10 {
			t.Fatalf("10 clients through haproxy reached %d of the %d nodes", len(held), len(nodes))
		}
		c, _ := openSession(t, front)
		f, session := whoServed(t, c.LocalAddr().String(), nodes...)
		if _, ok := held[f]; ok {
			c.Close()
			continue
		}
		held[f] = session
	}
	return held
}

// reach opens sessions through haproxy at front, one at a time, until one
// is served by want.
func reach(t *testing.T, front string, want *frontEnd, nodes ...*frontEnd) {
	t.Helper()
	for range 10 {
		c, _ := openSession(t, front)
		f, _ := whoServed(t, c.LocalAddr().String(), nodes...)
		c.Close()
		if f == want {
			return
		}
	}
	t.Fatalf("10 clients through haproxy never reached node %s", want.node)
}

// whoServed waits for the node with a live session of client (its address
// as the PROXY header gave it) and returns it and the session's id.
func whoServed(t *testing.T, client string, nodes ...*frontEnd) (*frontEnd, string) {
	t.Helper()
	var f *frontEnd
	var session string
	dockertest.Eventually(t, time.Minute, "no node has a live session of client "+client, func() bool {
		for _, n := range nodes {
			var list struct{ Live []struct{ ID, Client string } }
			call(t, "GET", n.api+"/v1/sessions", token, &list)
			for _, s := range list.Live {
				if s.Client == client {
					f, session = n, s.ID
					return true
				}
			}
		}
		return false
	})
	return f, session
}

// sessionContainers counts the containers of node's session, running or
// not.
func sessionContainers(t *testing.T, node, session string) int {
	t.Helper()
	out := dockertest.Docker(t, "ps", "-aq", "--filter", "label="+ganger.LabelOwner+"="+node,
		"--filter", "label="+ganger.LabelSession+"="+session)
	return len(strings.Fields(out))
}

// plantOrphan makes a container labelled as f's that no session of f's
// owns, and waits for f's reconcile to remove it: that takes two passes.
func plantOrphan(t *testing.T, f *frontEnd, name string) {
	t.Helper()
	dockertest.Docker(t, "run", "-d", "--name", name, "--label", ganger.LabelManaged+"=true",
		"--label", ganger.LabelOwner+"="+f.node, "--label", ganger.LabelService+"=echo", dockertest.Image)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	dockertest.Eventually(t, time.Minute, "node "+f.node+" never reconciled its orphan "+name, func() bool {
		return strings.TrimSpace(dockertest.Docker(t, "ps", "-aq", "--filter", "name=^"+name+"$")) == ""
	})
}

// quotaAcrossFrontEnds makes twenty instances at once by one owner (this
// address), half through each API: per_owner (2) holds across both. Each
// made is deleted through the other API, its container with it.
func quotaAcrossFrontEnds(t *testing.T, apis ...string) {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	made := map[string]instanceJSON{} // by the API that made it
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			api := apis[i%2]
			var got instanceJSON
			code := call(t, "POST", api+"/v1/services/redis/instances", "", &got)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == 201 {
				made[api+" "+got.ID] = got
			}
		})
	}
	wg.Wait()
	if codes[201] != 2 || codes[429] != 18 {
		t.Fatalf("20 concurrent creates over two front-ends: %v; want 2 created and 18 refused", codes)
	}
	for key, in := range made {
		other := apis[0]
		if strings.HasPrefix(key, other+" ") {
			other = apis[1]
		}
		if code := call(t, "DELETE", other+"/v1/instances/"+in.ID, in.OwnerToken, nil); code != 200 {
			t.Fatalf("delete %s through the other front-end: %d", in.ID, code)
		}
		if out := dockertest.Docker(t, "ps", "-aq", "--filter", "label="+ganger.LabelInstance+"="+in.ID); strings.TrimSpace(out) != "" {
			t.Fatalf("deleted instance %s's container is still there", in.ID)
		}
	}
}

// freeAddr returns a 127.0.0.1 address with a port free now, for a
// listener whose address must be known before it starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// haproxy is Debian's haproxy in the foreground, in a session of its own,
// killed at the test's end (and by the kernel if the test binary dies).
type haproxy struct {
	sock string // its admin socket
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
	free chan struct{} // lets go of the OS thread that started it
}

// startHAProxy runs haproxy with a TCP frontend at front balancing over
// servers (name → address), each sent a PROXY v1 header and checked every
// 200ms.
func startHAProxy(t *testing.T, front string, servers map[string]string) *haproxy {
	t.Helper()
	dir := t.TempDir()
	h := &haproxy{sock: filepath.Join(dir, "admin.sock"), done: make(chan struct{}), free: make(chan struct{})}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(h.sock, front, servers)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	h.cmd = exec.Command(haproxyBinary, "-db", "-f", cfg)
	h.cmd.Stdout, h.cmd.Stderr = out, out // stdin: /dev/null
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.launch(); err != nil {
		t.Fatalf("start haproxy (make test-deps installs it): %v", err)
	}
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		close(h.free)
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("haproxy log:\n%s", b)
		}
	})
	return h
}

func haproxyConfig(sock, front string, servers map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    retries 3
    option redispatch
frontend front
    bind %s
    default_backend echo
backend echo
    balance roundrobin
`, sock, front)
	for name, addr := range servers {
		fmt.Fprintf(&b, "    server %s %s send-proxy check inter 200ms fall 2 rise 1\n", name, addr)
	}
	return b.String()
}

// launch starts haproxy from a locked OS thread kept until it is killed:
// the parent-death signal follows the thread that forked.
func (h *haproxy) launch() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := h.cmd.Start()
		started <- err
		if err == nil {
			<-h.free
		}
	}()
	if err := <-started; err != nil {
		return err
	}
	go func() {
		h.cmd.Wait()
		close(h.done)
	}()
	return nil
}

// status is what haproxy says of a server of the backend (UP, DOWN, UP
// 1/2 while going down...), "" if it does not answer yet.
func (h *haproxy) status(t *testing.T, server string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", h.sock, 5*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "show stat")
	r := csv.NewReader(bufio.NewReader(c))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return ""
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	for _, row := range rows[1:] {
		if len(row) > col["status"] && row[col["pxname"]] == "echo" && row[col["svname"]] == server {
			return row[col["status"]]
		}
	}
	return ""
}

// waitStatus waits until haproxy's checks say want of server.
func (h *haproxy) waitStatus(t *testing.T, server, want string) {
	t.Helper()
	select {
	case <-h.done:
		t.Fatalf("haproxy exited: %v", h.cmd.ProcessState)
	default:
	}
	dockertest.Eventually(t, time.Minute, "haproxy never said "+server+" is "+want, func() bool {
		return h.status(t, server) == want
	})
}
