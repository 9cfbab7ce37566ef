package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	out, _ := exec.Command("docker", "volume", "ls", "-q", "--filter", "label="+ganger.LabelOwner+"="+node).Output()
	for _, v := range strings.Fields(string(out)) {
		exec.Command("docker", "volume", "rm", "-f", v).Run()
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

	// The CLI and the status page show it; a member's process is
	// restarted, and its output read, through Ganger.
	ctlRun := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"ctl", "--api", api, "--token", token}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ganger ctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := ctlRun("clusters"); !regexp.MustCompile(`etcd\s+` + strconv.FormatInt(c.Epoch, 10) + `\s+0\s+3\s+3`).MatchString(out) {
		t.Errorf("ctl clusters:\n%s", out)
	}
	if out := ctlRun("cluster", "etcd"); !strings.Contains(out, "leader 0, 3/3 ready") || strings.Count(out, "etcd=running") != 3 {
		t.Errorf("ctl cluster etcd:\n%s", out)
	}
	if out := ctlRun("cluster", "logs", "etcd", "2", "etcd", "200"); !strings.Contains(out, "etcd") {
		t.Errorf("ctl cluster logs:\n%s", out)
	}
	ctlRun("cluster", "restart", "etcd", "2", "etcd")
	dockertest.Eventually(t, time.Minute, "member 2's etcd did not come back after its restart", func() bool {
		out, err := etcdctl(t, "http://"+c.Members[2].IP+":2379", "get", "greeting", "--print-value-only")
		return err == nil && strings.TrimSpace(out) == "hello from member 0"
	})
	if out := ctlRun("cluster", "etcd"); !strings.Contains(out, "ORDINAL") {
		t.Errorf("ctl cluster etcd after the restart:\n%s", out)
	}
	var page strings.Builder
	req, _ := http.NewRequest("GET", api+"/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(&page, resp.Body)
		resp.Body.Close()
	}
	if !strings.Contains(page.String(), `data-cluster="etcd"`) || !strings.Contains(page.String(), "epoch "+strconv.FormatInt(c.Epoch, 10)) {
		t.Errorf("the status page shows no cluster etcd at epoch %d", c.Epoch)
	}
	var metrics strings.Builder
	req, _ = http.NewRequest("GET", api+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(&metrics, resp.Body)
		resp.Body.Close()
	}
	for _, want := range []string{`ganger_cluster_members{cluster="etcd",ready="true",state="running"} 3`, `ganger_cluster_epoch{cluster="etcd"} ` + strconv.FormatInt(c.Epoch, 10)} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := call(t, "GET", api+"/v1/clusters/etcd/members/1/view", "not-its-token", nil); code != 401 {
		t.Errorf("a member's view with a wrong token: %d; want 401", code)
	}
	if code := call(t, "GET", api+"/v1/clusters/nope", token, nil); code != 404 {
		t.Errorf("an unknown cluster: %d; want 404", code)
	}
	if code := callBody(t, "POST", api+"/v1/clusters/etcd/scale", token, `{"size": -1}`, nil); code != 400 {
		t.Errorf("scale to -1: %d; want 400", code)
	}
	if code := callBody(t, "POST", api+"/v1/clusters/etcd/scale", "", `{"size": 5}`, nil); code != 401 {
		t.Errorf("scale without a token: %d; want 401", code)
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
}

const redisCluster = `node: %s
api: {listen: "0.0.0.0:%d", token: %s}
services:
  - name: redis
    mode: cluster
    image: %[4]s
    ports: [6379]
    init: ganger
    cluster: {size: 3, min_ready: 2, damper: 300ms}
    init_config:
      files:
        /conf/redis.conf: |
          port 6379
          bind 0.0.0.0
          protected-mode no
          dir /tmp
          save ""
          appendonly no
          {{if and .Leader (ne .Leader.Ordinal .Self.Ordinal)}}replicaof {{.Leader.IP}} 6379{{end}}
        /conf/role.sh: |
          n=0
          until redis-cli {{if and .Leader (ne .Leader.Ordinal .Self.Ordinal)}}replicaof {{.Leader.IP}} 6379{{else}}replicaof no one{{end}}; do
            n=$((n+1)); [ $n -ge 50 ] && exit 1; sleep 0.1
          done
      on_change: {command: ["/bin/sh", "/conf/role.sh"]}
      processes:
        redis: {cmd: ["/usr/bin/redis-server", "/conf/redis.conf"], ready: {tcp: "127.0.0.1:6379"}}
  - name: app
    mode: cluster
    image: %[4]s
    init: ganger
    cluster: {size: 1, damper: 300ms, depends_on: [{cluster: redis, min_ready: 3}]}
    init_config:
      files:
        /conf/redis-peers: "{{range .Deps.redis.Peers}}{{.IP}} {{end}}"
      processes:
        app: {cmd: ["/bin/sh", "-c", "echo redis peers: $(cat /conf/redis-peers); exec sleep 100000"]}
`

// callBody is call with a JSON body ("" for none).
func callBody(t *testing.T, method, url, bearer, body string, v any) int {
	t.Helper()
	var in io.Reader
	if body != "" {
		in = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, in)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

// redisDo runs one command on the Redis at addr and returns its reply's
// first line (a bulk string's value).
func redisDo(addr string, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s\r\n", cmd)
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\r\n"), "\r\n")
	if strings.HasPrefix(lines[0], "$") && len(lines) > 1 {
		return lines[1], nil
	}
	return lines[0], nil
}

// A Redis primary with two replicas, configured from the cluster's view
// (the leader is the primary; the others replicaof it, set again by
// on_change when the leader moves), and a cluster that depends on it. The
// dependent starts its process only once Redis has 3 ready members, with
// their addresses rendered. Scaling 3 → 5 → 3 adds and removes one member
// at a time while the primary answers throughout. Killing the primary's
// container makes the next member the primary, the others follow it, and
// the data written before is still there.
func TestClusterRedisFailover(t *testing.T) {
	d, node := clusterDaemon(t)
	port := freePort(t)
	api := fmt.Sprintf("http://127.0.0.1:%d", port)
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(redisCluster, node, port, token, clusterImage)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := clusterProc(t, path, port)
	c := waitCluster(t, api, token, "redis", 2*time.Minute, "formed", settled(3))
	// The leader is the first member ready: 0 unless, under load, 0
	// started after min_ready others had formed the first epoch (the lead
	// is sticky from then on).
	leader := c.Members[*c.Leader]
	primary := leader.IP + ":6379"
	t.Logf("formed: leader %d at epoch %d", leader.Ordinal, c.Epoch)
	dockertest.Eventually(t, 30*time.Second, "the replicas never followed the primary", func() bool {
		for _, m := range c.Members {
			if m.Ordinal == leader.Ordinal {
				continue
			}
			info, _ := exec.Command("redis-cli", "-h", m.IP, "info", "replication").Output()
			if !strings.Contains(string(info), "master_host:"+leader.IP) || !strings.Contains(string(info), "master_link_status:up") {
				return false
			}
		}
		return true
	})
	if got, err := redisDo(primary, "SET greeting hello"); err != nil || got != "+OK" {
		t.Fatalf("SET on the primary: %q, %v", got, err)
	}
	if got, err := redisDo(primary, "WAIT 2 5000"); err != nil || got != ":2" {
		for _, m := range c.Members {
			info, _ := exec.Command("redis-cli", "-h", m.IP, "info", "replication").Output()
			t.Logf("member %d (%s): %s", m.Ordinal, m.IP, info)
		}
		t.Fatalf("WAIT for both replicas: %q, %v", got, err)
	}

	// The dependent configured only with Redis's 3 ready members.
	app := waitCluster(t, api, token, "app", time.Minute, "configured", settled(1))
	if len(app.DependsOn) != 1 || app.DependsOn[0].Ready != 3 {
		t.Fatalf("app's dependency: %+v", app.DependsOn)
	}
	var logs struct{ Lines []string }
	dockertest.Eventually(t, 10*time.Second, "app's process printed nothing", func() bool {
		call(t, "GET", api+"/v1/clusters/app/members/0/processes/app/log", token, &logs)
		return len(logs.Lines) > 0
	})
	for _, m := range c.Members {
		if !strings.Contains(logs.Lines[0], m.IP) {
			t.Fatalf("app's rendered peers %q lack redis member %d (%s)", logs.Lines[0], m.Ordinal, m.IP)
		}
	}
	if !regexp.MustCompile(`msg="member reported" component=clusters cluster=app ordinal=0 incarnation=1 epoch=\d+ state=waiting`).MatchString(p.logs.String()) {
		t.Errorf("app's member never reported waiting before Redis was ready")
	}

	// Scale 3 → 5 → 3 while the primary answers.
	stop := make(chan struct{})
	pings := make(chan [2]int, 1)
	go func() {
		ok, failed := 0, 0
		for {
			select {
			case <-stop:
				pings <- [2]int{ok, failed}
				return
			case <-time.After(100 * time.Millisecond):
			}
			if got, err := redisDo(primary, "GET greeting"); err == nil && got == "hello" {
				ok++
			} else {
				failed++
				t.Logf("GET on the primary while scaling: %q, %v", got, err)
			}
		}
	}()
	scale := func(n int) {
		req := fmt.Sprintf(`{"size": %d}`, n)
		if code := callBody(t, "POST", api+"/v1/clusters/redis/scale", token, req, nil); code != 200 {
			t.Fatalf("scale to %d: %d", n, code)
		}
	}
	scale(5)
	five := waitCluster(t, api, token, "redis", 2*time.Minute, "at 5", settled(5))
	for _, m := range five.Members[3:] {
		dockertest.Eventually(t, 30*time.Second, "a new replica never had the data", func() bool {
			got, _ := redisDo(m.IP+":6379", "GET greeting")
			return got == "hello"
		})
	}
	scale(3)
	three := waitCluster(t, api, token, "redis", 2*time.Minute, "back at 3", settled(3))
	close(stop)
	counts := <-pings
	if counts[1] != 0 || counts[0] == 0 {
		t.Errorf("the primary answered %d GETs and failed %d while scaling; want none failed", counts[0], counts[1])
	}
	for i, m := range three.Members {
		if m.Incarnation != c.Members[i].Incarnation {
			t.Errorf("member %d was replaced by the scaling: %+v", i, m)
		}
	}
	dockertest.Eventually(t, 30*time.Second, "the scaled-away members' containers are still there", func() bool {
		cs, _ := d.ListManaged(context.Background(), node)
		n := 0
		for _, ct := range cs {
			if ct.Labels[ganger.LabelCluster] == "redis" {
				n++
			}
		}
		return n == 3
	})

	// Kill the primary's container.
	if out, err := exec.Command("docker", "kill", leader.Container).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v\n%s", err, out)
	}
	failover := waitCluster(t, api, token, "redis", 2*time.Minute, "failed over", func(v view.Cluster) bool {
		return settled(3)(v) && v.Members[leader.Ordinal].Incarnation != leader.Incarnation && v.Members[*v.Leader].Incarnation != leader.Incarnation
	})
	now := failover.Members[*failover.Leader]
	t.Logf("after the kill: leader %d (%s), epoch %d", now.Ordinal, now.IP, failover.Epoch)
	dockertest.Eventually(t, 30*time.Second, "the data is not on the new primary", func() bool {
		got, _ := redisDo(now.IP+":6379", "GET greeting")
		return got == "hello"
	})
	final := waitCluster(t, api, token, "redis", 2*time.Minute, "settled after the failover", settled(3))
	lead := final.Members[*final.Leader]
	t.Cleanup(func() {
		if t.Failed() {
			last := getCluster(t, api, token, "redis")
			t.Logf("last: epoch %d leader %v members %+v", last.Epoch, *last.Leader, last.Members)
			for _, m := range last.Members {
				info, _ := exec.Command("redis-cli", "-h", m.IP, "info", "replication").Output()
				t.Logf("member %d (%s): %s", m.Ordinal, m.IP, info)
			}
		}
	})
	dockertest.Eventually(t, 30*time.Second, "the members do not all follow the leader", func() bool {
		for _, m := range final.Members {
			info, _ := exec.Command("redis-cli", "-h", m.IP, "info", "replication").Output()
			want := "role:slave"
			if m.Ordinal == lead.Ordinal {
				want = "role:master"
			}
			if !strings.Contains(string(info), want) {
				return false
			}
			if got, _ := redisDo(m.IP+":6379", "GET greeting"); got != "hello" {
				return false
			}
		}
		return true
	})
	if got, err := redisDo(lead.IP+":6379", "SET after failover"); err != nil || got != "+OK" {
		t.Fatalf("SET on the leader after the failover: %q, %v", got, err)
	}
}

// A burst of changes within the damper makes one epoch: five members
// replaced within a second, each gone and back, are published once.
func TestClusterBurstIsOneEpoch(t *testing.T) {
	_, node := clusterDaemon(t)
	port := freePort(t)
	api := fmt.Sprintf("http://127.0.0.1:%d", port)
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	y := fmt.Sprintf(`node: %s
api: {listen: "0.0.0.0:%d", token: %s}
services:
  - name: burst
    mode: cluster
    image: %s
    init: ganger
    cluster: {size: 6, rollout: parallel, damper: 8s, volumes: per_ordinal}
    init_config:
      files:
        /conf/peers: "{{range .Peers}}{{.Ordinal}}/{{.Incarnation}} {{end}}"
      processes:
        idle: {cmd: ["/bin/sh", "-c", "echo start >> /data/starts; echo starts: $(grep -c start /data/starts); exec sleep 100000"]}
`, node, port, token, clusterImage)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	clusterProc(t, path, port)
	before := waitCluster(t, api, token, "burst", 3*time.Minute, "formed", settled(6))
	t0 := time.Now()
	for o := 1; o <= 5; o++ {
		if code := call(t, "POST", fmt.Sprintf("%s/v1/clusters/burst/members/%d/replace", api, o), token, nil); code != 202 {
			t.Fatalf("replace %d: %d", o, code)
		}
	}
	t.Logf("5 replacements asked within %s", time.Since(t0).Round(time.Millisecond))
	after := waitCluster(t, api, token, "burst", 2*time.Minute, "settled after the burst", func(c view.Cluster) bool {
		if !settled(6)(c) {
			return false
		}
		for o := 1; o <= 5; o++ {
			if c.Members[o].Incarnation == before.Members[o].Incarnation {
				return false
			}
		}
		return true
	})
	if after.Epoch != before.Epoch+1 {
		t.Fatalf("epoch %d → %d after a burst of 5 changes; want one new epoch", before.Epoch, after.Epoch)
	}
	if after.Members[0].Incarnation != before.Members[0].Incarnation || *after.Leader != 0 {
		t.Fatalf("member 0 or the leader changed: %+v", after.Members[0])
	}
	// Each replacement found its ordinal's volume: its second start.
	for _, o := range []int{0, 3} {
		var lg struct{ Lines []string }
		want := map[int]string{0: "starts: 1", 3: "starts: 2"}[o]
		dockertest.Eventually(t, 10*time.Second, fmt.Sprintf("member %d's log never said %q", o, want), func() bool {
			call(t, "GET", fmt.Sprintf("%s/v1/clusters/burst/members/%d/processes/idle/log", api, o), token, &lg)
			return slices.Contains(lg.Lines, want)
		})
	}
	out, _ := exec.Command("docker", "volume", "ls", "-q", "--filter", "label="+ganger.LabelOwner+"="+node).Output()
	if n := len(strings.Fields(string(out))); n != 6 {
		t.Fatalf("%d volumes of the node; want 6, one per ordinal:\n%s", n, out)
	}
}
