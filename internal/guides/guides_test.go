// Package guides runs every guide in docs/guides as a reader would (see
// scripts/run-guide.sh): the docs cannot rot.
//
// One guide: go test ./internal/guides -run TestGuides/01-ctf -v. Each
// guide's whole output (its commands traced, its cleanup) goes to
// $TMPDIR/ganger-guide-NAME.log; a failure shows its end.
package guides

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guideTimeout bounds one guide's commands (less if the test's -timeout
// comes first); its cleanup then has cleanupTimeout.
const (
	guideTimeout   = 5 * time.Minute
	cleanupTimeout = 2 * time.Minute
)

func TestGuides(t *testing.T) {
	if os.Getenv("GANGER_SKIP_DOCKER") != "" {
		t.Skip("GANGER_SKIP_DOCKER: the guides need a Docker Engine")
	}
	guides, err := filepath.Glob("../../docs/guides/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(guides) == 0 {
		t.Fatal("no guide in docs/guides")
	}
	for _, bin := range []string{"ganger", "ganger-init", "ganger-echo"} {
		if _, err := os.Stat(filepath.Join("../../bin", bin)); err != nil {
			t.Fatalf("the guides run bin/%s: run make build (%v)", bin, err)
		}
	}
	for _, g := range guides {
		if filepath.Base(g) == "README.md" {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(g), ".md")
		t.Run(name, func(t *testing.T) { runGuide(t, name, g) })
	}
}

func runGuide(t *testing.T, name, guide string) {
	logPath := filepath.Join(os.TempDir(), "ganger-guide-"+name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	before := leftovers()
	for c := range before {
		t.Logf("before guide %s: %s (not its own)", name, c)
	}
	timeout := guideTimeout
	if d, ok := t.Deadline(); ok && time.Until(d)-cleanupTimeout-10*time.Second < timeout {
		timeout = time.Until(d) - cleanupTimeout - 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../scripts/run-guide.sh", guide)
	cmd.Stdout, cmd.Stderr = logFile, logFile // a file, not a pipe: a server the guide leaves running cannot hold the test
	// At the timeout the script stops the guide's commands and runs its
	// cleanup; it is killed only if that takes too long as well.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = cleanupTimeout
	began := time.Now()
	err = cmd.Run()
	took := time.Since(began).Round(100 * time.Millisecond)
	if err != nil {
		out, _ := os.ReadFile(logPath)
		t.Errorf("guide %s failed after %s: %v; its whole output: %s; its end:\n%s", name, took, err, logPath, tail(string(out), 150))
	} else {
		t.Logf("guide %s passed in %s (output: %s)", name, took, logPath)
	}
	// A guide's node is guide-<something>: nothing of it is left (nor
	// of any other guide's node that was not there before it ran).
	for c := range leftovers() {
		if !before[c] {
			t.Errorf("guide %s left %s", name, c)
		}
	}
}

// leftovers lists what guides' nodes have on the daemon: containers
// labelled ganger.managed=true with an owner guide-…, and networks
// ganger-guide-….
func leftovers() map[string]bool {
	left := map[string]bool{}
	ps, _ := exec.Command("docker", "ps", "-a", "--format", `{{.Names}} {{.Label "ganger.owner"}}`, "--filter", "label=ganger.managed=true").Output()
	for _, line := range strings.Split(strings.TrimSpace(string(ps)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[1], "guide-") {
			left["container "+f[0]+" (node "+f[1]+")"] = true
		}
	}
	nets, _ := exec.Command("docker", "network", "ls", "--format", "{{.Name}}", "--filter", "name=ganger-guide-").Output()
	for _, n := range strings.Fields(string(nets)) {
		left["network "+n] = true
	}
	return left
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
