package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

// BenchmarkStartDataSilent: 500 connections that connect and close
// without a byte (half closed plainly, half reset) against a `start: data`
// service: how many containers the daemon created for them (goal 0,
// counted from its event log) and Ganger's CPU time (the real binary, as
// its own process, from /proc). The baseline, in the same process and the
// same run: the same 500 against a `start: connect` service without a
// pool.
//
// One run takes well over a second (the baseline's containers are removed
// before it ends), so the framework never calls it twice: b.N == 1 is the
// measurement, not a calibration, and it prints its summary then too. Run
// it with -benchtime 1x.
func BenchmarkStartDataSilent(b *testing.B) {
	const conns, parallel = 500, 10
	d := dockertest.Daemon(b)
	node := dockertest.Node(b, d)
	dir := b.TempDir()
	bin := filepath.Join(dir, "ganger")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ganger").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "g.yaml")
	echo := "listen: 127.0.0.1:0, image: " + dockertest.Image + ", port: 7777"
	yml := fmt.Sprintf("node: %s\napi: {listen: \"\"}\nservices:\n"+
		"  - {name: data, %s, start: data, ready: {first_byte: 10s}}\n"+
		"  - {name: connect, %s}\n", node, echo, echo)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	logs := &dockertest.Logs{}
	ends := &endCounter{n: map[string]int{}}
	cmd.Stderr = io.MultiWriter(logs, ends)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// Registered after dockertest.Node's check, so it runs before it: the
	// process stops (and sweeps) before the node's containers are counted.
	b.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	pid := cmd.Process.Pid
	addrs := map[string]string{}
	re := regexp.MustCompile(`msg=listening service=(\S+) addr=(\S+)`)
	dockertest.Eventually(b, time.Minute, "ganger never listened", func() bool {
		for _, m := range re.FindAllStringSubmatch(logs.String(), -1) {
			addrs[m[1]] = m[2]
		}
		return addrs["data"] != "" && addrs["connect"] != ""
	})
	// It serves: one real request each (each makes a container), then
	// nothing is left running.
	for _, svc := range []string{"data", "connect"} {
		if err := echoOnce(addrs[svc]); err != nil {
			b.Fatalf("%s: %v", svc, err)
		}
	}
	waitGone(b, d, node)
	time.Sleep(time.Second)

	for range b.N {
		idle0, t0 := cpuTime(b, pid), time.Now()
		time.Sleep(5 * time.Second)
		idle := cpuTime(b, pid).sub(idle0).per(time.Since(t0))

		var runs []silentResult
		for _, paced := range []bool{false, true} {
			for _, svc := range []string{"data", "connect"} {
				runs = append(runs, silentRun(b, d, node, pid, logs, ends, svc, addrs[svc], conns, parallel, paced))
			}
		}
		data, conn := runs[0], runs[1]
		b.ReportMetric(float64(data.creates), "data-creates")
		b.ReportMetric(float64(conn.creates), "connect-creates")
		b.ReportMetric(float64(runs[3].creates), "connect-paced-creates")
		b.ReportMetric(float64(data.cpu.sched.Microseconds())/conns, "data-cpu-us/conn")
		b.ReportMetric(float64(conn.cpu.sched.Microseconds())/conns, "connect-cpu-us/conn")
		b.ReportMetric(float64(runs[3].cpu.sched.Microseconds())/conns, "connect-paced-cpu-us/conn")
		fmt.Printf("start: data against start: connect without a pool, %d connect-and-close connections each (half closed, half reset), same ganger process; burst: %d at a time; paced: one at a time, each after the previous session ended:\n", conns, parallel)
		for _, r := range runs {
			fmt.Printf("  %-7s %-6s containers created %3d (from the daemon's events); sessions ended %d (%s); ganger CPU %s = %.1fµs per connection (/proc/stat: %s) over %s, until every session ended and the node had no container for 1s\n",
				r.svc, r.how, r.creates, r.ended, r.outcomes, ms(r.cpu.sched), float64(r.cpu.sched.Nanoseconds())/1e3/conns, ms(r.cpu.ticks), ms(r.took))
		}
		for _, i := range []int{0, 2} {
			fmt.Printf("  %s: creates data/connect %d/%d (goal 0 for data); CPU data/connect %.3f\n",
				runs[i].how, runs[i].creates, runs[i+1].creates, float64(runs[i].cpu.sched)/float64(max(runs[i+1].cpu.sched, 1)))
		}
		fmt.Printf("  idle ganger, for comparison: %.2fms CPU per second of wall time\n", float64(idle.Microseconds())/1000)
	}
}

type silentResult struct {
	svc, how string
	creates  int
	ended    int
	outcomes string
	cpu      cpu
	took     time.Duration
}

// silentRun makes conns connections to addr that close at once, half of
// them with a reset: parallel at a time, or paced, one at a time, each
// after the previous session ended. It waits until Ganger logged each
// session's end and the node has no container left, and returns the
// creates the daemon logged and the CPU Ganger spent meanwhile.
func silentRun(b *testing.B, d *docker.Daemon, node string, pid int, logs *dockertest.Logs, ends *endCounter, svc, addr string, conns, parallel int, paced bool) silentResult {
	how := "burst"
	if paced {
		how, parallel = "paced", 1
	}
	before := ends.count(svc)
	logsBefore := len(logs.Lines("msg=\"session end\"", "service="+svc+" "))
	cpu0, t0 := cpuTime(b, pid), time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range next {
				c, err := net.Dial("tcp", addr)
				if err == nil && i%2 == 1 {
					err = c.(*net.TCPConn).SetLinger(0) // close sends a reset
				}
				if c != nil {
					c.Close()
				}
				if err == nil && paced {
					err = ends.await(svc, before+i+1, time.Minute)
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	for i := range conns {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("%s: %v", svc, firstErr)
	}
	if err := ends.await(svc, before+conns, 10*time.Minute); err != nil {
		b.Fatalf("%s: %v", svc, err)
	}
	// A create cancelled as its client left may still be in flight when
	// the session has ended: none of the node's containers for a second.
	for {
		waitGone(b, d, node)
		time.Sleep(time.Second)
		if len(dockertest.Owned(b, d, node)) == 0 {
			break
		}
	}
	cpu1, t1 := cpuTime(b, pid), time.Now()
	r := silentResult{svc: svc, how: how, cpu: cpu1.sub(cpu0), took: t1.Sub(t0), ended: ends.count(svc) - before}
	out, err := exec.Command("docker", "-H", d.Host(), "events", "--since", t0.Format(time.RFC3339Nano), "--until", t1.Format(time.RFC3339Nano),
		"--filter", "event=create", "--filter", "label=ganger.owner="+node, "--format", "{{.ID}}").Output()
	if err != nil {
		b.Fatalf("docker events: %v", err)
	}
	r.creates = len(strings.Fields(string(out)))
	outcomes := map[string]int{}
	outRE := regexp.MustCompile(`outcome=(\S+)`)
	for _, l := range logs.Lines("msg=\"session end\"", "service="+svc+" ")[logsBefore:] {
		if m := outRE.FindStringSubmatch(l); m != nil {
			outcomes[m[1]]++
		}
	}
	var parts []string
	for k, v := range outcomes {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	r.outcomes = strings.Join(parts, ", ")
	return r
}

// endCounter counts the "session end" log lines of each service as they
// arrive, so that waiting for one costs no scan of the whole log. The
// process's output comes through a pipe in chunks that may cut a line in
// two: the unfinished end of a chunk waits for the next.
type endCounter struct {
	mu   sync.Mutex
	n    map[string]int
	part []byte
}

var endRE = regexp.MustCompile(`msg="session end" service=(\S+)`)

func (e *endCounter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	buf := append(e.part, p...)
	cut := bytes.LastIndexByte(buf, '\n') + 1
	for _, m := range endRE.FindAllSubmatch(buf[:cut], -1) {
		e.n[string(m[1])]++
	}
	e.part = append([]byte(nil), buf[cut:]...)
	return len(p), nil
}

func (e *endCounter) count(svc string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[svc]
}

// await waits until svc has logged n session ends, polling every
// millisecond, for at most timeout.
func (e *endCounter) await(svc string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for e.count(svc) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %d sessions ended, want %d", timeout, e.count(svc), n)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// echoOnce sends a line to the echo server at addr and reads it back.
func echoOnce(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintln(c, "hello"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "hello\n" {
		return fmt.Errorf("echoed %q", line)
	}
	return nil
}

// cpu is a process's CPU time two ways: summed over its threads' schedstat
// (nanoseconds on a CPU; a thread that exited is missed, which Go's rarely
// do) and from /proc/<pid>/stat's utime + stime (every thread, exited ones
// too, in clock ticks of 10ms).
type cpu struct{ sched, ticks time.Duration }

func (c cpu) sub(o cpu) cpu { return cpu{c.sched - o.sched, c.ticks - o.ticks} }

// per is the CPU time per second of wall time over d (schedstat).
func (c cpu) per(d time.Duration) time.Duration {
	return time.Duration(float64(c.sched) / d.Seconds())
}

func cpuTime(b *testing.B, pid int) cpu {
	var c cpu
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no threads of %d: %v", pid, err)
	}
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(data))
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q", t, data)
		}
		c.sched += time.Duration(ns)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	c.ticks = time.Duration(ut+st) * 10 * time.Millisecond // CLK_TCK is 100 on Linux
	return c
}
