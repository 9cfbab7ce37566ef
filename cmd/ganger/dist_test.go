package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// dist runs scripts/dist.sh for this machine's architecture only (its
// binary can run here), version test-x, into a new directory.
func dist(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("bash", "../../scripts/dist.sh")
	cmd.Env = append(os.Environ(), "VERSION=test-x", "DIST_DIR="+out, "DIST_ARCHES="+runtime.GOARCH,
		"SOURCE_DATE_EPOCH=1700000000", "GO_LDFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist.sh: %v\n%s", err, b)
	}
	return out
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// make dist's tarball: the listed files, under one directory, owned by
// root, a static ganger that runs and says its version, the completion
// scripts it prints; SHA256SUMS right; the same bytes when built again.
func TestDist(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the tarballs are for Linux")
	}
	out := dist(t)
	name := "ganger-test-x-linux-" + runtime.GOARCH
	tgz := filepath.Join(out, name+".tar.gz")
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256File(t, tgz) + "  " + name + ".tar.gz\n"; string(sums) != want {
		t.Fatalf("SHA256SUMS:\n%s\nwant:\n%s", sums, want)
	}

	// What the tarball should hold: examples/systemd as it is here.
	want := []string{"README.md", "bin/ganger", "bin/ganger-init", "completion/_ganger", "completion/ganger.bash", "examples/ganger.yaml"}
	units, _ := filepath.Glob("../../examples/systemd/*")
	for _, u := range units {
		want = append(want, "examples/systemd/"+filepath.Base(u))
	}
	if _, err := os.Stat("../../LICENSE"); err == nil {
		want = append(want, "LICENSE")
	}
	slices.Sort(want)

	dir := t.TempDir()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(h.Name, name+"/")
		if !ok && h.Name != name+"/" {
			t.Fatalf("%s: outside %s/", h.Name, name)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 1700000000 {
			t.Errorf("%s: owner %d:%d, time %v; want root's, SOURCE_DATE_EPOCH", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		files = append(files, rel)
		mode := int64(0o644)
		if strings.HasPrefix(rel, "bin/") {
			mode = 0o755
		}
		if h.Mode != mode {
			t.Errorf("%s: mode %o; want %o", rel, h.Mode, mode)
		}
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(files)
	if !slices.Equal(files, want) {
		t.Fatalf("the tarball holds\n%q\nwant\n%q", files, want)
	}

	// Static: no program interpreter in either binary; built without cgo.
	for _, b := range []string{"bin/ganger", "bin/ganger-init"} {
		e, err := elf.Open(filepath.Join(dir, b))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", b)
			}
		}
		e.Close()
		m, err := exec.Command("go", "version", "-m", filepath.Join(dir, b)).CombinedOutput()
		if err != nil || !strings.Contains(string(m), "\tbuild\tCGO_ENABLED=0\n") || !strings.Contains(string(m), "\tbuild\t-trimpath=true\n") {
			t.Errorf("%s: go version -m: %v\n%s", b, err, m)
		}
	}
	ganger := filepath.Join(dir, "bin/ganger")
	v, err := exec.Command(ganger, "version").CombinedOutput()
	if err != nil || !regexp.MustCompile(`^ganger test-x\ncommit: [0-9a-f]{40}\nbuilt:  2023-11-14T22:13:20Z\ngo:     go`).Match(v) {
		t.Fatalf("ganger version from the tarball: %v\n%s", err, v)
	}
	for shell, file := range map[string]string{"bash": "completion/ganger.bash", "zsh": "completion/_ganger"} {
		printed, _ := exec.Command(ganger, "completion", shell).Output()
		if shipped, _ := os.ReadFile(filepath.Join(dir, file)); len(printed) == 0 || string(printed) != string(shipped) {
			t.Errorf("%s differs from what ganger completion %s prints", file, shell)
		}
	}
	for _, u := range units {
		shipped, _ := os.ReadFile(filepath.Join(dir, "examples/systemd", filepath.Base(u)))
		if here, _ := os.ReadFile(u); string(here) != string(shipped) {
			t.Errorf("examples/systemd/%s differs from the repository's", filepath.Base(u))
		}
	}

	// Reproducible: with SOURCE_DATE_EPOCH, the same sources give the same
	// bytes. In a checkout others work in, the sources may change between
	// the two builds: then there is nothing to compare.
	before := sources(t)
	again := filepath.Join(dist(t), name+".tar.gz")
	if sources(t) != before {
		t.Log("the checkout changed during the second build: reproducibility not checked")
		return
	}
	if a, b := sha256File(t, tgz), sha256File(t, again); a != b {
		t.Errorf("two builds of the same sources differ: %s, %s", a, b)
	}
}

// sources sums the checkout's state: its commit, its changes, its
// untracked files.
func sources(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	for _, args := range [][]string{{"rev-parse", "HEAD"}, {"diff", "HEAD"}, {"status", "--porcelain", "-uall"}} {
		out, _ := exec.Command("git", args...).CombinedOutput() // not a checkout: the same each time
		h.Write(out)
	}
	return hex.EncodeToString(h.Sum(nil))
}
