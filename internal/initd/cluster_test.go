package initd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/initd"
	"github.com/ganger-dev/ganger/internal/initproto"
)

const clusterHead = "processes:\n  zk: {cmd: [x]}\n"

// Every mistake in files, on_change and cluster is named with its key and
// line.
func TestClusterConfigErrors(t *testing.T) {
	ok := "cluster: {api: \"http://ganger:7070\", name: zk, ordinal: 0}\n"
	for _, tc := range []struct{ yaml, want string }{
		{clusterHead + ok + "files:\n  /conf/a: \"{{.Self.IP\"\n", "init.yaml:5: files./conf/a: template: /conf/a:1: unclosed action"},
		{clusterHead + ok + "files:\n  conf/a: x\n", "files.conf/a: want an absolute path"},
		{clusterHead + ok + "files:\n  /a: \"{{nope 1}}\"\n", "function \"nope\" not defined"},
		{clusterHead + ok + "on_change:\n  restart: [zk, zz]\n", "init.yaml:5: on_change.restart.1: no process \"zz\""},
		{clusterHead + ok + "on_change:\n  signal: {zk: HUPP}\n", "init.yaml:5: on_change.signal.zk: unknown signal \"HUPP\""},
		{clusterHead + ok + "on_change:\n  restart: [zk]\n  command: [x]\n", "init.yaml:4: on_change: want exactly one of restart, signal or command"},
		{clusterHead + "cluster: {api: \"ganger:7070\", name: zk, ordinal: 0}\n", "init.yaml:3: cluster.api: want an http:// URL"},
		{clusterHead + "cluster: {api: \"http://ganger:7070\", ordinal: 0}\n", "cluster.name: want the cluster's name"},
		{clusterHead + "cluster:\n  api: \"http://ganger:7070\"\n  name: zk\n  ordinal: -1\n", "init.yaml:6: cluster.ordinal: want the member's ordinal"},
		{clusterHead + "files:\n  /a: x\n", "files: files and on_change need cluster"},
	} {
		_, err := initd.ParseConfig("init.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.yaml, err, tc.want)
		}
	}
}

// The environment, set by Ganger per member, wins over the shared file,
// and makes ganger-init a member on its own.
func TestClusterEnv(t *testing.T) {
	t.Setenv("GANGER_CLUSTER_API", "http://ganger:7070")
	t.Setenv("GANGER_CLUSTER", "zk")
	t.Setenv("GANGER_ORDINAL", "2")
	cfg, err := initd.ParseConfig("init.yaml", []byte(clusterHead+"cluster: {name: other, ordinal: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cluster; c.API != "http://ganger:7070" || c.Name != "zk" || *c.Ordinal != 2 {
		t.Fatalf("got %+v; want the environment's", c)
	}
	cfg, err = initd.ParseConfig("init.yaml", []byte(clusterHead))
	if err != nil || cfg.Cluster == nil || *cfg.Cluster.Ordinal != 2 {
		t.Fatalf("without a cluster key: %+v, %v", cfg, err)
	}
}

// fakeGanger serves one member's view (cluster zk, ordinal 0) the way
// Ganger does: at once when the epoch is past after, else when the view
// changes, else after wait; and records the member's reports.
type fakeGanger struct {
	t       *testing.T
	url     string
	wait    time.Duration
	mu      sync.Mutex
	view    initproto.View
	changed chan struct{}
	reports []initproto.Report
	served  int // views answered
}

func newFakeGanger(t *testing.T, v initproto.View) *fakeGanger {
	f := &fakeGanger{t: t, wait: 200 * time.Millisecond, view: v, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/clusters/zk/members/0/view", f.serveView)
	mux.HandleFunc("POST /v1/clusters/zk/members/0/report", f.serveReport)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeGanger) serveView(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	f.mu.Lock()
	v, ch := f.view, f.changed
	wait := f.wait
	f.mu.Unlock()
	if v.Epoch <= after {
		select {
		case <-ch:
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		v = f.view
		f.mu.Unlock()
	}
	json.NewEncoder(w).Encode(v)
	f.mu.Lock()
	f.served++
	f.mu.Unlock()
}

func (f *fakeGanger) serveReport(w http.ResponseWriter, r *http.Request) {
	var rep initproto.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reports = append(f.reports, rep)
	f.mu.Unlock()
}

// set changes the view and wakes the polls.
func (f *fakeGanger) set(change func(v *initproto.View)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.view)
	close(f.changed)
	f.changed = make(chan struct{})
}

// report waits for a report of epoch in state.
func (f *fakeGanger) report(epoch int64, state string) initproto.Report {
	f.t.Helper()
	var got initproto.Report
	eventually(f.t, fmt.Sprintf("no %s report for epoch %d", state, epoch), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.reports {
			if r.Epoch == epoch && r.State == state {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// counts are the reports received and the views served.
func (f *fakeGanger) counts() (reports, served int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reports), f.served
}

// members are n members of zk, the first ready ones ready.
func members(n, ready int) []initproto.Member {
	var ms []initproto.Member
	for i := range n {
		ms = append(ms, initproto.Member{Ordinal: i, Name: "zk-" + strconv.Itoa(i), IP: "10.0.0." + strconv.Itoa(10+i), Ready: i < ready})
	}
	return ms
}

// memberConfig is a ganger-init config for member 0 of zk against f,
// rendering files into dir.
func memberConfig(t *testing.T, f *fakeGanger, dir, files, process string) string {
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("cluster: {api: %q, name: zk, ordinal: 0, token_file: %q}\nfiles:\n%s\non_change: {restart: [zk]}\nprocesses:\n  zk: {cmd: %s}\n",
		f.url, tok, files, process)
}

// A member waits for min_ready without starting anything, renders its
// files and starts its process once the view allows, ignores an epoch not
// released to it, and at a released one renders again and restarts its
// process; each step reported.
func TestClusterMember(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := initproto.View{Cluster: "zk", Epoch: 1, Peers: members(3, 1), MinReady: 3, Release: true}
	v.Self = v.Peers[0]
	f := newFakeGanger(t, v)
	zoo, pids := filepath.Join(dir, "conf", "zoo.cfg"), filepath.Join(dir, "pids")
	files := fmt.Sprintf("  %s: |\n    clientPort=2181\n    {{range .Peers}}server.{{add .Ordinal 1}}={{.IP}}:2888:3888\n    {{end}}epoch={{.Epoch}} myid={{add .Self.Ordinal 1}}\n", zoo)
	// The process shows it started after the rendering: it reads the file.
	proc := fmt.Sprintf(`["sh", "-c", "head -1 %s > /dev/null && echo $$ >> %s && exec sleep 1000"]`, zoo, pids)
	r, _ := config(t, memberConfig(t, f, dir, files, proc))

	w := f.report(1, "waiting")
	if !strings.Contains(w.Reason, "1 of 3") {
		t.Fatalf("waiting reason %q", w.Reason)
	}
	if _, err := os.Stat(pids); err == nil {
		t.Fatalf("a process started before min_ready\n%s", r.out)
	}

	f.set(func(v *initproto.View) { v.Peers = members(3, 3); v.Self = v.Peers[0] })
	rep := f.report(1, "configured")
	want := "clientPort=2181\nserver.1=10.0.0.10:2888:3888\nserver.2=10.0.0.11:2888:3888\nserver.3=10.0.0.12:2888:3888\nepoch=1 myid=1\n"
	if b, _ := os.ReadFile(zoo); string(b) != want {
		t.Fatalf("zoo.cfg:\n%s\nwant:\n%s", b, want)
	}
	if len(rep.Processes) != 1 || rep.Processes[0].Name != "zk" {
		t.Fatalf("report's processes %+v", rep.Processes)
	}
	first := readPids(t, pids, 1)[0]

	n, _ := f.counts()
	f.set(func(v *initproto.View) { v.Epoch, v.Release, v.Peers = 2, false, append(v.Peers, members(4, 4)[3]) })
	_, served := f.counts()
	// Two more views served: the member had the unreleased one and asked
	// again without acting on it.
	eventually(t, "the member stopped polling", func() bool { _, s := f.counts(); return s >= served+2 })
	if now, _ := f.counts(); now != n {
		t.Fatalf("reported an epoch not released: %d reports, %d before", now, n)
	}
	if b, _ := os.ReadFile(zoo); string(b) != want {
		t.Fatalf("rendered an epoch not released:\n%s", b)
	}

	f.set(func(v *initproto.View) { v.Release = true })
	f.report(2, "configured")
	if b, _ := os.ReadFile(zoo); !strings.Contains(string(b), "server.4=10.0.0.13:2888:3888\nepoch=2") {
		t.Fatalf("zoo.cfg not rendered again:\n%s", b)
	}
	if second := readPids(t, pids, 2)[1]; second == first {
		t.Fatalf("zk not restarted: pid %s both times", first)
	}
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}

// readPids waits for n pids in the file.
func readPids(t *testing.T, path string, n int) []string {
	t.Helper()
	var pids []string
	eventually(t, fmt.Sprintf("fewer than %d starts in %s", n, path), func() bool {
		b, _ := os.ReadFile(path)
		pids = strings.Fields(string(b))
		return len(pids) >= n
	})
	return pids
}

// A template that fails on the view is reported failed with the reason,
// and the processes do not start.
func TestClusterTemplateFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := initproto.View{Cluster: "zk", Epoch: 3, Peers: members(1, 1), MinReady: 1, Release: true}
	f := newFakeGanger(t, v)
	pids := filepath.Join(dir, "pids")
	files := fmt.Sprintf("  %s: \"{{.Deps.kafka.Ready}}\"\n", filepath.Join(dir, "brokers"))
	r, _ := config(t, memberConfig(t, f, dir, files, fmt.Sprintf(`["sh", "-c", "echo $$ >> %s; exec sleep 1000"]`, pids)))
	rep := f.report(3, "failed")
	if !strings.Contains(rep.Reason, "kafka") {
		t.Fatalf("reason %q", rep.Reason)
	}
	if _, err := os.Stat(pids); err == nil {
		t.Fatal("a process started without its files")
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// TERM during a long-poll ends ganger-init: the poll does not hold it.
func TestClusterStopDuringPoll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := initproto.View{Cluster: "zk", Epoch: 1, Peers: members(3, 0), MinReady: 3, Release: true}
	f := newFakeGanger(t, v)
	f.wait = time.Hour
	r, _ := config(t, memberConfig(t, f, dir, fmt.Sprintf("  %s: x\n", filepath.Join(dir, "a")), `["sleep", "1000"]`))
	f.report(1, "waiting") // the next poll waits on Ganger
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}
