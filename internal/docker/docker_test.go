package docker_test

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"testing"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// The container Ganger creates is locked down, as `docker inspect` (not our
// own code) reports it.
func TestCreateIsSecureByDefault(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	ctx := context.Background()
	spec := ganger.Spec{
		Name: "ganger-secure-" + node, Image: dockertest.Image, Port: 7777, Network: "bridge",
		Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: node},
		Limits: ganger.Limits{Memory: 64 << 20, NanoCPUs: 5e8, Pids: 32, NoNewPrivileges: true, CapAdd: []string{"NET_BIND_SERVICE"}},
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
		HostConfig struct {
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
	if len(h.SecurityOpt) != 1 || h.SecurityOpt[0] != "no-new-privileges:true" {
		t.Errorf("security_opt %v", h.SecurityOpt)
	}
	if h.Memory != 64<<20 || h.MemorySwap != 64<<20 || h.PidsLimit != 32 || h.NanoCpus != 5e8 {
		t.Errorf("limits: memory %d swap %d pids %d cpus %d", h.Memory, h.MemorySwap, h.PidsLimit, h.NanoCpus)
	}
	if b := h.PortBindings["7777/tcp"]; len(b) != 1 || b[0].HostIp != "127.0.0.1" || b[0].HostPort != "" {
		t.Errorf("port bindings %v; want 7777/tcp on 127.0.0.1, ephemeral", h.PortBindings)
	}
	if h.RestartPolicy.Name != "no" && h.RestartPolicy.Name != "" {
		t.Errorf("restart policy %q", h.RestartPolicy.Name)
	}
}
