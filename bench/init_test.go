package bench

// ganger-init beside the inits people use: tini and dumb-init for one
// command, runit (runsvdir) and s6 (s6-svscan) for a few services. Each
// runs as PID 1 of its own PID namespace on the host (unshare --pid
// --fork --mount-proc; root needed), the same way for all and without
// Docker's noise; killing that PID 1 ends everything in its namespace, so
// nothing is left behind. The inits come from Debian (make test-deps).

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// initUnderTest is one init: how to run a command under it.
type initUnderTest struct {
	name string
	argv []string // followed by the command
}

// oneCommandInits are ganger-init's -- mode, tini and dumb-init, each
// static where Debian has it so.
func oneCommandInits(b *testing.B) []initUnderTest {
	tini := lookInit(b, "tini-static", "tini")
	return []initUnderTest{
		{"ganger-init", []string{buildInit(b), "--"}},
		{"tini", []string{tini, "--"}},
		{"dumb-init", []string{lookInit(b, "dumb-init")}},
	}
}

// lookInit is the first of names on PATH.
func lookInit(b *testing.B, names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	b.Fatalf("none of %v installed (make test-deps)", names)
	return ""
}

// buildInit builds ganger-init as `make build` does: static, stripped.
func buildInit(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "ganger-init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../cmd/ganger-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build ganger-init: %v\n%s", err, out)
	}
	return bin
}

func needRoot(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("unshare --pid needs root")
	}
}

// nsInit is an init running as PID 1 of a new PID namespace.
type nsInit struct {
	name  string
	cmd   *exec.Cmd
	pid   int         // the init's pid as the host sees it
	lines chan string // its stdout (the command's), line by line
	done  chan struct{}
	errs  *dockertest.Logs
}

// startNS runs argv as PID 1 of a new PID namespace; b's cleanup kills it
// (and with it, everything in its namespace).
func startNS(b *testing.B, name string, argv ...string) *nsInit {
	n := &nsInit{name: name, lines: make(chan string, 1024), done: make(chan struct{}), errs: &dockertest.Logs{}}
	n.cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc"}, argv...)...)
	n.cmd.Stderr = n.errs
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		b.Fatalf("unshare %v: %v", argv, err)
	}
	go n.read(out)
	b.Cleanup(n.stop)
	dockertest.Eventually(b, 10*time.Second, "unshare never forked "+name, func() bool {
		for pid, p := range procTable() {
			if p.ppid == n.cmd.Process.Pid {
				n.pid = pid
				return true
			}
		}
		return false
	})
	return n
}

// read passes stdout's lines on until EOF, then reaps unshare.
func (n *nsInit) read(out io.Reader) {
	s := bufio.NewScanner(out)
	for s.Scan() {
		select {
		case n.lines <- s.Text():
		default: // nobody reads: drop
		}
	}
	n.cmd.Wait()
	close(n.done)
}

// line waits for the next line of stdout.
func (n *nsInit) line(b *testing.B) string {
	select {
	case l := <-n.lines:
		return l
	case <-n.done:
		b.Fatalf("%s ended: %s", n.name, n.errs)
	case <-time.After(60 * time.Second):
		b.Fatalf("%s: no line in 60s", n.name)
	}
	return ""
}

// waitLine waits for a line equal to want.
func (n *nsInit) waitLine(b *testing.B, want string) {
	for n.line(b) != want {
	}
}

func (n *nsInit) stop() {
	if n.pid > 0 {
		syscall.Kill(n.pid, syscall.SIGKILL)
	} else {
		n.cmd.Process.Kill()
	}
	<-n.done
}

// procEntry is a process as /proc/PID/stat shows it.
type procEntry struct {
	ppid  int
	state byte
	comm  string
}

// procTable reads every process's stat.
func procTable() map[int]procEntry {
	out := map[int]procEntry{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out[pid] = procEntry{ppid: ppid, state: f[0][0], comm: s[open+1 : end]}
	}
	return out
}

// children lists the pids whose parent is pid.
func children(t map[int]procEntry, pid int) []int {
	var out []int
	for p, e := range t {
		if e.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// tree lists pid's descendants.
func tree(t map[int]procEntry, pid int) []int {
	var out []int
	for queue := children(t, pid); len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children(t, queue[0])...)
	}
	return out
}

// BenchmarkInitReap: a script double-forks 10,000 short-lived processes
// (each an orphan the init must reap), then execs sleep. Measured: from
// the start to the moment the init's only child is that sleep (every
// orphan reaped); from the script's last fork to then (the lag); and the
// init's own CPU time. ganger-init, tini and dumb-init take turns, in a
// rotating order, reapRounds times each. Run with -benchtime 1x.
func BenchmarkInitReap(b *testing.B) {
	const orphans, reapRounds = 10000, 5
	needRoot(b)
	inits := oneCommandInits(b)
	script := fmt.Sprintf(`for i in $(seq %d); do (: &); done; echo forked; exec sleep 3600`, orphans)
	total, lag, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}, map[string][]time.Duration{}
	for round := range reapRounds {
		for i := range inits {
			in := inits[(i+round)%len(inits)]
			t, l, c := reapOnce(b, in, script)
			total[in.name], lag[in.name], cpu[in.name] = append(total[in.name], t), append(lag[in.name], l), append(cpu[in.name], c)
		}
	}
	base := inits[1].name // tini
	b.ReportMetric(median(total["ganger-init"]).Seconds(), "ganger-init-s")
	b.ReportMetric(float64(median(total["ganger-init"]))/float64(median(total[base])), "ratio-vs-tini")
	fmt.Printf("reap %d orphans (median of %d; start to all reaped / after the last fork / the init's CPU):\n", orphans, reapRounds)
	for _, in := range inits {
		fmt.Printf("  %-11s %s / %s / %s; ratio to tini %.2f / %.2f / %.2f\n", in.name,
			ms(median(total[in.name])), ms(median(lag[in.name])), ms(median(cpu[in.name])),
			float64(median(total[in.name]))/float64(median(total[base])),
			float64(median(lag[in.name]))/float64(max(median(lag[base]), time.Millisecond)),
			float64(median(cpu[in.name]))/float64(max(median(cpu[base]), time.Millisecond)))
	}
}

// reapOnce runs the script under in once; see BenchmarkInitReap.
func reapOnce(b *testing.B, in initUnderTest, script string) (total, lag, cpu time.Duration) {
	t0 := time.Now()
	n := startNS(b, in.name, append(slices.Clone(in.argv), "sh", "-c", script)...)
	n.waitLine(b, "forked")
	forked := time.Now()
	for {
		t := procTable()
		kids := children(t, n.pid)
		if len(kids) == 1 && t[kids[0]].comm == "sleep" && t[kids[0]].state != 'Z' {
			break
		}
		time.Sleep(time.Millisecond)
	}
	done := time.Now()
	cpu = cpuTime(b, n.pid).sched
	n.stop()
	return done.Sub(t0), done.Sub(forked), cpu
}

// signalChild is the child of BenchmarkInitSignal: it prints the time at
// which each SIGUSR1 reaches it.
const signalChild = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	c := make(chan os.Signal, 64)
	signal.Notify(c, syscall.SIGUSR1)
	fmt.Println("ready")
	for range c {
		fmt.Println(time.Now().UnixNano())
	}
}
`

// BenchmarkInitSignal: SIGUSR1 sent to the init (from the host, as docker
// kill would), until the child has it: ganger-init, tini and dumb-init
// running the same small Go child, signalled in turn, signalRounds times
// each. Run with -benchtime 1x.
func BenchmarkInitSignal(b *testing.B) {
	const signalRounds = 500
	needRoot(b)
	dir := b.TempDir()
	src, child := filepath.Join(dir, "child.go"), filepath.Join(dir, "child")
	if err := os.WriteFile(src, []byte(signalChild), 0o644); err != nil {
		b.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", child, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the child: %v\n%s", err, out)
	}
	inits := oneCommandInits(b)
	var ns []*nsInit
	for _, in := range inits {
		n := startNS(b, in.name, append(slices.Clone(in.argv), child)...)
		n.waitLine(b, "ready")
		ns = append(ns, n)
	}
	lat := map[string][]time.Duration{}
	for round := range signalRounds {
		for i := range ns {
			n := ns[(i+round)%len(ns)]
			t0 := time.Now().UnixNano()
			syscall.Kill(n.pid, syscall.SIGUSR1)
			at, err := strconv.ParseInt(n.line(b), 10, 64)
			if err != nil {
				b.Fatalf("%s: %v", n.name, err)
			}
			lat[n.name] = append(lat[n.name], time.Duration(at-t0))
		}
	}
	base := "tini"
	b.ReportMetric(float64(median(lat["ganger-init"]).Microseconds()), "ganger-init-us")
	b.ReportMetric(float64(median(lat["ganger-init"]))/float64(median(lat[base])), "ratio-vs-tini")
	fmt.Printf("SIGUSR1 to the init until the child has it (n=%d each):\n", signalRounds)
	for _, in := range inits {
		l := lat[in.name]
		fmt.Printf("  %-11s p50 %s p90 %s p99 %s; ratio of medians to tini %.2f\n", in.name,
			micro(median(l)), micro(pct(l, 90)), micro(pct(l, 99)), float64(median(l))/float64(median(lat[base])))
	}
}

func micro(d time.Duration) string { return fmt.Sprintf("%dµs", d.Microseconds()) }

// BenchmarkInitSize: the size of each init's binary on disk, and what it
// needs besides (shared libraries other than libc). Budget for
// ganger-init: 8 MiB. Run with -benchtime 1x.
func BenchmarkInitSize(b *testing.B) {
	bins := []struct{ name, path string }{
		{"ganger-init", buildInit(b)},
		{"tini-static", lookInit(b, "tini-static")},
		{"tini", lookInit(b, "tini")},
		{"dumb-init", lookInit(b, "dumb-init")},
		{"runsvdir", lookInit(b, "runsvdir")},
		{"runsv", lookInit(b, "runsv")},
		{"s6-svscan", lookInit(b, "s6-svscan")},
		{"s6-supervise", lookInit(b, "s6-supervise")},
	}
	fmt.Println("binary sizes:")
	for _, bin := range bins {
		st, err := os.Stat(bin.path)
		if err != nil {
			b.Fatal(err)
		}
		if bin.name == "ganger-init" {
			b.ReportMetric(float64(st.Size())/(1<<20), "ganger-init-MiB")
		}
		fmt.Printf("  %-12s %9d bytes (%s), %s\n", bin.name, st.Size(), mib(st.Size()), linkage(b, bin.path))
	}
}

// linkage says whether a binary is static, and which libraries it needs
// (with their sizes) if not.
func linkage(b *testing.B, path string) string {
	f, err := elf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	if len(libs) == 0 {
		return "static"
	}
	var parts []string
	for _, l := range libs {
		if strings.HasPrefix(l, "libc.so") {
			parts = append(parts, "libc")
			continue
		}
		if st, err := os.Stat(filepath.Join("/lib/x86_64-linux-gnu", l)); err == nil {
			parts = append(parts, fmt.Sprintf("%s (%s)", l, mib(st.Size())))
		} else {
			parts = append(parts, l)
		}
	}
	return "dynamic: " + strings.Join(parts, ", ")
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// BenchmarkInitRSS: resident memory (VmRSS) of each supervisor running 3
// idle services (sleep), once they have been idle 2 s: ganger-init with a
// config of 3 processes, runsvdir with 3 services (and the runsv that
// supervises each), s6-svscan with 3 (and their s6-supervise). The
// services themselves are not counted. rssRounds each, in turns. Budget
// for ganger-init: under 5 MiB. Run with -benchtime 1x.
func BenchmarkInitRSS(b *testing.B) {
	const rssRounds = 3
	needRoot(b)
	dir := b.TempDir()
	gangerInit := buildInit(b)
	svdir := filepath.Join(dir, "services")
	for _, s := range []string{"a", "b", "c"} {
		if err := os.MkdirAll(filepath.Join(svdir, s), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(svdir, s, "run"), []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "ganger-init.yaml")
	yml := fmt.Sprintf("control: {socket: %s}\nprocesses:\n  a: {cmd: [sleep, \"3600\"]}\n  b: {cmd: [sleep, \"3600\"]}\n  c: {cmd: [sleep, \"3600\"]}\n", filepath.Join(dir, "ctl.sock"))
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		b.Fatal(err)
	}
	sups := []initUnderTest{
		{"ganger-init", []string{gangerInit, "--config", cfg}},
		{"runsvdir", []string{lookInit(b, "runsvdir"), svdir}},
		{"s6-svscan", []string{lookInit(b, "s6-svscan"), svdir}},
	}
	own, anon, all := map[string][]int64{}, map[string][]int64{}, map[string][]int64{}
	for round := range rssRounds {
		for i := range sups {
			s := sups[(i+round)%len(sups)]
			o, an, a := rssOnce(b, s)
			own[s.name], anon[s.name], all[s.name] = append(own[s.name], o), append(anon[s.name], an), append(all[s.name], a)
			// runsv and s6-supervise keep their state in the service
			// directories: each run starts from clean ones.
			for _, sv := range []string{"a", "b", "c"} {
				os.RemoveAll(filepath.Join(svdir, sv, "supervise"))
				os.RemoveAll(filepath.Join(svdir, sv, "event"))
			}
			os.RemoveAll(filepath.Join(svdir, ".s6-svscan"))
		}
	}
	med := func(v []int64) int64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	b.ReportMetric(float64(med(own["ganger-init"]))/(1<<20), "ganger-init-MiB")
	fmt.Printf("idle RSS with 3 services (median of %d; the init (of which anonymous) / the init and its supervisors):\n", rssRounds)
	for _, s := range sups {
		fmt.Printf("  %-11s %s (%s) / %s\n", s.name, mib(med(own[s.name])), mib(med(anon[s.name])), mib(med(all[s.name])))
	}
}

// rssOnce starts s, waits for its 3 sleeps and 2 s of idleness, and
// returns the RSS of the init, its anonymous part (the rest is the
// binary's and libraries' pages, shared with any other copy running), and
// the RSS of the init with every descendant but the sleeps.
func rssOnce(b *testing.B, s initUnderTest) (own, anon, all int64) {
	n := startNS(b, s.name, s.argv...)
	var procs []int
	dockertest.Eventually(b, 30*time.Second, s.name+" never ran its 3 services", func() bool {
		t := procTable()
		procs = []int{n.pid}
		sleeps := 0
		for _, p := range tree(t, n.pid) {
			if t[p].comm == "sleep" {
				sleeps++
			} else {
				procs = append(procs, p)
			}
		}
		return sleeps == 3
	})
	time.Sleep(2 * time.Second) // idle: what it holds at rest, not while starting
	own, anon = rss(b, n.pid), rssAnon(b, n.pid)
	for _, p := range procs {
		all += rss(b, p)
	}
	n.stop()
	return own, anon, all
}

// rssAnon is a process's RssAnon: its heap, stacks and other private
// memory.
func rssAnon(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssAnon:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	b.Fatal("no RssAnon")
	return 0
}
