package bench

// mode: cluster (issue 14), measured end to end: the real ganger binary,
// members under the real ganger-init, etcd and Redis from the cluster
// image (make cluster-image), against Docker alone in the same run. The
// long-poll's own latency is measured in process, in internal/clusterd
// (BenchmarkClusterLongPoll).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
	"github.com/ganger-dev/ganger/internal/view"
)

// clusterImage holds etcd, etcdctl, redis-server, redis-cli and busybox
// FROM scratch (scripts/build-cluster-image.sh).
const clusterImage = "ganger-cluster:latest"

// clusterPoll is how often the benchmarks poll the API and the members.
const clusterPoll = 20 * time.Millisecond

// The cluster configurations of cmd/ganger's end-to-end tests
// (TestClusterEtcd, TestClusterRedisFailover: the Redis cluster alone).
const (
	etcdClusterYAML = `  - name: etcd
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
	redisClusterYAML = `  - name: redis
    mode: cluster
    image: %s
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
`
)

// clusterBench is what the cluster benchmarks share: the daemon with the
// cluster image, a node whose containers are removed after each use
// (members outlive Ganger by design), the ganger binary and a ganger-init
// of this benchmark's own, provided on the daemon before anything is
// timed and removed (volume and image) at the end.
type clusterBench struct {
	b    *testing.B
	d    *docker.Daemon
	node string
	bin  string
	init ganger.Init
}

func newClusterBench(b *testing.B) *clusterBench {
	ctx := context.Background()
	d := dockertest.Daemon(b)
	if err := d.EnsureImage(ctx, clusterImage, "never"); err != nil {
		b.Fatalf("%s: %v (make bench builds it: make cluster-image)", clusterImage, err)
	}
	cb := &clusterBench{b: b, d: d, node: dockertest.Node(b, d), bin: buildGanger(b), init: fleettest.BuildInit(b, true)}
	b.Cleanup(func() { // before dockertest.Node's check (cleanups run last first)
		cb.removeAll()
		exec.Command("docker", "-H", d.Host(), "volume", "rm", cb.init.Volume()).Run()
		exec.Command("docker", "-H", d.Host(), "image", "rm", cb.init.Image()).Run()
	})
	if err := d.EnsureInit(ctx, cb.init, cb.node); err != nil {
		b.Fatal(err)
	}
	return cb
}

// removeAll removes every container of the node, members and baselines,
// and waits until they are gone. Call it with Ganger stopped: it would
// start its members again.
func (cb *clusterBench) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := cb.d.ListManaged(ctx, cb.node)
	if err != nil {
		cb.b.Errorf("list the node's containers: %v", err)
		return
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			if err := cb.d.Remove(ctx, c.ID); err != nil {
				cb.b.Errorf("remove %s: %v", c.Name, err)
			}
		})
	}
	wg.Wait()
	// Member volumes (volumes: per_ordinal) carry the node's label; these
	// configurations make none, but one left would be ours.
	out, _ := exec.Command("docker", "-H", cb.d.Host(), "volume", "ls", "-q", "--filter", "label="+ganger.LabelOwner+"="+cb.node).Output()
	for _, v := range strings.Fields(string(out)) {
		exec.Command("docker", "-H", cb.d.Host(), "volume", "rm", "-f", v).Run()
	}
}

// plainSpec is a container of the cluster image as Docker alone would
// run it: on the default bridge as members are, the same ports published,
// the default service's limits, no ganger-init; labelled as the node's,
// so that removeAll and the node's check see it.
func (cb *clusterBench) plainSpec(name string, port int, publish []int, cmd ...string) ganger.Spec {
	def := config.DefaultService()
	return ganger.Spec{
		Name: fmt.Sprintf("ganger-bench-%s-%s", cb.node, name), Image: clusterImage, Port: port, Publish: publish, Cmd: cmd,
		Network: "bridge",
		Labels:  map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: cb.node, ganger.LabelService: "bench"},
		Limits: ganger.Limits{Memory: int64(def.Limits.Memory), NanoCPUs: 1e9, Pids: def.Limits.Pids, NoNewPrivileges: true,
			NoFile: def.Limits.NoFile, LogMaxSize: int64(def.Limits.Log.MaxSize), LogMaxFiles: def.Limits.Log.MaxFiles},
	}
}

// run creates and starts a container as Ganger does (the Docker API) and
// returns its id and address on its network.
func (cb *clusterBench) run(spec ganger.Spec) (id, ip string) {
	id, ip, err := cb.tryRun(spec)
	if err != nil {
		cb.b.Fatal(err)
	}
	return id, ip
}

// tryRun is run for another goroutine than the benchmark's.
func (cb *clusterBench) tryRun(spec ganger.Spec) (id, ip string, err error) {
	ctx := context.Background()
	if id, err = cb.d.Create(ctx, spec); err != nil {
		return "", "", err
	}
	if _, err = cb.d.Start(ctx, id, spec.Port); err != nil {
		return id, "", err
	}
	ni, err := cb.d.NetInfo(ctx, id)
	return id, ni.IP, err
}

// stampLog keeps a process's output and when each line came.
type stampLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	lines   []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (l *stampLog) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, stampedLine{now, string(l.partial[:i])})
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// first is when the first line holding all of ss came.
func (l *stampLog) first(ss ...string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if !slices.ContainsFunc(ss, func(s string) bool { return !strings.Contains(x.text, s) }) {
			return x.at, true
		}
	}
	return time.Time{}, false
}

// nth is when the n-th line holding s came.
func (l *stampLog) nth(n int, s string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x.text, s) {
			if n--; n == 0 {
				return x.at, true
			}
		}
	}
	return time.Time{}, false
}

func (l *stampLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// clusterGanger is `ganger serve` running cluster services, its API on
// a wildcard address (members reach it through their network's gateway).
type clusterGanger struct {
	b       *testing.B
	cmd     *exec.Cmd
	logs    *stampLog
	api     string
	started time.Time // just before the process started
	exited  chan struct{}
	stop    sync.Once
}

// startClusterGanger writes a fresh configuration (and so a fresh store)
// and starts ganger on it; it returns at once. services is the YAML of
// the services list.
func (cb *clusterBench) startGanger(services string) *clusterGanger {
	dir := cb.b.TempDir()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		cb.b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf("node: %s\ninit_binary: %q\napi: {listen: \"0.0.0.0:%d\", token: %s}\nservices:\n%s",
		cb.node, cb.init.Binary, port, adminToken, services)
	path := filepath.Join(dir, "ganger.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		cb.b.Fatal(err)
	}
	g := &clusterGanger{b: cb.b, logs: &stampLog{}, api: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	g.cmd = exec.Command(cb.bin, "serve", "--config", path)
	g.cmd.Stderr = g.logs
	g.started = time.Now()
	if err := g.cmd.Start(); err != nil {
		cb.b.Fatal(err)
	}
	go func() { g.cmd.Wait(); close(g.exited) }()
	cb.b.Cleanup(g.Stop)
	return g
}

// Stop stops ganger as an operator would (SIGTERM; SIGKILL after a
// minute); its members keep running. Once.
func (g *clusterGanger) Stop() {
	g.stop.Do(func() {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.exited:
			case <-time.After(time.Minute):
				g.cmd.Process.Kill()
				<-g.exited
			}
		}
		if g.b.Failed() {
			g.b.Logf("ganger's log:\n%s", g.logs)
		}
	})
}

var (
	clusterClient = &http.Client{Timeout: 10 * time.Second}
	probeClient   = &http.Client{Timeout: time.Second}
)

// cluster is GET /v1/clusters/{name}; ok false while the API does not
// answer yet.
func (g *clusterGanger) cluster(name string) (view.Cluster, bool) {
	select {
	case <-g.exited:
		g.b.Fatalf("ganger exited: %v\n%s", g.cmd.ProcessState, g.logs)
	default:
	}
	req, _ := http.NewRequest("GET", g.api+"/v1/clusters/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := clusterClient.Do(req)
	if err != nil {
		return view.Cluster{}, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var c view.Cluster
	if resp.StatusCode != 200 || json.Unmarshal(body, &c) != nil {
		return view.Cluster{}, false
	}
	return c, true
}

// settledCluster: size members, all running and configured (acked) for
// the current epoch, all ready, nothing pending, a leader.
func settledCluster(c view.Cluster, size int) bool {
	if len(c.Members) != size || c.Ready != size || c.Pending != "" || c.Leader == nil {
		return false
	}
	for _, m := range c.Members {
		if m.State != "running" || m.Acked != c.Epoch || m.IP == "" {
			return false
		}
	}
	return true
}

// every calls f every clusterPoll until it is true, and returns when it
// was; it fails the benchmark after timeout.
func every(b *testing.B, timeout time.Duration, what string, f func() bool) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(clusterPoll)
	}
}

// etcdHealthy is etcd's /health on ip: true once it has a leader and
// serves.
func etcdHealthy(ip string) bool {
	resp, err := probeClient.Get("http://" + net.JoinHostPort(ip, "2379") + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && bytes.Contains(body, []byte(`"health":"true"`))
}

// etcdAllHealthy probes every ip at once.
func etcdAllHealthy(ips []string) bool {
	ok := make([]bool, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		wg.Go(func() { ok[i] = etcdHealthy(ip) })
	}
	wg.Wait()
	return !slices.Contains(ok, false)
}

func etcdctlAt(ip string, args ...string) (string, error) {
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", "http://" + net.JoinHostPort(ip, "2379"), "--command-timeout", "10s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// etcdWorks is what a user checks of etcd on ips: `etcdctl endpoint
// health` on each (in parallel), then a key put on the first and read on
// the last (the same one for a single node).
func etcdWorks(ips []string, key string) error {
	errs := make([]error, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		wg.Go(func() {
			if out, err := etcdctlAt(ip, "endpoint", "health"); err != nil || !strings.Contains(out, "is healthy") {
				errs[i] = fmt.Errorf("%s: endpoint health: %v %s", ip, err, out)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if out, err := etcdctlAt(ips[0], "put", key, "v"); err != nil {
		return fmt.Errorf("put on %s: %v %s", ips[0], err, out)
	}
	out, err := etcdctlAt(ips[len(ips)-1], "get", key, "--print-value-only")
	if err != nil || strings.TrimSpace(out) != "v" {
		return fmt.Errorf("get on %s: %v %q", ips[len(ips)-1], err, out)
	}
	return nil
}

// BenchmarkClusterForm: the time to a working 3-member etcd cluster
// through Ganger, the real binary and ganger-init, with the configuration
// of cmd/ganger's TestClusterEtcd (damper 500ms, sequential rollout):
// from `ganger serve`'s start (a fresh store: a new cluster) to every
// member healthy by etcd's /health (the three probed at once every 20ms
// once the API shows their addresses), then `etcdctl endpoint health` on
// each and a key put on member 0 read on member 2. Given too, from the
// same start: the "cluster starting" log line, the third "member started"
// (containers running), the third member's first configured report (its
// etcd started and listening: what Ganger does is done, the rest is
// etcd's election), and the API's settled status (polled every 20ms on
// its own). Baseline, in the same run and each iteration: 3 single-node
// etcds of the same image, created and started in parallel through the
// Docker API (as Ganger does; no ganger-init), until each listens
// (dialled every 5ms: against Ganger's "configured", what Ganger adds to
// getting the processes going), then until each is healthy by /health,
// then the same etcdctl checks (endpoint health on each, a put and get on
// each). A single-node etcd waits out its election timeout before it
// leads itself, where three fresh peers elect as soon as they meet: the
// ratio of "working" holds that difference of etcd's. Teardown, never timed: Ganger stopped, every
// container of the node removed. Each iteration is a full form and
// teardown of each.
func BenchmarkClusterForm(b *testing.B) {
	cb := newClusterBench(b)
	var form, fromLog, started, configured, toSettled, base, baseStarted, baseListening []time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Through Ganger.
		g := cb.startGanger(fmt.Sprintf(etcdClusterYAML, clusterImage))
		ipsc := make(chan []string, 1)
		settledc := make(chan time.Time, 1)
		stop := make(chan struct{})
		go func() { // the API, polled on its own
			sent := false
			for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(clusterPoll) {
				select {
				case <-stop:
					return
				default:
				}
				c, ok := g.cluster("etcd")
				if !ok {
					continue
				}
				if !sent && len(c.Members) == 3 && !slices.ContainsFunc(c.Members, func(m view.ClusterMember) bool { return m.State != "running" || m.IP == "" }) {
					ipsc <- []string{c.Members[0].IP, c.Members[1].IP, c.Members[2].IP}
					sent = true
				}
				if settledCluster(c, 3) {
					settledc <- time.Now()
					return
				}
			}
		}()
		var ips []string
		select {
		case ips = <-ipsc:
		case <-time.After(3 * time.Minute):
			b.Fatalf("the members never ran:\n%s", g.logs)
		}
		var lastErr error
		healthyAt := every(b, 3*time.Minute, "the etcd cluster working", func() bool {
			if !etcdAllHealthy(ips) {
				return false
			}
			lastErr = etcdWorks(ips, fmt.Sprint("k", i))
			return lastErr == nil
		})
		var settledAt time.Time
		select {
		case settledAt = <-settledc:
		case <-time.After(3 * time.Minute):
			close(stop)
			b.Fatalf("the cluster works but never settled in the API:\n%s", g.logs)
		}
		starting, ok1 := g.logs.first(`msg="cluster starting"`)
		third, ok2 := g.logs.nth(3, `msg="member started"`)
		ok3, conf := true, time.Time{}
		for o := range 3 {
			t, ok := g.logs.first(`msg="member reported"`, fmt.Sprintf(" ordinal=%d ", o), "state=configured")
			ok3 = ok3 && ok
			if t.After(conf) {
				conf = t
			}
		}
		if !ok1 || !ok2 || !ok3 {
			b.Fatalf("log lines missing (cluster starting %v, member started %v, configured %v):\n%s", ok1, ok2, ok3, g.logs)
		}
		form = append(form, healthyAt.Sub(g.started))
		fromLog = append(fromLog, healthyAt.Sub(starting))
		started = append(started, third.Sub(g.started))
		configured = append(configured, conf.Sub(g.started))
		toSettled = append(toSettled, settledAt.Sub(g.started))
		b.StopTimer()
		g.Stop()
		cb.removeAll()
		b.StartTimer()

		// Docker alone: 3 single-node etcds.
		t0 := time.Now()
		ipc := make([]string, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for k := range 3 {
			wg.Go(func() {
				_, ipc[k], errs[k] = cb.tryRun(cb.plainSpec(fmt.Sprintf("etcd-%d-%d", i, k), 2379, []int{2379, 2380},
					"/usr/bin/etcd", "--data-dir", "/tmp/etcd", "--listen-client-urls", "http://0.0.0.0:2379",
					"--advertise-client-urls", "http://127.0.0.1:2379"))
			})
		}
		wg.Wait()
		baseStarted = append(baseStarted, time.Since(t0))
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if !slices.ContainsFunc(ipc, func(ip string) bool {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "2379"), time.Second)
				if err == nil {
					c.Close()
				}
				return err != nil
			}) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the single etcds never listened")
			}
		}
		baseListening = append(baseListening, time.Since(t0))
		every(b, time.Minute, "the single etcds healthy", func() bool { return etcdAllHealthy(ipc) })
		for k := range 3 {
			if err := etcdWorks(ipc[k:k+1], fmt.Sprint("k", i)); err != nil {
				b.Fatalf("single etcd %d: %v", k, err)
			}
		}
		base = append(base, time.Since(t0))
		b.StopTimer()
		cb.removeAll()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(median(form).Milliseconds()), "ganger-ms")
	b.ReportMetric(float64(median(base).Milliseconds()), "baseline-ms")
	b.ReportMetric(float64(median(form))/float64(median(base)), "ratio")
	b.ReportMetric(float64(median(configured).Milliseconds()), "listening-ms")
	b.ReportMetric(float64(median(baseListening).Milliseconds()), "baseline-listening-ms")
	if b.N == 1 {
		return // the calibration run
	}
	line := func(what string, d []time.Duration) {
		fmt.Printf("  %-62s p50 %s p90 %s max %s %v\n", what, ms(median(d)), ms(pct(d, 90)), ms(pct(d, 100)), msList(d))
	}
	fmt.Printf("cluster form, 3-member etcd through Ganger (damper 500ms) vs 3 single etcds through the Docker API (n=%d each):\n", b.N)
	line("ganger start -> 3 member containers started:", started)
	line("ganger start -> 3 etcds started and listening (configured):", configured)
	line("ganger start -> API settled (all configured, ready 3):", toSettled)
	line("ganger start -> working (healthy, etcdctl health, put/get):", form)
	line("\"cluster starting\" -> working:", fromLog)
	line("baseline, 3 single etcds -> containers started:", baseStarted)
	line("baseline, 3 single etcds -> listening (dialled every 5ms):", baseListening)
	line("baseline, 3 single etcds -> working:", base)
	fmt.Printf("  ratio of medians, working: %.2f (from \"cluster starting\": %.2f); to the etcds listening: %.2f (Ganger adds %s)\n",
		float64(median(form))/float64(median(base)), float64(median(fromLog))/float64(median(base)),
		float64(median(configured))/float64(median(baseListening)), ms(median(configured)-median(baseListening)))
}

// redisRole is the role line of INFO replication, and whether a replica's
// link to its primary is up.
func redisRole(ip string) (role, master string, linkUp bool) {
	out, _ := exec.Command("redis-cli", "-h", ip, "info", "replication").Output()
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "role:"):
			role = strings.TrimPrefix(l, "role:")
		case strings.HasPrefix(l, "master_host:"):
			master = strings.TrimPrefix(l, "master_host:")
		case l == "master_link_status:up":
			linkUp = true
		}
	}
	return role, master, linkUp
}

// redisPing sends PING to addr and wants +PONG.
func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	return strings.HasPrefix(string(buf[:n]), "+PONG")
}

// BenchmarkClusterFailover: on a settled 3-member Redis cluster (primary
// and replicas; the configuration of cmd/ganger's
// TestClusterRedisFailover: damper 300ms, min_ready 2), `docker kill` of
// a member's container, to the cluster reconfigured: settled again (the
// killed ordinal held by a new incarnation, every member running and
// configured for the current epoch, ready 3, nothing pending, at an epoch
// newer than the kill's), the API polled every 20ms from the kill. Each
// iteration kills a replica (the ordinals in turn) and, once the cluster
// is settled and replicating again (checked untimed), the leader (the
// primary). The time to Ganger noticing (the member replaced in the API)
// is given too, and how often the killed leader's replacement (a fresh,
// empty Redis) came back as the leader: it should never. Baseline in the same run: `docker kill` of a plain
// redis-server container of the same image, then a fresh one created and
// started through the Docker API until it answers PING (polled every
// 20ms): what Docker alone takes to put a killed server back. Ganger's
// figure holds its damper (once or twice: the member leaves the view, the
// new one joins it) and the new member's start under ganger-init and its
// report.
func BenchmarkClusterFailover(b *testing.B) {
	cb := newClusterBench(b)
	g := cb.startGanger(fmt.Sprintf(redisClusterYAML, clusterImage))
	var c view.Cluster
	get := func() view.Cluster {
		v, ok := g.cluster("redis")
		if !ok {
			return view.Cluster{}
		}
		return v
	}
	// replicating: the settled cluster's Redis follows its leader.
	replicating := func(c view.Cluster) {
		lead := c.Members[*c.Leader]
		dockertest.Eventually(b, time.Minute, "the replicas never followed the primary", func() bool {
			for _, m := range c.Members {
				role, master, up := redisRole(m.IP)
				if m.Ordinal == lead.Ordinal && role != "master" || m.Ordinal != lead.Ordinal && (role != "slave" || master != lead.IP || !up) {
					return false
				}
			}
			return true
		})
	}
	every(b, 3*time.Minute, "the redis cluster formed", func() bool { c = get(); return settledCluster(c, 3) })
	replicating(c)

	// failover kills the member with ordinal o and times the cluster's
	// return to settled, at a newer epoch.
	failover := func(o int) (noticed, settled time.Duration) {
		victim := c.Members[o]
		t0 := time.Now()
		if out, err := exec.Command("docker", "-H", cb.d.Host(), "kill", victim.Container).CombinedOutput(); err != nil {
			b.Fatalf("docker kill: %v\n%s", err, out)
		}
		var seen time.Time
		before := c.Epoch
		every(b, 3*time.Minute, "settled after the kill", func() bool {
			c = get()
			if len(c.Members) <= o || c.Members[o].Incarnation == victim.Incarnation {
				return false
			}
			if seen.IsZero() {
				seen = time.Now()
			}
			// At a new epoch: the view that has the replacement (the
			// first builds of this benchmark released a replacement on
			// its predecessor's epoch, and the API showed it settled).
			return c.Epoch > before && settledCluster(c, 3)
		})
		settled = time.Since(t0)
		b.StopTimer()
		replicating(c)
		b.StartTimer()
		return seen.Sub(t0), settled
	}
	var replica, leader, replicaSeen, leaderSeen, base []time.Duration
	freshLead := 0 // leader kills after which the killed ordinal's replacement leads
	redisCmd := []string{"/usr/bin/redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"}
	b.ResetTimer()
	for i := range b.N {
		// A replica: the ordinals but the leader's, in turn.
		var others []int
		for _, m := range c.Members {
			if m.Ordinal != *c.Leader {
				others = append(others, m.Ordinal)
			}
		}
		seen, took := failover(others[i%len(others)])
		replica, replicaSeen = append(replica, took), append(replicaSeen, seen)

		// Docker alone: a plain redis-server killed, a fresh one run.
		b.StopTimer()
		old, oldIP := cb.run(cb.plainSpec(fmt.Sprintf("redis-%d-a", i), 6379, []int{6379}, redisCmd...))
		every(b, time.Minute, "a redis-server answered PING", func() bool { return redisPing(net.JoinHostPort(oldIP, "6379")) })
		b.StartTimer()
		t0 := time.Now()
		if out, err := exec.Command("docker", "-H", cb.d.Host(), "kill", old).CombinedOutput(); err != nil {
			b.Fatalf("docker kill: %v\n%s", err, out)
		}
		fresh, ip := cb.run(cb.plainSpec(fmt.Sprintf("redis-%d-b", i), 6379, []int{6379}, redisCmd...))
		every(b, time.Minute, "a fresh redis-server answered PING", func() bool { return redisPing(net.JoinHostPort(ip, "6379")) })
		base = append(base, time.Since(t0))
		b.StopTimer()
		cb.d.Remove(context.Background(), old)
		cb.d.Remove(context.Background(), fresh)
		b.StartTimer()

		// The leader.
		killed := *c.Leader
		seen, took = failover(killed)
		leader, leaderSeen = append(leader, took), append(leaderSeen, seen)
		if *c.Leader == killed {
			freshLead++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(median(replica).Milliseconds()), "replica-ms")
	b.ReportMetric(float64(median(leader).Milliseconds()), "leader-ms")
	b.ReportMetric(float64(median(base).Milliseconds()), "baseline-ms")
	b.ReportMetric(float64(median(replica))/float64(median(base)), "replica-ratio")
	b.ReportMetric(float64(median(leader))/float64(median(base)), "leader-ratio")
	if b.N == 1 {
		return // the calibration run
	}
	fmt.Printf("cluster failover, 3-member Redis through Ganger (damper 300ms), docker kill -> settled again, API polled every 20ms (n=%d each):\n", b.N)
	fmt.Printf("  a replica killed: settled p50 %s max %s %v (Ganger shows it replaced: p50 %s %v)\n", ms(median(replica)), ms(pct(replica, 100)), msList(replica), ms(median(replicaSeen)), msList(replicaSeen))
	fmt.Printf("  the leader killed: settled p50 %s max %s %v (Ganger shows it replaced: p50 %s %v)\n", ms(median(leader)), ms(pct(leader, 100)), msList(leader), ms(median(leaderSeen)), msList(leaderSeen))
	fmt.Printf("  after %d of %d leader kills, the killed ordinal's fresh replacement (an empty Redis) was the new leader\n", freshLead, b.N)
	fmt.Printf("  baseline, docker kill + a fresh redis-server through the Docker API -> PONG: p50 %s max %s\n", ms(median(base)), ms(pct(base, 100)))
	fmt.Printf("  ratio of medians: replica %.2f, leader %.2f; Ganger adds %s / %s\n",
		float64(median(replica))/float64(median(base)), float64(median(leader))/float64(median(base)),
		ms(median(replica)-median(base)), ms(median(leader)-median(base)))
}
