package initd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
// line. The files' templates are Ganger's to parse: ganger-init checks
// their paths only.
func TestClusterConfigErrors(t *testing.T) {
	ok := "cluster: {api: \"http://ganger:7070\", name: zk, ordinal: 0}\n"
	for _, tc := range []struct{ yaml, want string }{
		{clusterHead + ok + "files:\n  conf/a: x\n", "init.yaml:5: files.conf/a: want an absolute path"},
		{clusterHead + ok + "on_change:\n  restart: [zk, zz]\n", "init.yaml:5: on_change.restart.1: no process \"zz\""},
		{clusterHead + ok + "on_change:\n  signal: {zk: HUPP}\n", "init.yaml:5: on_change.signal.zk: unknown signal \"HUPP\""},
		{clusterHead + ok + "on_change:\n  restart: [zk]\n  command: [x]\n", "init.yaml:4: on_change: want exactly one of restart, signal or command"},
		{clusterHead + ok + "on_change:\n  command: [\"\"]\n", "on_change.command: missing: the command to run"},
		{clusterHead + "cluster: {api: \"ganger:7070\", name: zk, ordinal: 0}\n", "init.yaml:3: cluster.api: want an http:// URL"},
		{clusterHead + "cluster: {api: \"http://ganger:7070\", ordinal: 0}\n", "cluster.name: want the cluster's name"},
		{clusterHead + "cluster:\n  api: \"http://ganger:7070\"\n  name: zk\n  ordinal: -1\n", "init.yaml:6: cluster.ordinal: want the member's ordinal"},
	} {
		_, err := initd.ParseConfig("init.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.yaml, err, tc.want)
		}
	}
	// What Ganger checks: files and on_change without cluster (the
	// environment makes each container a member), and a template that
	// would not parse (Ganger says so, not ganger-init).
	cfg, err := initd.ParseConfig("init.yaml", []byte(clusterHead+"files:\n  /conf/a: \"{{.Self.IP\"\non_change: {restart: [zk]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != nil || cfg.Files["/conf/a"] != "{{.Self.IP" || len(cfg.OnChange.Restart) != 1 {
		t.Fatalf("got %+v", cfg)
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
	t.Setenv("GANGER_ORDINAL", "two")
	if _, err := initd.ParseConfig("init.yaml", []byte(clusterHead)); err == nil || !strings.Contains(err.Error(), "cluster.ordinal") {
		t.Fatalf("GANGER_ORDINAL=two: %v", err)
	}
}

// fakeGanger serves one member's view (cluster zk, ordinal 0) the way
// Ganger does: at once when the view differs from the epoch and release
// the poll says the member holds, else when the view changes, else after
// wait (the same view back); and it records the polls and the reports.
type fakeGanger struct {
	t       *testing.T
	url     string
	stop    chan struct{}
	mu      sync.Mutex
	view    initproto.View
	wait    time.Duration
	changed chan struct{}
	polls   []string // each poll's query
	pending int      // polls waiting for a change
	reports []initproto.Report
	refused int // reports answered 503 (failReports of them)
	// failReports: so many reports are answered 503 first.
	failReports int
	// onReport runs (under mu) at each report taken: it may change the
	// view, without waking a poll (none waits: the member reports between
	// polls).
	onReport func(v *initproto.View, r initproto.Report)
}

func newFakeGanger(t *testing.T, v initproto.View) *fakeGanger {
	f := &fakeGanger{t: t, wait: time.Hour, view: v, changed: make(chan struct{}), stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/clusters/zk/members/0/view", f.serveView)
	mux.HandleFunc("POST /v1/clusters/zk/members/0/report", f.serveReport)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			t.Errorf("%s %s with Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(f.stop); srv.Close() })
	f.url = srv.URL
	return f
}

func (f *fakeGanger) serveView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := strconv.ParseInt(q.Get("after"), 10, 64)
	if err != nil || q.Get("released") != "0" && q.Get("released") != "1" {
		f.t.Errorf("poll %q: want after=EPOCH&released=0|1", r.URL.RawQuery)
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	released := q.Get("released") == "1"
	f.mu.Lock()
	f.polls = append(f.polls, r.URL.RawQuery)
	same := f.view.Epoch == after && f.view.Release == released
	ch, wait := f.changed, f.wait
	if same {
		f.pending++
	}
	f.mu.Unlock()
	if same {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ch:
		case <-t.C:
		case <-r.Context().Done():
		case <-f.stop:
		}
		f.mu.Lock()
		f.pending--
		f.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	f.mu.Lock()
	b, err := json.Marshal(f.view)
	f.mu.Unlock()
	if err != nil {
		f.t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (f *fakeGanger) serveReport(w http.ResponseWriter, r *http.Request) {
	var rep initproto.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		f.t.Errorf("report: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused < f.failReports {
		f.refused++
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	f.reports = append(f.reports, rep)
	if f.onReport != nil {
		f.onReport(&f.view, rep)
	}
	w.WriteHeader(http.StatusNoContent)
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

// reportsOf are the reports taken for epoch, in order.
func (f *fakeGanger) reportsOf(epoch int64) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var states []string
	for _, r := range f.reports {
		if r.Epoch == epoch {
			states = append(states, r.State)
		}
	}
	return states
}

// waitPolls waits for n polls, and returns the queries of all so far.
func (f *fakeGanger) waitPolls(n int) []string {
	f.t.Helper()
	var polls []string
	eventually(f.t, fmt.Sprintf("fewer than %d polls", n), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		polls = slices.Clone(f.polls)
		return len(polls) >= n
	})
	return polls
}

// members are n members of zk.
func members(n int) []initproto.Member {
	var ms []initproto.Member
	for i := range n {
		ms = append(ms, initproto.Member{Ordinal: i, Name: "zk-" + strconv.Itoa(i), IP: "10.0.0." + strconv.Itoa(10+i)})
	}
	return ms
}

// view is epoch of zk as member 0 sees it, not released.
func view(epoch int64) initproto.View {
	v := initproto.View{Cluster: "zk", Epoch: epoch, Peers: members(3), MinReady: 3}
	v.Self = v.Peers[0]
	return v
}

// memberConfig is a ganger-init config for member 0 of zk against f (its
// token in a file), with files listed (their text is Ganger's business),
// on_change and one process.
func memberConfig(t *testing.T, f *fakeGanger, dir, files, onChange, process string) string {
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("cluster: {api: %q, name: zk, ordinal: 0, token_file: %q}\nfiles:\n%s\non_change: %s\nprocesses:\n  zk: {cmd: %s}\n",
		f.url, tok, files, onChange, process)
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

func fileIs(t *testing.T, path, want string) {
	t.Helper()
	if b, err := os.ReadFile(path); err != nil || string(b) != want {
		t.Fatalf("%s: %q, %v; want %q", path, b, err, want)
	}
}

// A member reports waiting at an epoch not released to it (the first
// one too) without starting anything; once released at the same epoch it
// writes the files of the view (one the config does not list as well),
// starts its process and reports configured; a later epoch not released
// is reported waiting and not applied; once released, the files are
// written again and on_change restarts the process. Each poll says the
// epoch and release the member holds.
func TestClusterMember(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFakeGanger(t, view(1))
	zoo, extra, pids := filepath.Join(dir, "conf", "zoo.cfg"), filepath.Join(dir, "conf", "extra"), filepath.Join(dir, "pids")
	files := fmt.Sprintf("  %s: |\n    {{range .Peers}}server.{{add .Ordinal 1}}={{.IP}}:2888:3888\n    {{end}}\n", zoo)
	// The process shows it started after the files were written: it
	// reads one.
	proc := fmt.Sprintf(`["sh", "-c", "head -1 %s > /dev/null && echo $$ >> %s && exec sleep 1000"]`, zoo, pids)
	r, _ := config(t, memberConfig(t, f, dir, files, "{restart: [zk]}", proc))

	w := f.report(1, "waiting")
	if !strings.Contains(w.Reason, "not released yet") || len(w.Processes) != 1 || w.Processes[0].Name != "zk" || w.Processes[0].State != "down" {
		t.Fatalf("waiting report %+v", w)
	}
	if _, err := os.Stat(pids); err == nil {
		t.Fatalf("a process started before the release\n%s", r.out)
	}

	conf1 := "server.1=10.0.0.10:2888:3888\nserver.2=10.0.0.11:2888:3888\nserver.3=10.0.0.12:2888:3888\n"
	f.set(func(v *initproto.View) {
		v.Release, v.Files = true, map[string]string{zoo: conf1, extra: "from Ganger\n"}
	})
	rep := f.report(1, "configured")
	fileIs(t, zoo, conf1)
	fileIs(t, extra, "from Ganger\n")
	if len(rep.Processes) != 1 || rep.Processes[0].Name != "zk" || rep.Processes[0].State == "down" {
		t.Fatalf("configured report's processes %+v", rep.Processes)
	}
	first := readPids(t, pids, 1)[0]

	f.set(func(v *initproto.View) {
		*v = view(2)
		v.Peers = append(v.Peers, members(4)[3])
	})
	f.report(2, "waiting")
	fileIs(t, zoo, conf1)
	if b, _ := os.ReadFile(pids); len(strings.Fields(string(b))) != 1 {
		t.Fatalf("an epoch not released restarted zk: pids %q", b)
	}

	conf2 := conf1 + "server.4=10.0.0.13:2888:3888\n"
	f.set(func(v *initproto.View) { v.Release, v.Files = true, map[string]string{zoo: conf2} })
	f.report(2, "configured")
	fileIs(t, zoo, conf2)
	if second := readPids(t, pids, 2)[1]; second == first {
		t.Fatalf("zk not restarted: pid %s both times", first)
	}
	// An epoch whose files are the same (a new leader nobody renders)
	// runs no on_change: zk keeps running.
	f.set(func(v *initproto.View) {
		*v = view(3)
		v.Release, v.Files = true, map[string]string{zoo: conf2}
	})
	f.report(3, "configured")
	time.Sleep(300 * time.Millisecond) // a restart, had there been one, shows by now
	if b, _ := os.ReadFile(pids); len(strings.Fields(string(b))) != 2 {
		t.Fatalf("an epoch that changed no file restarted zk: pids %q", b)
	}
	want := []string{"after=0&released=0", "after=1&released=0", "after=1&released=1", "after=2&released=0", "after=2&released=1"}
	if polls := f.waitPolls(len(want)); !slices.Equal(polls[:len(want)], want) {
		t.Fatalf("polls %q; want %q first", polls, want)
	}
	if got := f.reportsOf(1); !slices.Equal(got, []string{"waiting", "configured"}) {
		t.Fatalf("epoch 1 reported %q", got)
	}
	r.signal(syscall.SIGTERM) // a poll waits on Ganger
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}

// The environment makes ganger-init a member (as Ganger runs it: no
// cluster key in the file); its token goes to Ganger as a bearer token
// and to no process. Ganger releases the member once it reports waiting,
// while no poll waits: the next poll, saying it holds epoch 1 not
// released, is answered at once.
func TestClusterEnvTokenAndRelease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFakeGanger(t, view(1))
	conf := filepath.Join(dir, "conf")
	f.onReport = func(v *initproto.View, r initproto.Report) {
		if r.State == "waiting" {
			v.Release, v.Files = true, map[string]string{conf: "ok\n"}
		}
	}
	out := filepath.Join(dir, "env")
	yml := fmt.Sprintf("files: {%s: x}\nprocesses:\n  zk: {cmd: [\"sh\", \"-c\", \"echo token=${GANGER_CLUSTER_TOKEN:-none} ordinal=$GANGER_ORDINAL > %s.tmp && mv %s.tmp %s && exec sleep 1000\"]}\n",
		conf, out, out, out)
	r := &run{t: t, cmd: exec.Command(bin, "--config-env", "INIT_YAML", "--control", "none"), out: &buf{}, code: make(chan int, 1)}
	r.cmd.Env = append(os.Environ(), "INIT_YAML="+yml, "GANGER_CLUSTER_API="+f.url, "GANGER_CLUSTER=zk", "GANGER_ORDINAL=0", "GANGER_CLUSTER_TOKEN=s3cret")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); r.code <- r.cmd.ProcessState.ExitCode() }()
	t.Cleanup(func() { r.cmd.Process.Kill(); r.wait() })

	f.report(1, "configured")
	fileIs(t, conf, "ok\n")
	eventually(t, "the process never wrote its environment", func() bool { _, err := os.Stat(out); return err == nil })
	fileIs(t, out, "token=none ordinal=0\n")
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}

// on_change at a later released epoch: a signal to a process, a command
// that succeeds, and one that fails (the epoch reported failed with the
// reason).
func TestClusterOnChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, onChange, state, reason, mark string
	}{
		{"signal", "{signal: {zk: HUP}}", "configured", "", "hup"},
		{"command", `{command: ["sh", "-c", "echo ran >> $MARK"]}`, "configured", "", "ran"},
		{"command fails", `{command: ["sh", "-c", "exit 3"]}`, "failed", "on_change: sh: exit code 3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			mark, pids, conf := filepath.Join(dir, "mark"), filepath.Join(dir, "pids"), filepath.Join(dir, "conf")
			v := view(1)
			v.Release, v.Files = true, map[string]string{conf: "1\n"}
			f := newFakeGanger(t, v)
			onChange := strings.ReplaceAll(tc.onChange, "$MARK", mark)
			proc := fmt.Sprintf(`["sh", "-c", "trap 'echo hup >> %s' HUP; echo $$ >> %s; while :; do sleep 0.1; done"]`, mark, pids)
			r, _ := config(t, memberConfig(t, f, dir, fmt.Sprintf("  %s: x\n", conf), onChange, proc))
			f.report(1, "configured")
			readPids(t, pids, 1) // its trap is set

			f.set(func(v *initproto.View) { v.Epoch, v.Files = 2, map[string]string{conf: "2\n"} })
			rep := f.report(2, tc.state)
			fileIs(t, conf, "2\n")
			if !strings.Contains(rep.Reason, tc.reason) {
				t.Fatalf("reason %q; want %q", rep.Reason, tc.reason)
			}
			if tc.mark != "" {
				eventually(t, "on_change left no "+tc.mark+" mark", func() bool {
					b, _ := os.ReadFile(mark)
					return strings.Contains(string(b), tc.mark)
				})
			}
			if b, _ := os.ReadFile(pids); len(strings.Fields(string(b))) != 1 {
				t.Fatalf("zk restarted: pids %q", b)
			}
			r.signal(syscall.SIGTERM)
			if code := r.wait(); code != 0 {
				t.Fatalf("exit %d\n%s", code, r.out)
			}
		})
	}
}

// A file that cannot be written fails the epoch with the reason, and the
// processes do not start.
func TestClusterWriteFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v := view(3)
	v.Release, v.Files = true, map[string]string{filepath.Join(plain, "conf"): "x"}
	f := newFakeGanger(t, v)
	pids := filepath.Join(dir, "pids")
	r, _ := config(t, memberConfig(t, f, dir, "  /conf: x\n", "{restart: [zk]}", fmt.Sprintf(`["sh", "-c", "echo $$ >> %s; exec sleep 1000"]`, pids)))
	rep := f.report(3, "failed")
	if !strings.Contains(rep.Reason, "write "+filepath.Join(plain, "conf")) {
		t.Fatalf("reason %q", rep.Reason)
	}
	if _, err := os.Stat(pids); err == nil {
		t.Fatal("a process started without its files")
	}
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}

// A report Ganger did not take (after its tries) is sent again after the
// next poll.
func TestClusterReportAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFakeGanger(t, view(1))
	f.wait = 100 * time.Millisecond // the same view back soon
	f.failReports = 3               // one report's every try
	r, _ := config(t, memberConfig(t, f, dir, "  /conf: x\n", "{restart: [zk]}", `["sleep", "1000"]`))
	f.report(1, "waiting")
	if got := f.reportsOf(1); !slices.Equal(got, []string{"waiting"}) {
		t.Fatalf("epoch 1 reported %q", got)
	}
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}

// TERM during a long-poll, before any release, ends ganger-init: the poll
// does not hold it.
func TestClusterStopDuringPoll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFakeGanger(t, view(1))
	r, _ := config(t, memberConfig(t, f, dir, fmt.Sprintf("  %s: x\n", filepath.Join(dir, "a")), "{restart: [zk]}", `["sleep", "1000"]`))
	f.report(1, "waiting")
	eventually(t, "no poll waits on Ganger", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.pending > 0 })
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.out)
	}
}
