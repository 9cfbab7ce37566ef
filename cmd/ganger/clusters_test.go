package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/view"
)

// clusterImage is the image `make test` builds for the cluster tests:
// etcd, redis and busybox from Debian's packages, FROM scratch.
const clusterImage = "ganger-cluster:latest"

// freePort is a TCP port free on every address now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// clusterDaemon is the local daemon with the cluster image, and a node
// name whose members are removed when the test ends (they outlive Ganger
// by design).
func clusterDaemon(t *testing.T) (*docker.Daemon, string) {
	d := dockertest.Daemon(t)
	if err := d.EnsureImage(context.Background(), clusterImage, "never"); err != nil {
		t.Fatalf("%s: %v (make test builds it: make cluster-image)", clusterImage, err)
	}
	node := dockertest.Node(t, d)
	t.Cleanup(func() { removeNode(t, d, node) })
	return d, node
}

// removeNode removes the node's containers and its clusters' volumes.
func removeNode(t *testing.T, d *docker.Daemon, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := d.ListManaged(ctx, node)
	if err != nil {
		t.Errorf("list the node's containers: %v", err)
		return
	}
	for _, c := range cs {
		d.Remove(ctx, c.ID)
	}
	out, _ := exec.Command("docker", "volume", "ls", "-q", "--filter", "label="+ganger.LabelCluster).Output()
	for _, v := range strings.Fields(string(out)) {
		if strings.HasPrefix(v, "ganger-"+node) {
			exec.Command("docker", "volume", "rm", "-f", v).Run()
		}
	}
}

// clusterProc starts ganger with the config at path and returns it and
// the API's URL on loopback.
func clusterProc(t *testing.T, path string, port int) *proc {
	p := startProc(t, path)
	dockertest.Eventually(t, time.Minute, "api never listened", func() bool {
		return strings.Contains(p.logs.String(), `msg="api listening"`)
	})
	return p
}

func getCluster(t *testing.T, api, token, name string) view.Cluster {
	t.Helper()
	var c view.Cluster
	if code := call(t, "GET", api+"/v1/clusters/"+name, token, &c); code != 200 {
		t.Fatalf("GET /v1/clusters/%s: %d", name, code)
	}
	return c
}

// waitCluster polls the cluster until cond holds, or fails after timeout
// with the last status.
func waitCluster(t *testing.T, api, token, name string, timeout time.Duration, what string, cond func(view.Cluster) bool) view.Cluster {
	t.Helper()
	var c view.Cluster
	deadline := time.Now().Add(timeout)
	for {
		c = getCluster(t, api, token, name)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s: not %s within %s: %+v", name, what, timeout, c)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settled: size members, all configured for the epoch, nothing pending.
func settled(size int) func(view.Cluster) bool {
	return func(c view.Cluster) bool {
		if len(c.Members) != size || c.Ready != size || c.Pending != "" || c.Leader == nil {
			return false
		}
		for _, m := range c.Members {
			if m.Acked != c.Epoch || m.State != "running" {
				return false
			}
		}
		return true
	}
}

func etcdctl(t *testing.T, endpoint string, args ...string) (string, error) {
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", endpoint, "--command-timeout", "10s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const etcdCluster = `node: %s
api: {listen: "0.0.0.0:%d", token: %s}
services:
  - name: etcd
    mode: cluster
    image: %s
    ports: [2379, 2380]
    init: ganger
    cluster: {size: 3, damper: 500ms}
    init_config:
      files:
        /conf/etcd.yml: |
          name: {{.Self.Name}}
          data-dir: /tmp/etcd
          listen-peer-urls: http://0.0.0.0:2380
          listen-client-urls: http://0.0.0.0:2379
          initial-advertise-peer-urls: http://{{.Self.IP}}:2380
          advertise-client-urls: http://{{.Self.IP}}:2379
          initial-cluster-token: {{.Cluster}}
          initial-cluster-state: new
          initial-cluster: {{range $i, $p := .Peers}}{{if $i}},{{end}}{{$p.Name}}=http://{{$p.IP}}:2380{{end}}
      processes:
        etcd: {cmd: ["/usr/bin/etcd", "--config-file", "/conf/etcd.yml"], ready: {tcp: "127.0.0.1:2379"}}
`

// A 3-member etcd cluster from Debian's etcd, formed through Ganger: each
// member's --initial-cluster is rendered from its peers (the API's
// address found from the network's gateway), the three are healthy, and a
// key put on one is read on another. Killed with -9 and started again,
// Ganger takes the cluster back untouched: same containers, incarnations
// and epoch, no process restarted.
func TestClusterEtcd(t *testing.T) {
	d, node := clusterDaemon(t)
	port := freePort(t)
	api := fmt.Sprintf("http://127.0.0.1:%d", port)
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(etcdCluster, node, port, token, clusterImage)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := clusterProc(t, path, port)
	c := waitCluster(t, api, token, "etcd", 3*time.Minute, "formed", settled(3))
	t.Logf("formed: epoch %d, leader %d, members %+v", c.Epoch, *c.Leader, c.Members)
	if *c.Leader != 0 || c.Epoch < 1 {
		t.Fatalf("leader %d, epoch %d; want member 0 to lead", *c.Leader, c.Epoch)
	}
	for _, m := range c.Members {
		if out, err := etcdctl(t, "http://"+m.IP+":2379", "endpoint", "health"); err != nil || !strings.Contains(out, "is healthy") {
			t.Fatalf("member %d: endpoint health: %v\n%s", m.Ordinal, err, out)
		}
		if len(m.Processes) != 1 || m.Processes[0].Name != "etcd" || m.Processes[0].State != "running" {
			t.Fatalf("member %d processes %+v", m.Ordinal, m.Processes)
		}
	}
	if out, err := etcdctl(t, "http://"+c.Members[0].IP+":2379", "put", "greeting", "hello from member 0"); err != nil {
		t.Fatalf("put: %v\n%s", err, out)
	}
	out, err := etcdctl(t, "http://"+c.Members[2].IP+":2379", "get", "greeting", "--print-value-only")
	if err != nil || strings.TrimSpace(out) != "hello from member 0" {
		t.Fatalf("get on member 2: %v\n%s", err, out)
	}
	out, err = etcdctl(t, "http://"+c.Members[1].IP+":2379", "member", "list")
	if err != nil || strings.Count(out, "started") != 3 {
		t.Fatalf("member list: %v\n%s", err, out)
	}

	// Labels say who each container is.
	cs, err := d.ListManaged(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, ct := range cs {
		ids[ct.Labels[ganger.LabelOrdinal]] = ct.ID
		if ct.Labels[ganger.LabelCluster] != "etcd" || ct.Labels[ganger.LabelIncarnation] == "" {
			t.Fatalf("container %s labels %v", ct.Name, ct.Labels)
		}
	}
	if len(ids) != 3 || ids["0"] == "" || ids["2"] == "" {
		t.Fatalf("containers by ordinal: %v", ids)
	}

	// kill -9 and start again: nothing is touched.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	p2 := clusterProc(t, path, port)
	dockertest.Eventually(t, time.Minute, "the cluster was not taken back", func() bool {
		return strings.Contains(p2.logs.String(), "cluster taken back")
	})
	after := waitCluster(t, api, token, "etcd", time.Minute, "settled again", settled(3))
	if after.Epoch != c.Epoch {
		t.Errorf("epoch %d after the restart; want %d (nothing changed)", after.Epoch, c.Epoch)
	}
	for i, m := range after.Members {
		was := c.Members[i]
		if m.Incarnation != was.Incarnation || m.Container != was.Container || m.IP != was.IP {
			t.Errorf("member %d: %+v after the restart; was %+v", i, m, was)
		}
	}
	cs, _ = d.ListManaged(context.Background(), node)
	if len(cs) != 3 || !slices.ContainsFunc(cs, func(m ganger.Managed) bool { return m.ID == ids["1"] && m.Running() }) {
		t.Fatalf("containers after the restart: %+v", cs)
	}
	var st struct {
		Processes []struct {
			Name     string `json:"name"`
			State    string `json:"state"`
			Restarts int    `json:"restarts"`
		} `json:"processes"`
	}
	if code := call(t, "GET", api+"/v1/clusters/etcd/members/1/processes", token, &st); code != 200 || len(st.Processes) != 1 || st.Processes[0].Restarts != 0 || st.Processes[0].State != "running" {
		t.Fatalf("member 1's processes through ganger-init: %d %+v", code, st)
	}
	if out, err := etcdctl(t, "http://"+c.Members[1].IP+":2379", "get", "greeting", "--print-value-only"); err != nil || strings.TrimSpace(out) != "hello from member 0" {
		t.Fatalf("get after the restart: %v\n%s", err, out)
	}
	_ = strconv.Itoa
}
