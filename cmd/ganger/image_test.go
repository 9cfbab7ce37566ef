package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// Ganger's own image (make image-ganger, scripts/build-ganger-image.sh),
// as the README's "Ganger in a container" runs it: host networking, the
// Docker socket and a config mounted. It is built here under a tag of the
// test's own from binaries built here (static), serves the demo service,
// and at `docker stop` leaves nothing behind: no container of its node, no
// network, and the test's image is removed.
func TestGangerImageServesAndLeavesNothing(t *testing.T) {
	if os.Getenv("GANGER_SKIP_DOCKER") != "" {
		t.Skip("GANGER_SKIP_DOCKER is set: this test builds Ganger's image and runs it on the Docker Engine")
	}
	d := dockertest.Daemon(t) // the engine answers and has ganger-echo:latest
	sock, ok := strings.CutPrefix(d.Host(), "unix://")
	if !ok {
		t.Skipf("Ganger's image is run with the daemon's unix socket mounted; the daemon is at %s", d.Host())
	}
	node := dockertest.Node(t, d) // at the end: no container and no network of node left
	tag := "ganger-test-image:" + node

	// Static binaries, as make build makes them: FROM scratch has no loader.
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"ganger", "."}, {"ganger-init", "../ganger-init"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(bin, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.out, err, out)
		}
	}
	build := exec.Command("bash", "../../scripts/build-ganger-image.sh", "test-"+node, tag)
	build.Env = append(os.Environ(), "GANGER_BIN="+bin)
	out, err := build.CombinedOutput()
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "image", "rm", tag).CombinedOutput(); err != nil {
			t.Errorf("remove the test's image %s: %v\n%s", tag, err, out)
			return
		}
		if exec.Command("docker", "image", "inspect", tag).Run() == nil {
			t.Errorf("image %s still there after its removal", tag)
		}
	})
	if err != nil {
		t.Fatalf("build-ganger-image.sh: %v\n%s", err, out)
	}
	checkImageConfig(t, tag, "test-"+node)
	checkImageFiles(t, tag)

	port := freePort(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "ganger.yaml")
	cfg := fmt.Sprintf(`node: %s
api: {listen: ""}
store: {path: /var/lib/ganger/ganger.db}
services:
  - name: echo
    listen: 127.0.0.1:%d
    image: %s
    pull: never
    port: 7777
    cmd: ["-banner", "hi"]
    timeouts: {drain: 1s}
`, node, port, dockertest.Image)
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	name := "ganger-test-" + node
	dockertest.Docker(t, "run", "-d", "--name", name, "--network", "host", "--stop-timeout", "60",
		"-v", sock+":/var/run/docker.sock",
		"-v", config+":/etc/ganger/ganger.yaml:ro",
		tag)
	t.Cleanup(func() {
		// Removed at the end of a passing test already; this is for one
		// that failed halfway.
		if exec.Command("docker", "container", "inspect", name).Run() == nil {
			if t.Failed() {
				logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
				t.Logf("ganger's logs:\n%s", logs)
			}
			exec.Command("docker", "rm", "-f", name).Run()
		}
	})
	logs := func() string {
		out, _ := exec.Command("docker", "logs", name).CombinedOutput()
		return string(out)
	}
	listening := fmt.Sprintf("msg=listening service=echo addr=127.0.0.1:%d", port)
	dockertest.Eventually(t, time.Minute, "ganger in its container never listened", func() bool {
		return strings.Contains(logs(), listening)
	})

	// A session: its container runs on the daemon behind the socket,
	// labelled with the node, and echoes.
	c, r := openSession(t, fmt.Sprintf("127.0.0.1:%d", port))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	c.SetReadDeadline(time.Time{})
	owned := dockertest.Owned(t, d, node)
	if len(owned) != 1 || owned[0].Labels["ganger.managed"] != "true" || owned[0].Labels["ganger.service"] != "echo" {
		t.Fatalf("containers of node %s during the session: %+v; want one, labelled", node, owned)
	}

	// docker stop, the session still open: Ganger drains it (1s), removes
	// its container and networks, and exits 0.
	dockertest.Docker(t, "stop", name)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if rest, err := io.ReadAll(r); err != nil {
		t.Errorf("the session after docker stop: %q, %v; want it closed", rest, err)
	}
	if code := strings.TrimSpace(dockertest.Docker(t, "inspect", "-f", "{{.State.ExitCode}}", name)); code != "0" {
		t.Errorf("ganger exited %s at docker stop; want 0\n%s", code, logs())
	}
	if !strings.Contains(logs(), "msg=stopped") {
		t.Errorf("ganger's logs end without msg=stopped:\n%s", logs())
	}
	dockertest.Docker(t, "rm", name)
	left := dockertest.Docker(t, "ps", "-a", "-q", "--filter", "label=ganger.managed=true", "--filter", "label=ganger.owner="+node)
	if strings.TrimSpace(left) != "" {
		t.Errorf("containers of node %s left after docker stop: %s", node, left)
	}
	if exec.Command("docker", "container", "inspect", name).Run() == nil {
		t.Errorf("ganger's container %s still there", name)
	}
}

// checkImageConfig checks what the image runs: /ganger serve, its config
// from GANGER_CONFIG, and its labels.
func checkImageConfig(t *testing.T, tag, version string) {
	t.Helper()
	var cfg struct {
		Entrypoint []string
		Cmd        []string
		Env        []string
		Labels     map[string]string
	}
	if err := json.Unmarshal([]byte(dockertest.Docker(t, "image", "inspect", "-f", "{{json .Config}}", tag)), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/ganger"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q, cmd %q; want [/ganger] [serve]", cfg.Entrypoint, cfg.Cmd)
	}
	if !slices.Contains(cfg.Env, "GANGER_CONFIG=/etc/ganger/ganger.yaml") {
		t.Errorf("env %q; want GANGER_CONFIG=/etc/ganger/ganger.yaml", cfg.Env)
	}
	if got := cfg.Labels["org.opencontainers.image.version"]; got != version {
		t.Errorf("label org.opencontainers.image.version %q; want %q", got, version)
	}
	if got := cfg.Labels["org.opencontainers.image.title"]; got != "ganger" {
		t.Errorf("label org.opencontainers.image.title %q; want ganger", got)
	}
}

// checkImageFiles checks the image's files: the two binaries side by side,
// the CA certificates, and the state and temporary directories.
func checkImageFiles(t *testing.T, tag string) {
	t.Helper()
	id := strings.TrimSpace(dockertest.Docker(t, "create", tag))
	defer exec.Command("docker", "rm", id).Run()
	out, err := exec.Command("docker", "export", id).Output()
	if err != nil {
		t.Fatalf("docker export: %v", err)
	}
	files := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = h
	}
	for _, f := range []struct {
		name string
		typ  byte
		mode int64
	}{
		{"ganger", tar.TypeReg, 0o755},
		{"ganger-init", tar.TypeReg, 0o755},
		{"etc/ssl/certs/ca-certificates.crt", tar.TypeReg, 0o644},
		{"var/lib/ganger", tar.TypeDir, 0o700},
		{"tmp", tar.TypeDir, 0o1777},
	} {
		h := files[f.name]
		switch {
		case h == nil:
			t.Errorf("/%s missing from the image", f.name)
		case h.Typeflag != f.typ || h.Mode&0o7777 != f.mode:
			t.Errorf("/%s: type %c mode %o; want %c %o", f.name, h.Typeflag, h.Mode&0o7777, f.typ, f.mode)
		}
	}
}
