package dockertest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry starts Debian's docker-registry on 127.0.0.1 with its storage in
// a temporary directory, and returns its host:port. Docker trusts
// registries on 127.0.0.0/8 without TLS. The registry is stopped when t
// ends.
func Registry(t testing.TB) string { return registry(t, "", "") }

// AuthRegistry is Registry requiring a login (htpasswd, bcrypt).
func AuthRegistry(t testing.TB, user, password string) string { return registry(t, user, password) }

func registry(t testing.TB, user, password string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry not installed (make test-deps): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		yml += fmt.Sprintf("auth:\n  htpasswd: {realm: ganger-test, path: %s}\n", htpasswd)
	}
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	Eventually(t, 30*time.Second, "docker-registry did not answer", func() bool {
		resp, err := http.Get("http://" + addr + "/v2/") // 401 when it wants a login: it answers
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return addr
}

// Docker runs the docker CLI, failing t with its output on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, out)
	}
	return string(out)
}
