package fleettest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ganger-dev/ganger"
)

// BuildInit builds ganger-init (static, as make build does) into a
// temporary directory of t and returns it as an Init. With unique, the
// binary gets bytes of its own at its end (it runs the same), so that its
// digest, and the image and volume named after it, belong to t alone: the
// caller removes those when t ends.
func BuildInit(t testing.TB, unique bool) ganger.Init {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ganger-init")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("build ganger-init: no go in PATH: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", path, "github.com/ganger-dev/ganger/cmd/ganger-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ganger-init: %v\n%s", err, out)
	}
	if unique {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("\nganger-init test " + randomHex(8) + "\n")
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ganger.Init{Binary: path, Digest: ganger.InitDigest(b)}
}
