package stress

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// kill -9 with sessions open leaves their containers; a new run of the same
// node sweeps them before its first session has its container.
func TestKill9SweepsBeforeServing(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	config := writeConfig(t, baseConfig(node, "", "    cmd: [\"-banner\", \"%h\"]\n    timeouts: {drain: 1s}\n"))
	p1 := startProc(t, config, 0)
	addr := p1.svcAddr()

	// Ten sessions, each with its banner: the container's host name, the
	// first 12 hex digits of its id.
	hosts := make([]string, 10)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []string
		conns []net.Conn
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range hosts {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("session %d: %v", i, err))
				mu.Unlock()
				return
			}
			s := &session{c: c.(*net.TCPConn), r: bufio.NewReader(c)}
			h, err := s.line(60 * time.Second)
			mu.Lock()
			conns = append(conns, c)
			if err != nil || len(h) != 12 {
				errs = append(errs, fmt.Sprintf("session %d: banner %q, %v", i, h, err))
			}
			hosts[i] = h
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("opening 10 sessions:\n%s", strings.Join(errs, "\n"))
	}
	orphans := map[string]bool{}
	for _, h := range hosts {
		orphans[h] = true
	}
	present := func() (n int, other []string) {
		for _, m := range dockertest.Owned(t, d, node) {
			if orphans[m.ID[:12]] {
				n++
			} else {
				other = append(other, m.ID[:12])
			}
		}
		return n, other
	}
	if n, _ := present(); n != 10 {
		t.Fatalf("%d of the 10 sessions' containers on the daemon; want 10", n)
	}

	p1.kill9()
	if n, _ := present(); n != 10 {
		t.Fatalf("%d containers left after kill -9; want the 10 orphans", n)
	}

	begin := time.Now()
	p2 := startProc(t, config, 0)
	addr = p2.svcAddr()
	listened := time.Since(begin)
	s := dialSession(t, addr, "")
	h, err := s.line(60 * time.Second)
	if err != nil || len(h) != 12 {
		t.Fatalf("first session of the new run: banner %q, %v", h, err)
	}
	bannered := time.Since(begin)
	n, other := present()
	t.Logf("new run listened after %s; its first session had its banner (container %s) after %s; orphans still on the daemon then: %d; other containers: %v",
		listened.Round(time.Millisecond), h, bannered.Round(time.Millisecond), n, other)
	t.Logf("sweep log: %q", p2.logs.Lines("swept"))
	if orphans[h] {
		t.Errorf("the new session was served by orphan %s", h)
	}
	if n != 0 {
		t.Errorf("%d of the 10 orphans still on the daemon when the new run's first session had its banner", n)
	}
	if err := s.echo("after the restart", 30*time.Second); err != nil {
		t.Errorf("first session of the new run: %v", err)
	}
}

// Defect 6: running out of descriptors is not a daemon failure: the daemon
// is not marked down, live sessions go on, the API answers, the shared
// container is kept.
func TestFDExhaustionIsNotADaemonFailure(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	p := startProc(t, writeConfig(t, baseConfig(node, "", `    cmd: ["-banner", "hi"]
    mode: shared
    shared: {replicas: 1}
    timeouts: {drain: 5s}
`)), 256)
	addr, api := p.ready()
	pid := p.pid()
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Max open files") {
				t.Logf("ganger (pid %d): %s", pid, strings.Join(strings.Fields(line), " "))
			}
		}
	}

	var sessions []*session
	for i := range 5 {
		s := dialSession(t, addr, "hi")
		if err := s.echo(fmt.Sprintf("before %d", i), 30*time.Second); err != nil {
			t.Fatalf("session %d before the flood: %v", i, err)
		}
		sessions = append(sessions, s)
	}
	fd0, _ := fdCount(pid)
	t.Logf("before the flood: ganger has %d fds (%s)", fd0, fdKinds(pid))

	// Watch the API throughout: a new connection per request, as a probe.
	type watch struct {
		healthOK, healthFail, daemonsOK, daemonsFail, downSeen int
		maxLatency                                             time.Duration
		errs                                                   []string
		peakFD                                                 int
	}
	var w watch
	var wmu sync.Mutex
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		client := apiClient(5 * time.Second)
		for {
			t0 := time.Now()
			resp, err := client.Get("http://" + api + "/healthz")
			lat := time.Since(t0)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			var ds []daemonStatus
			derr := getJSON(client, "http://"+api+"/v1/daemons", &ds)
			fd, _ := fdCount(pid)
			wmu.Lock()
			w.maxLatency = max(w.maxLatency, lat)
			w.peakFD = max(w.peakFD, fd)
			if err != nil {
				w.healthFail++
				if len(w.errs) < 5 {
					w.errs = append(w.errs, "/healthz: "+err.Error())
				}
			} else {
				w.healthOK++
			}
			if derr != nil {
				w.daemonsFail++
				if len(w.errs) < 10 {
					w.errs = append(w.errs, "/v1/daemons: "+derr.Error())
				}
			} else {
				w.daemonsOK++
				for _, dm := range ds {
					if !dm.Up {
						w.downSeen++
					}
				}
			}
			wmu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	// The flood: 1000 connections, as fast as 16 dialers go, kept open.
	var (
		flood    []net.Conn
		fmu      sync.Mutex
		dialErrs int
		dialers  sync.WaitGroup
		next     = make(chan int, 1000)
	)
	for i := range 1000 {
		next <- i
	}
	close(next)
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	begin := time.Now()
	for range 16 {
		dialers.Go(func() {
			for range next {
				c, err := net.DialTimeout("tcp", addr, 3*time.Second)
				fmu.Lock()
				if err != nil {
					dialErrs++
				} else {
					flood = append(flood, c)
				}
				fmu.Unlock()
			}
		})
	}
	dialers.Wait()
	t.Logf("flood: %d connections open, %d dial errors, in %s", len(flood), dialErrs, time.Since(begin).Round(time.Millisecond))
	time.Sleep(10 * time.Second) // several health intervals with the flood held
	fdFlood, _ := fdCount(pid)
	t.Logf("flood held 10s: ganger has %d fds (%s)", fdFlood, fdKinds(pid))

	var during []string
	for i, s := range sessions {
		if err := s.echo(fmt.Sprintf("during %d", i), 10*time.Second); err != nil {
			during = append(during, fmt.Sprintf("session %d: %v", i, err))
		}
	}
	fmu.Lock()
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	fmu.Unlock()
	time.Sleep(2 * time.Second)
	var after []string
	for i, s := range sessions {
		if err := s.echo(fmt.Sprintf("after %d", i), 10*time.Second); err != nil {
			after = append(after, fmt.Sprintf("session %d: %v", i, err))
		}
	}
	close(stop)
	watcher.Wait()

	t.Logf("API during the flood: /healthz %d ok, %d failed (slowest %s); /v1/daemons %d ok, %d failed, daemon seen down %d times; ganger's peak fds %d; errors: %v",
		w.healthOK, w.healthFail, w.maxLatency.Round(time.Millisecond), w.daemonsOK, w.daemonsFail, w.downSeen, w.peakFD, w.errs)
	accepts := len(p.logs.Lines("accept failed"))
	t.Logf("log: %d 'accept failed' lines; session outcomes: %v", accepts, outcomes(p.logs))
	logServices(t, api)

	if l := p.logs.Lines("daemon down"); len(l) > 0 {
		t.Errorf("the daemon was logged down %d times; first: %s", len(l), l[0])
	}
	if w.downSeen > 0 {
		t.Errorf("GET /v1/daemons showed the daemon down %d times during the flood", w.downSeen)
	}
	if w.healthFail > 0 || w.daemonsFail > 0 {
		t.Errorf("the API did not answer during the flood: /healthz failed %d of %d, /v1/daemons failed %d of %d: %v",
			w.healthFail, w.healthOK+w.healthFail, w.daemonsFail, w.daemonsOK+w.daemonsFail, w.errs)
	}
	if len(during) > 0 {
		t.Errorf("%d of the 5 earlier sessions did not echo with the flood held:\n%s", len(during), strings.Join(during, "\n"))
	}
	if len(after) > 0 {
		t.Errorf("%d of the 5 earlier sessions did not echo after the flood:\n%s", len(after), strings.Join(after, "\n"))
	}
	if l := p.logs.Lines(`msg="session end"`, "outcome=daemon_down"); len(l) > 0 {
		t.Errorf("%d sessions ended with outcome daemon_down; first: %s", len(l), l[0])
	}
	if l := p.logs.Lines("does not answer"); len(l) > 0 {
		t.Errorf("a container was destroyed as not answering (%d lines); first: %s", len(l), l[0])
	}
	if p.exited() {
		t.Fatalf("ganger exited during the flood: %v", p.err)
	}

	for _, s := range sessions {
		s.c.Close()
	}
	if err := p.term(); err != nil {
		t.Errorf("ganger exited with %v after SIGTERM; want 0", err)
	}
	if left := dockertest.Owned(t, d, node); len(left) != 0 {
		t.Errorf("%d container(s) left after ganger's shutdown", len(left))
	}
}

// Defect 7: a daemon that stalls (SIGSTOP) is marked down, but sessions
// whose containers still answer go on; it is up again after SIGCONT.
func TestStalledDaemonKeepsSessions(t *testing.T) {
	dockertest.Daemon(t) // the demo image is copied from the local daemon
	e, err := dockertest.StartExtra(5, false)
	if err != nil {
		t.Fatalf("extra daemon 5: %v", err)
	}
	t.Cleanup(e.Stop)
	pid := extraPID(t, 5)
	cont := func() { syscall.Kill(pid, syscall.SIGCONT) }
	de := dockertest.DaemonAt(t, e.Host)
	node := dockertest.Node(t, de)
	top := fmt.Sprintf("daemons:\n  - {name: %s, host: %q}\nhealth: {interval: 200ms, timeout: 500ms, failures: 2}\n", e.Name, e.Host)
	p := startProc(t, writeConfig(t, baseConfig(node, top, "    cmd: [\"-banner\", \"hi\"]\n    timeouts: {drain: 5s}\n")), 0)
	t.Cleanup(cont) // runs first: ganger's shutdown and the checks need the daemon
	addr := p.svcAddr()

	sessions := make([]*session, 5)
	for i := range sessions {
		sessions[i] = dialSession(t, addr, "hi")
		if err := sessions[i].echo(fmt.Sprintf("before %d", i), 30*time.Second); err != nil {
			t.Fatalf("session %d before the stall: %v", i, err)
		}
	}

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("kill -STOP %d: %v", pid, err)
	}
	stopped := time.Now()
	broken := make([]string, len(sessions)) // why each session stopped echoing
	for sec := 0; time.Since(stopped) < 15*time.Second; sec++ {
		for i, s := range sessions {
			if broken[i] != "" {
				continue
			}
			if err := s.echo(fmt.Sprintf("stalled %d.%d", i, sec), 3*time.Second); err != nil {
				broken[i] = fmt.Sprintf("session %d at +%.1fs of the stall: %v", i, time.Since(stopped).Seconds(), err)
			}
		}
		time.Sleep(time.Until(stopped.Add(time.Duration(sec+1) * time.Second)))
	}
	cont()
	t.Logf("dockerd %s (pid %d) stopped for %s, then continued", e.Name, pid, time.Since(stopped).Round(time.Millisecond))

	downLogged := waitUntil(5*time.Second, 100*time.Millisecond, func() bool {
		return len(p.logs.Lines("daemon down", "daemon="+e.Name)) > 0
	})
	upLogged := waitUntil(30*time.Second, 100*time.Millisecond, func() bool {
		return len(p.logs.Lines("daemon up again", "daemon="+e.Name)) > 0
	})
	for i, s := range sessions {
		if broken[i] != "" {
			continue
		}
		if err := s.echo(fmt.Sprintf("after %d", i), 10*time.Second); err != nil {
			broken[i] = fmt.Sprintf("session %d after the stall: %v", i, err)
		}
	}
	var why []string
	for _, b := range broken {
		if b != "" {
			why = append(why, b)
		}
	}
	t.Logf("sessions echoing throughout: %d/5; daemon down logged: %v, up again logged: %v; session outcomes: %v",
		5-len(why), downLogged, upLogged, outcomes(p.logs))
	for _, l := range p.logs.Lines("daemon", "daemon="+e.Name) {
		if strings.Contains(l, "down") || strings.Contains(l, "up again") {
			t.Logf("log: %s", l)
		}
	}
	if len(why) > 0 {
		t.Errorf("%d of 5 sessions broke while their daemon was stalled:\n%s", len(why), strings.Join(why, "\n"))
	}
	if !downLogged {
		t.Errorf(`no "daemon down" line with daemon=%s while dockerd was stopped 15s`, e.Name)
	}
	if !upLogged {
		t.Errorf(`no "daemon up again" line with daemon=%s within 30s of SIGCONT`, e.Name)
	}
}

// extraPID reads extra daemon i's pid from its pidfile.
func extraPID(t *testing.T, i int) int {
	t.Helper()
	path := fmt.Sprintf("/tmp/gd%d/docker.pid", i)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("extra daemon's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("extra daemon's pid in %s: %q", path, b)
	}
	return pid
}

// Defect 8: one engine listed twice (two URLs to the same socket) is
// refused at start-up, naming both daemons.
func TestSameEngineTwiceRefused(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	a, errA := os.Stat("/var/run/docker.sock")
	b, errB := os.Stat("/run/docker.sock")
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Fatalf("this test needs /var/run/docker.sock and /run/docker.sock to be the same socket: %v, %v", errA, errB)
	}
	top := "daemons:\n  - {name: engine-via-var-run, host: unix:///var/run/docker.sock}\n  - {name: engine-via-run, host: unix:///run/docker.sock}\n"
	p := startProc(t, writeConfig(t, baseConfig(node, top, "    cmd: [\"-banner\", \"hi\"]\n")), 0)
	var served bool
	waitUntil(time.Minute, 20*time.Millisecond, func() bool {
		served = len(p.logs.Lines("msg=listening")) > 0
		return p.exited() || served
	})
	switch {
	case served:
		t.Fatalf("ganger serve started serving with one engine listed twice (engine-via-var-run, engine-via-run); want it to exit non-zero at start-up")
	case !p.exited():
		t.Fatalf("ganger serve neither exited nor served within a minute")
	}
	var code int
	if ee, ok := p.err.(interface{ ExitCode() int }); ok {
		code = ee.ExitCode()
	}
	named := p.logs.Lines("engine-via-var-run", "engine-via-run")
	t.Logf("exit: %v; lines naming both daemons: %q", p.err, named)
	if code == 0 {
		t.Errorf("ganger serve exited 0; want non-zero")
	}
	if len(named) == 0 {
		t.Errorf("no error line names both daemons (engine-via-var-run, engine-via-run); output:\n%s", p.logs)
	}
}
