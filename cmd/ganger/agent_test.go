package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/discovery"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
)

const agentPrefix = "/agent-test/"

// startAgent runs `ganger agent` against e with a 2s TTL, for host name,
// its id kept in stateDir. At the test's end it is killed if still
// running.
func startAgent(t *testing.T, e *etcdtest.Etcd, name, stateDir string, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, logs: &dockertest.Logs{}, done: make(chan error, 1)}
	args := append([]string{"agent", "--etcd", e.Endpoint(), "--prefix", agentPrefix, "--name", name,
		"--docker", config.DaemonFromEnv().Host, "--advertise", "127.0.0.1", "--state-dir", stateDir,
		"--max-containers", "5", "--labels", "zone=a,disk=ssd", "--ttl", "2s"}, extra...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill() // works on a stopped process too
			<-p.done
		}
		if t.Failed() {
			t.Logf("agent %s logs:\n%s", name, p.logs)
		}
	})
	return p
}

// exited waits for the agent to exit and returns its error.
func (p *proc) exited() error {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(2 * time.Minute):
		p.t.Fatal("the agent did not exit")
		return nil
	}
}

// running says whether the process is still there.
func (p *proc) running() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

// etcdClient connects to e for reading what agents register.
func etcdClient(t *testing.T, e *etcdtest.Etcd) *discovery.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := discovery.Connect(ctx, discovery.Options{Endpoints: []string{e.Endpoint()}, Prefix: agentPrefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hostKey reads the host's key: ok is false while it is absent.
func hostKey(t *testing.T, c *discovery.Client, name string) (discovery.Host, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hosts, err := c.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := hosts[name]
	return h, ok
}

// waitHost waits until the host's key holds id.
func waitHost(t *testing.T, c *discovery.Client, name, id string) discovery.Host {
	t.Helper()
	var h discovery.Host
	dockertest.Eventually(t, time.Minute, "the agent never registered "+name, func() bool {
		var ok bool
		h, ok = hostKey(t, c, name)
		return ok && (id == "" || h.ID == id)
	})
	return h
}

func waitGone(t *testing.T, c *discovery.Client, name string) {
	t.Helper()
	dockertest.Eventually(t, time.Minute, "the key of "+name+" never went", func() bool {
		_, ok := hostKey(t, c, name)
		return !ok
	})
}

func readID(t *testing.T, stateDir string) string {
	t.Helper()
	path := filepath.Join(stateDir, "agent-id")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v; want 0600", path, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// The agent registers its host with its persistent id; kill -9: the key
// goes when the lease expires; started again, it reads the same id back.
func TestAgentRegistersAndDies(t *testing.T) {
	dockertest.Daemon(t)
	e := etcdtest.New(t)
	c := etcdClient(t, e)
	state := filepath.Join(t.TempDir(), "state")
	p := startAgent(t, e, "h1", state)
	h := waitHost(t, c, "h1", "")
	id := readID(t, state)
	if h.ID != id || h.Docker != config.DaemonFromEnv().Host || h.Advertise != "127.0.0.1" || h.MaxContainers != 5 ||
		h.Labels["zone"] != "a" || h.Labels["disk"] != "ssd" || h.Draining || h.RegisteredAt.IsZero() {
		t.Fatalf("registered %+v (agent id %s)", h, id)
	}
	p.cmd.Process.Kill()
	p.exited()
	// Started again at once (the old key still there): same id, it takes
	// its key over.
	p = startAgent(t, e, "h1", state)
	dockertest.Eventually(t, time.Minute, "the restarted agent never registered", func() bool {
		return len(p.logs.Lines("agent registered")) > 0
	})
	if h := waitHost(t, c, "h1", ""); h.ID != id {
		t.Fatalf("restarted agent registered id %s; want %s", h.ID, id)
	}
	p.cmd.Process.Kill()
	p.exited()
	waitGone(t, c, "h1")
}

// SIGSTOP past the TTL: the key goes; SIGCONT: the agent registers again
// with the same id.
func TestAgentStoppedAndContinued(t *testing.T) {
	dockertest.Daemon(t)
	e := etcdtest.New(t)
	c := etcdClient(t, e)
	state := t.TempDir()
	p := startAgent(t, e, "h1", state)
	h := waitHost(t, c, "h1", "")
	p.cmd.Process.Signal(syscall.SIGSTOP)
	waitGone(t, c, "h1")
	p.cmd.Process.Signal(syscall.SIGCONT)
	waitHost(t, c, "h1", h.ID)
	if len(p.logs.Lines("registration lost")) == 0 || len(p.logs.Lines("registered again")) == 0 {
		t.Errorf("the loss and the new registration are not logged")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.exited(); err != nil {
		t.Fatalf("after SIGTERM: %v; want exit 0", err)
	}
	waitGone(t, c, "h1")
}

// A second agent with the name of a live one and another id exits
// non-zero, naming the key and the holder; the first keeps its key.
func TestAgentDuplicateName(t *testing.T) {
	dockertest.Daemon(t)
	e := etcdtest.New(t)
	c := etcdClient(t, e)
	first := t.TempDir()
	startAgent(t, e, "h1", first)
	waitHost(t, c, "h1", "")
	second := startAgent(t, e, "h1", t.TempDir())
	err := second.exited()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("second agent: %v; want a non-zero exit", err)
	}
	id := readID(t, first)
	for _, want := range []string{"another agent runs as host \"h1\"", agentPrefix + "hosts/h1", id} {
		if !strings.Contains(second.logs.String(), want) {
			t.Errorf("second agent's output does not say %q:\n%s", want, second.logs)
		}
	}
	if h, ok := hostKey(t, c, "h1"); !ok || h.ID != id {
		t.Fatalf("the first agent's key: %+v, %v", h, ok)
	}
}

// SIGTERM drains: the key is marked draining and stays while a container
// of Ganger's runs on the daemon; once it is removed the key goes and the
// agent exits 0.
func TestAgentDrains(t *testing.T) {
	dockertest.Daemon(t)
	e := etcdtest.New(t)
	c := etcdClient(t, e)
	b := make([]byte, 4)
	rand.Read(b)
	owner := "agent-test-" + hex.EncodeToString(b)
	ctr := strings.TrimSpace(dockertest.Docker(t, "run", "-d", "--label", "ganger.managed=true",
		"--label", "ganger.owner="+owner, dockertest.Image))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", ctr).Run() })

	p := startAgent(t, e, "h1", t.TempDir(), "--drain-timeout", "90s")
	waitHost(t, c, "h1", "")
	p.cmd.Process.Signal(syscall.SIGTERM)
	dockertest.Eventually(t, time.Minute, "the key was never marked draining", func() bool {
		h, ok := hostKey(t, c, "h1")
		return ok && h.Draining
	})
	dockertest.Eventually(t, time.Minute, "the agent never saw the container", func() bool {
		return len(p.logs.Lines("msg=draining", "containers=")) > 0
	})
	if !p.running() {
		t.Fatalf("the agent exited with a container running: %v", p.exited())
	}
	if _, ok := hostKey(t, c, "h1"); !ok {
		t.Fatal("the key went with a container running")
	}
	dockertest.Docker(t, "rm", "-f", ctr)
	if err := p.exited(); err != nil {
		t.Fatalf("agent: %v; want exit 0", err)
	}
	waitGone(t, c, "h1")
}

// No daemon at --docker: the agent exits at once, saying so.
func TestAgentNoDocker(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	out, err := exec.Command(binary, "agent", "--etcd", "http://127.0.0.1:1", "--name", "h1", "--advertise", "127.0.0.1",
		"--docker", "unix://"+sock, "--state-dir", t.TempDir()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("got %v; want exit 1\n%s", err, out)
	}
	if want := "the Docker daemon at unix://" + sock + " does not answer"; !strings.Contains(string(out), want) {
		t.Fatalf("output does not say %q:\n%s", want, out)
	}
}

func TestAgentUsage(t *testing.T) {
	for _, args := range [][]string{
		{"agent"},
		{"agent", "--etcd", "http://e:2379", "--name", "h1"},                                           // no --advertise
		{"agent", "--etcd", "http://e:2379", "--name", "a/b", "--advertise", "1.2.3.4"},                // bad name
		{"agent", "--etcd", "http://e:2379", "--name", "h", "--advertise", "1.2.3.4", "--labels", "x"}, // bad label
	} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("ganger %v: %v; want exit 2\n%s", args, err, out)
		}
	}
}

func TestAgentID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	id, err := agentID(dir)
	if err != nil || len(id) != 32 {
		t.Fatalf("agentID: %q, %v", id, err)
	}
	again, err := agentID(dir)
	if err != nil || again != id {
		t.Fatalf("read back %q, %v; want %q", again, err, id)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v; want 0700", fi.Mode().Perm())
	}
}

// An agent for a tcp:// daemon behind TLS (--tlsverify): with the right
// CA and client certificate it registers; with another CA it exits,
// naming the file.
func TestAgentTLSDocker(t *testing.T) {
	dockertest.Daemon(t)
	td, err := dockertest.StartTLS(11, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.Stop() })
	e := etcdtest.New(t)
	c := etcdClient(t, e)
	pki := td.PKI
	p := startAgent(t, e, "tls-host", t.TempDir(), "--docker", td.TCP, "--advertise", td.IP,
		"--docker-ca", pki.CA, "--docker-cert", pki.ClientCert, "--docker-key", pki.ClientKey)
	h := waitHost(t, c, "tls-host", "")
	if h.Docker != td.TCP {
		t.Fatalf("registered %+v; want docker %s", h, td.TCP)
	}
	p.cmd.Process.Kill()
	out, err := exec.Command(binary, "agent", "--etcd", e.Endpoint(), "--prefix", agentPrefix, "--name", "tls-wrong",
		"--docker", td.TCP, "--advertise", td.IP, "--state-dir", t.TempDir(),
		"--docker-ca", pki.WrongCA, "--docker-cert", pki.ClientCert, "--docker-key", pki.ClientKey).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), pki.WrongCA) {
		t.Fatalf("with another CA: %v; want exit 1 naming %s\n%s", err, pki.WrongCA, out)
	}
}
