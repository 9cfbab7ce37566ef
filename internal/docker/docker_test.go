package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// The container Ganger creates is locked down, as `docker inspect` (not our
// own code) reports it: no capability but the one listed, no privilege to
// gain (in the non-deprecated syntax), limits on memory, CPU, processes,
// open files and logs, the image's user (nobody when it names none), and
// no published port when Ganger dials the container directly.
func TestCreateIsSecureByDefault(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	ctx := context.Background()
	spec := ganger.Spec{
		Name: "ganger-secure-" + node, Image: dockertest.Image, Port: 7777, Network: "bridge",
		Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node},
		Limits: ganger.Limits{Memory: 64 << 20, NanoCPUs: 5e8, Pids: 32, NoNewPrivileges: true, CapAdd: []string{"NET_BIND_SERVICE"},
			NoFile: 1024, LogMaxSize: 1 << 20, LogMaxFiles: 2},
	}
	id, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(ctx, id)
	addr, err := d.Start(ctx, id, 7777)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(addr); net.ParseIP(host) == nil {
		t.Fatalf("dial address %q is not an IP:port", addr)
	}
	out, err := exec.Command("docker", "inspect", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Config     struct{ User string }
		HostConfig struct {
			Ulimits []struct {
				Name       string
				Soft, Hard int64
			}
			LogConfig struct {
				Type   string
				Config map[string]string
			}
			Privileged    bool
			CapDrop       []string
			CapAdd        []string
			SecurityOpt   []string
			Memory        int64
			MemorySwap    int64
			NanoCpus      int64
			PidsLimit     int64
			Binds         []string
			Mounts        []any
			PortBindings  map[string][]struct{ HostIp, HostPort string }
			RestartPolicy struct{ Name string }
		}
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	h := got[0].HostConfig
	if h.Privileged || len(h.Binds) > 0 || len(h.Mounts) > 0 {
		t.Errorf("privileged %v, binds %v, mounts %v; want none", h.Privileged, h.Binds, h.Mounts)
	}
	if len(h.CapDrop) != 1 || h.CapDrop[0] != "ALL" || len(h.CapAdd) != 1 {
		t.Errorf("cap_drop %v cap_add %v; want [ALL] and the one listed", h.CapDrop, h.CapAdd)
	}
	if len(h.SecurityOpt) != 1 || h.SecurityOpt[0] != "no-new-privileges=true" {
		t.Errorf("security_opt %v", h.SecurityOpt)
	}
	if h.Memory != 64<<20 || h.MemorySwap != 64<<20 || h.PidsLimit != 32 || h.NanoCpus != 5e8 {
		t.Errorf("limits: memory %d swap %d pids %d cpus %d", h.Memory, h.MemorySwap, h.PidsLimit, h.NanoCpus)
	}
	if len(h.PortBindings) != 0 { // the image may expose the port; nothing publishes it
		t.Errorf("port bindings %v; want none: Ganger dials the container itself", h.PortBindings)
	}
	if len(h.Ulimits) != 1 || h.Ulimits[0].Name != "nofile" || h.Ulimits[0].Soft != 1024 || h.Ulimits[0].Hard != 1024 {
		t.Errorf("ulimits %+v; want nofile 1024", h.Ulimits)
	}
	if lc := h.LogConfig; lc.Type != "json-file" || lc.Config["max-size"] != "1048576" || lc.Config["max-file"] != "2" {
		t.Errorf("log config %+v; want json-file, 1MiB, 2 files", lc)
	}
	if u := got[0].Config.User; u != "65534:65534" { // the demo image's own
		t.Errorf("user %q; want the image's, nobody", u)
	}
	if h.RestartPolicy.Name != "no" && h.RestartPolicy.Name != "" {
		t.Errorf("restart policy %q", h.RestartPolicy.Name)
	}
}

// A container of an image that names no user runs as nobody, never root.
func TestNoUserMeansNobody(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	ref := "ganger-echo:nouser-" + node
	imp := exec.Command("sh", "-c", `tar -C ../../bin -c ganger-echo | docker import --change 'ENTRYPOINT ["/ganger-echo"]' - `+ref)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("import: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", ref).Run() })
	ctx := context.Background()
	id, err := d.Create(ctx, ganger.Spec{Name: "ganger-nouser-" + node, Image: ref, Port: 7777, Network: "bridge",
		Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node}, Limits: ganger.Limits{Memory: 64 << 20, Pids: 32}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(ctx, id)
	out, err := exec.Command("docker", "inspect", "-f", "{{.Config.User}}", id).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "65534:65534" {
		t.Fatalf("user %q (%v); want 65534:65534", got, err)
	}
}

// A disk cap is applied where the daemon's storage driver can enforce it;
// where it cannot (overlay2 on ext4, say), the container is still created,
// without the cap, and the daemon is not asked again.
func TestDiskCap(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	ctx := context.Background()
	for i := range 2 {
		id, err := d.Create(ctx, ganger.Spec{Name: fmt.Sprintf("ganger-disk-%s-%d", node, i), Image: dockertest.Image, Port: 7777, Network: "bridge",
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node},
			Limits: ganger.Limits{Memory: 64 << 20, Pids: 32, Disk: 64 << 20}})
		if err != nil {
			t.Fatalf("create with a disk cap: %v", err)
		}
		defer d.Remove(ctx, id)
		out, _ := exec.Command("docker", "inspect", "-f", "{{json .HostConfig.StorageOpt}}", id).Output()
		t.Logf("create %d: storage options %s", i, strings.TrimSpace(string(out)))
	}
}
