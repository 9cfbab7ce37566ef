// Package etcdtest runs a real etcd for tests: Debian's etcd-server
// package (/usr/bin/etcd), a single member on free 127.0.0.1 ports, its
// data in a fresh temporary directory and its output in a log file there,
// detached from the test's terminal. Each call starts its own server, so
// test packages running in parallel never share one.
//
// A server is stopped and its directory removed at the end of the test
// that started it; if the test binary dies first (a -timeout panic, a
// kill), the kernel's parent-death signal kills etcd, and the next Start
// removes the directory it left.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/servertest"
)

// Binary is the etcd server looked for (in $PATH); ETCDTEST_ETCD
// overrides it.
const Binary = "etcd"

// Etcd is one running etcd server.
type Etcd struct {
	dir        string // temporary: data/, etcd.log, owner.pid
	bin        string
	clientPort int
	peerPort   int
	serverTLS  *ClientTLS // the server's certificate and CA; nil: plain
	tls        *ClientTLS // a client's files; nil: plain

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the etcd binary.
type process struct {
	cmd  *exec.Cmd
	exit chan struct{} // closed when it has exited
	err  error         // its exit status, once exit is closed
	free chan struct{} // lets go of the OS thread that started it
}

// New starts a server for t, stopped (and its files removed) at t's end.
// It fails t, never skips it, if etcd cannot be run, naming `make
// test-deps` when the binary is missing.
func New(t testing.TB) *Etcd {
	t.Helper()
	e, err := Start()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	cleanup(t, e)
	return e
}

// cleanup closes e at t's end, showing its log if t failed.
func cleanup(t testing.TB, e *Etcd) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd log (%s):\n%s", e.dir, servertest.Tail(e.logPath()))
		}
		if err := e.Close(); err != nil {
			t.Errorf("etcdtest: %v", err)
		}
	})
}

// Start starts a server on free ports in a new directory; Close stops it
// and removes the directory.
func Start() (*Etcd, error) { return start(false) }

func start(withTLS bool) (*Etcd, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	// Directories of killed tests go: etcd went with them (Pdeathsig).
	servertest.Sweep("etcdtest", nil)
	dir, err := servertest.Dir("etcdtest")
	if err != nil {
		return nil, err
	}
	e := &Etcd{dir: dir, bin: bin}
	if withTLS {
		if e.serverTLS, e.tls, err = makePKI(dir); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("certificates: %w", err)
		}
	}
	for attempt := 1; ; attempt++ {
		if e.clientPort, e.peerPort, err = freePorts(); err != nil {
			break
		}
		if err = e.start(); err == nil {
			return e, nil
		}
		// Another process may have taken a port between our probe and
		// etcd's bind: try others, in a fresh data directory.
		if attempt >= 5 || !strings.Contains(servertest.Tail(e.logPath()), "address already in use") {
			break
		}
		os.RemoveAll(filepath.Join(dir, "data"))
	}
	err = fmt.Errorf("%v\n%s", err, servertest.Tail(e.logPath()))
	os.RemoveAll(dir)
	return nil, err
}

// binary finds the etcd binary.
func binary() (string, error) {
	if b := os.Getenv("ETCDTEST_ETCD"); b != "" {
		return b, nil
	}
	b, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("etcd not found: run `make test-deps` (scripts/ensure-test-deps.sh installs Debian's etcd-server): %w", err)
	}
	return b, nil
}

// Endpoint is the client URL: http://127.0.0.1:port (https:// for NewTLS).
// It stays the same across Stop and Restart.
func (e *Etcd) Endpoint() string {
	scheme := "http"
	if e.tls != nil {
		scheme = "https"
	}
	return scheme + "://127.0.0.1:" + strconv.Itoa(e.clientPort)
}

// Dir is the server's directory (data/ and etcd.log).
func (e *Etcd) Dir() string { return e.dir }

func (e *Etcd) logPath() string { return filepath.Join(e.dir, "etcd.log") }

// start runs etcd and waits until it reports itself healthy.
func (e *Etcd) start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != nil {
		return errors.New("etcd already running")
	}
	out, err := os.OpenFile(e.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	client := e.Endpoint()
	peer := "http://127.0.0.1:" + strconv.Itoa(e.peerPort)
	cmd := exec.Command(e.bin, "--name", "etcdtest", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "etcdtest="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn")
	if st := e.serverTLS; st != nil {
		cmd.Args = append(cmd.Args, "--cert-file", st.Cert, "--key-file", st.Key,
			"--trusted-ca-file", st.CA, "--client-cert-auth")
	}
	cmd.Stdout, cmd.Stderr = out, out // stdin: /dev/null
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + e.dir, "TZ=UTC"}
	if runtime.GOARCH != "amd64" {
		cmd.Env = append(cmd.Env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	cmd.Dir = e.dir
	p, err := launch(cmd)
	if err != nil {
		return err
	}
	e.proc = p
	if err := e.waitHealthy(p, 30*time.Second); err != nil {
		p.kill()
		e.proc = nil
		return err
	}
	return nil
}

// launch starts cmd in its own session. Pdeathsig: if this process dies
// without stopping etcd, the kernel kills it. It follows the OS thread
// that forked, so that thread is kept until the process is stopped.
func launch(cmd *exec.Cmd) (*process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, exit: make(chan struct{}), free: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-p.free
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exit)
	}()
	return p, nil
}

// waitHealthy polls etcd's /health until it says true.
func (e *Etcd) waitHealthy(p *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	if e.tls != nil {
		tc, err := e.tls.tlsConfig()
		if err != nil {
			return err
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc}
		defer hc.CloseIdleConnections()
	}
	var last error
	for {
		last = health(ctx, hc, e.Endpoint())
		if last == nil {
			return nil
		}
		select {
		case <-p.exit:
			return fmt.Errorf("etcd exited at start: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy in %v: %v", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func health(ctx context.Context, hc *http.Client, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b [256]byte
	n, _ := resp.Body.Read(b[:])
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b[:n]), `"true"`) {
		return fmt.Errorf("health: %s %s", resp.Status, b[:n])
	}
	return nil
}

// kill stops etcd with SIGTERM, then SIGKILL, and waits for it.
func (p *process) kill() {
	servertest.Stop(p.cmd, p.exit, syscall.SIGTERM, 10*time.Second)
	close(p.free)
}

// Stop stops the server, keeping its data and ports for Restart. A
// stopped server answers nothing: clients see etcd down.
func (e *Etcd) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return nil
	}
	p := e.proc
	e.proc = nil
	select {
	case <-p.exit:
		close(p.free)
		return fmt.Errorf("etcd had exited before Stop: %v\n%s", p.err, servertest.Tail(e.logPath()))
	default:
	}
	p.kill()
	return nil
}

// Restart stops the server if it runs and starts it again with the same
// data and ports; it returns once etcd is healthy.
func (e *Etcd) Restart() error {
	if err := e.Stop(); err != nil {
		return err
	}
	if err := e.start(); err != nil {
		return fmt.Errorf("restart etcd: %v\n%s", err, servertest.Tail(e.logPath()))
	}
	return nil
}

// Close stops the server and removes its directory.
func (e *Etcd) Close() error {
	err := e.Stop()
	if rerr := os.RemoveAll(e.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// Ctl runs etcdctl (API v3) against the server and returns its output.
func (e *Etcd) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flags := []string{"--endpoints", e.Endpoint()}
	if c := e.tls; c != nil {
		flags = append(flags, "--cacert", c.CA, "--cert", c.Cert, "--key", c.Key)
	}
	cmd := exec.CommandContext(ctx, "etcdctl", append(flags, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "ETCDCTL_API=3", "HOME=" + e.dir}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// freePorts finds two free loopback ports, held together while probed so
// that they differ.
func freePorts() (client, peer int, err error) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer a.Close()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer b.Close()
	return a.Addr().(*net.TCPAddr).Port, b.Addr().(*net.TCPAddr).Port, nil
}
