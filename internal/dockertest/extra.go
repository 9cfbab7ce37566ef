package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Extra is an extra Docker daemon on this machine for multi-host tests: its
// own data-root, exec-root, pidfile, socket and bridge (created beforehand:
// `--bridge none` on a second daemon would delete the first one's docker0).
// It runs with iptables off, so daemons do not fight over the shared
// chains; ports it publishes on 127.0.0.1 still work through docker-proxy.
// Its networks draw addresses from Docker's default pools, blind to the
// other daemons': tests run services there on its own default bridge
// (network: bridge), never on networks it would create. (Giving it an
// address pool of its own, --default-address-pool, makes it delete the
// host's docker0 when it restarts after a kill.)
type Extra struct {
	Name   string
	Host   string // unix:///...
	root   string
	bridge string
	subnet string
	cmd    *exec.Cmd
	done   chan struct{}
	logf   *os.File
	tls    *tlsNet // a TLS daemon's namespace and certificates (StartTLS); nil: none
}

// StartExtra starts extra daemon number i (1-9) and loads the demo image
// into it unless bare. Paths stay short: a unix socket path has a limit.
func StartExtra(i int, bare bool) (*Extra, error) {
	e := newExtra(i)
	if err := e.boot(e.makeBridge, bare); err != nil {
		return nil, err
	}
	return e, nil
}

func newExtra(i int) *Extra {
	e := &Extra{
		Name:   fmt.Sprintf("extra%d", i),
		root:   fmt.Sprintf("/tmp/gd%d", i),
		bridge: fmt.Sprintf("gbr%d", i),
		subnet: fmt.Sprintf("10.222.%d.1/24", i),
	}
	e.Host = "unix://" + e.root + "/docker.sock"
	return e
}

// boot clears what a crashed earlier run may have left, makes e's
// directory and, with setup, its network, starts dockerd and loads the
// demo image unless bare. What a failure leaves is removed.
func (e *Extra) boot(setup func() error, bare bool) error {
	e.cleanup()
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		return err
	}
	if err := setup(); err != nil {
		e.cleanup()
		return err
	}
	if err := e.start(); err != nil {
		e.Stop()
		return err
	}
	if !bare {
		if err := e.LoadImage(Image); err != nil {
			e.Stop()
			return err
		}
	}
	return nil
}

// makeBridge makes the bridge dockerd is told to use.
func (e *Extra) makeBridge() error {
	for _, args := range [][]string{
		{"link", "add", "name", e.bridge, "type", "bridge"},
		{"addr", "add", e.subnet, "dev", e.bridge},
		{"link", "set", e.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	return nil
}

func (e *Extra) start() error {
	logf, err := os.OpenFile(filepath.Join(e.root, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	e.logf = logf
	e.cmd = e.command()
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := e.cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd %s: %w", e.Name, err)
	}
	e.done = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("docker", "-H", e.Host, "info").Run() == nil {
			return nil
		}
		select {
		case <-e.done:
			return fmt.Errorf("dockerd %s exited; see %s/dockerd.log", e.Name, e.root)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("dockerd %s did not answer within 60s; see %s/dockerd.log", e.Name, e.root)
}

// command is the dockerd to run: on the host's network with its own
// bridge and iptables off, or a TLS daemon's (see StartTLS).
func (e *Extra) command() *exec.Cmd {
	args := []string{
		"--data-root", filepath.Join(e.root, "data"),
		"--exec-root", filepath.Join(e.root, "exec"),
		"--pidfile", filepath.Join(e.root, "docker.pid"),
		"--host", e.Host,
		"--storage-driver", "vfs",
	}
	if e.tls != nil {
		return e.tls.command(args)
	}
	args = append(args, "--bridge", e.bridge, "--iptables=false", "--ip-masq=false")
	return exec.Command("dockerd", args...)
}

// LoadImage copies an image from the default daemon into this one.
func (e *Extra) LoadImage(ref string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("docker save %s | docker -H %s load", ref, e.Host))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load %s into %s: %v: %s", ref, e.Name, err, out)
	}
	return nil
}

// Kill kills dockerd with SIGKILL, as a host that dies would stop
// answering. Its containers run on (their shims survive it).
func (e *Extra) Kill() {
	e.cmd.Process.Kill()
	<-e.done
}

// Restart brings a killed daemon back, after killing what it left running
// (containerd, shims: the containers die with them, as on a rebooted host).
func (e *Extra) Restart() error {
	e.killLeftovers()
	e.logf.Close()
	return e.start()
}

// Stop stops the daemon and removes everything it made.
func (e *Extra) Stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			e.cmd.Process.Kill()
			<-e.done
		}
	}
	if e.logf != nil {
		e.logf.Close()
	}
	e.cleanup()
}

// killLeftovers kills what the dead dockerd left running and waits for it
// to be gone; dockerd would otherwise trust the stale containerd.pid and
// wait on a containerd that is dead.
func (e *Extra) killLeftovers() {
	exec.Command("pkill", "-9", "-f", filepath.Join(e.root, "exec")).Run()
	for range 100 {
		if exec.Command("pgrep", "-f", filepath.Join(e.root, "exec")).Run() != nil {
			break // none left
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(filepath.Join(e.root, "exec", "containerd", "containerd.pid"))
}

// cleanup removes processes, mounts, the bridge and the files of e.
func (e *Extra) cleanup() {
	exec.Command("pkill", "-9", "-f", e.root+"/").Run()
	if data, err := os.ReadFile("/proc/mounts"); err == nil {
		lines := strings.Split(string(data), "\n")
		for i := len(lines) - 1; i >= 0; i-- { // innermost first
			f := strings.Fields(lines[i])
			if len(f) > 1 && strings.HasPrefix(f[1], e.root+"/") {
				exec.Command("umount", "-l", f[1]).Run()
			}
		}
	}
	if e.tls != nil {
		e.tls.cleanup()
	} else {
		exec.Command("ip", "link", "del", e.bridge).Run()
	}
	os.RemoveAll(e.root)
}
