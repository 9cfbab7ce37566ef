package stress

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// proc is a `ganger serve` child process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *dockertest.Logs
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done is closed
}

// startProc runs `ganger serve --config config`; with nofile > 0 under
// `ulimit -n nofile` (soft and hard). At the test's end it is stopped with
// SIGTERM, and SIGKILL if that has not ended it within a minute; if the
// test failed its logs are kept in a file and their tail logged.
func startProc(t *testing.T, config string, nofile int) *proc {
	t.Helper()
	p := &proc{t: t, logs: &dockertest.Logs{}, done: make(chan struct{})}
	if nofile > 0 {
		// exec: the shell's pid becomes ganger's, so signals reach it.
		p.cmd = exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), binary, "serve", "--config", config)
	} else {
		p.cmd = exec.Command(binary, "serve", "--config", config)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(time.Minute):
				t.Errorf("ganger (pid %d) still running a minute after SIGTERM; killed with SIGKILL", p.pid())
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			p.keepLogs()
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 kills ganger with SIGKILL and waits for it.
func (p *proc) kill9() {
	p.cmd.Process.Kill()
	<-p.done
}

// term sends SIGTERM and waits up to a minute for ganger to exit; it
// reports the exit status, or fails t.
func (p *proc) term() error {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(time.Minute):
		p.t.Fatalf("ganger did not exit within a minute of SIGTERM")
		return nil
	}
}

// keepLogs writes the full logs to a file that outlives the test and logs
// their tail.
func (p *proc) keepLogs() {
	all := p.logs.String()
	dir := filepath.Join(os.TempDir(), "ganger-stress-logs")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, strings.ReplaceAll(p.t.Name(), "/", "_")+fmt.Sprintf("-%d.log", p.pid()))
	if err := os.WriteFile(path, []byte(all), 0o644); err == nil {
		p.t.Logf("ganger (pid %d) logs: %s (%d lines)", p.pid(), path, strings.Count(all, "\n"))
	}
	lines := strings.Split(strings.TrimRight(all, "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	p.t.Logf("last ganger log lines:\n%s", strings.Join(lines, "\n"))
}

var (
	listenRE = regexp.MustCompile(`msg=listening service=echo addr=(\S+)`)
	apiRE    = regexp.MustCompile(`msg="api listening" addr=(\S+)`)
)

// ready waits for the echo service and the API to listen and returns their
// addresses. It polls often: a test may want to be the first client.
func (p *proc) ready() (svc, api string) {
	p.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		logs := p.logs.String()
		if m := listenRE.FindStringSubmatch(logs); m != nil && svc == "" {
			svc = m[1]
		}
		if m := apiRE.FindStringSubmatch(logs); m != nil {
			api = m[1]
		}
		if svc != "" && api != "" {
			return svc, api
		}
		if p.exited() {
			p.t.Fatalf("ganger exited (%v) before it listened:\n%s", p.err, logs)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("ganger did not listen within 2 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// svcAddr waits only for the service to listen (the API starts after it).
func (p *proc) svcAddr() string {
	p.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := listenRE.FindStringSubmatch(p.logs.String()); m != nil {
			return m[1]
		}
		if p.exited() {
			p.t.Fatalf("ganger exited (%v) before it listened:\n%s", p.err, p.logs)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("ganger did not listen within 2 minutes")
		}
		time.Sleep(time.Millisecond)
	}
}

var outcomeRE = regexp.MustCompile(`outcome=(\S+)`)

// outcomes counts the session end lines by outcome.
func outcomes(l *dockertest.Logs) map[string]int {
	out := map[string]int{}
	for _, line := range l.Lines(`msg="session end"`) {
		if m := outcomeRE.FindStringSubmatch(line); m != nil {
			out[m[1]]++
		}
	}
	return out
}

// writeConfig writes yml to a file of its own and returns its path.
func writeConfig(t *testing.T, yml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// baseConfig is a node with the API on a free port, no reconciler, and one
// service "echo" of the demo image; service is extra YAML for that service
// (each line indented by four spaces).
func baseConfig(node, top, service string) string {
	if strings.Contains(top, "daemons:") {
		// An extra daemon on this host must not make networks of its own
		// (see dockertest.Extra): the service uses its default bridge.
		service = "    network: bridge\n" + service
	}
	return fmt.Sprintf(`node: %s
reconcile: 0
api: {listen: 127.0.0.1:0, public_read: true}
%sservices:
  - name: echo
    listen: 127.0.0.1:0
    image: %s
    port: 7777
%s`, node, top, dockertest.Image, service)
}

// session is a client connection with a line reader.
type session struct {
	c *net.TCPConn
	r *bufio.Reader
}

// dialSession connects to addr; the connection is closed when t ends. With
// banner set, it waits for that banner line (its container answers).
func dialSession(t *testing.T, addr, banner string) *session {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	s := &session{c: c.(*net.TCPConn), r: bufio.NewReader(c)}
	if banner != "" {
		got, err := s.line(60 * time.Second)
		if err != nil || got != banner {
			t.Fatalf("banner: got %q, %v; want %q", got, err, banner)
		}
	}
	return s
}

// line reads one line (without its newline) within timeout.
func (s *session) line(timeout time.Duration) (string, error) {
	s.c.SetReadDeadline(time.Now().Add(timeout))
	defer s.c.SetReadDeadline(time.Time{})
	l, err := s.r.ReadString('\n')
	return strings.TrimSuffix(l, "\n"), err
}

// echo sends msg and checks that it comes back within timeout.
func (s *session) echo(msg string, timeout time.Duration) error {
	s.c.SetWriteDeadline(time.Now().Add(timeout))
	_, err := fmt.Fprintln(s.c, msg)
	s.c.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("send %q: %w", msg, err)
	}
	got, err := s.line(timeout)
	if err != nil {
		return fmt.Errorf("echo of %q: got %q, %w", msg, got, err)
	}
	if got != msg {
		return fmt.Errorf("echo of %q: got %q", msg, got)
	}
	return nil
}

// waitUntil polls cond every `every` until it holds (true) or timeout
// passes (false).
func waitUntil(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// ownedCLI counts node's containers on the local daemon with the docker
// CLI; unlike dockertest.Owned it may run outside the test's goroutine.
func ownedCLI(node string) (int, error) {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=ganger.managed=true", "--filter", "label=ganger.owner="+node).Output()
	if err != nil {
		return 0, err
	}
	return len(strings.Fields(string(out))), nil
}

// fdCount is the number of open descriptors of pid.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// fdKinds sorts pid's descriptors by kind (tcp, unix, pipe, eventpoll,
// file...), to tell what leaked.
func fdKinds(pid int) string {
	inodes := func(file string, field int) map[string]bool {
		m := map[string]bool{}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > field {
				m[f[field]] = true
			}
		}
		return m
	}
	tcp, tcp6, unix := inodes("tcp", 9), inodes("tcp6", 9), inodes("unix", 6)
	kinds := map[string]int{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		kind := "file"
		switch {
		case strings.HasPrefix(link, "socket:["):
			ino := strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")
			switch {
			case tcp[ino] || tcp6[ino]:
				kind = "tcp"
			case unix[ino]:
				kind = "unix"
			default:
				kind = "socket"
			}
		case strings.HasPrefix(link, "pipe:"):
			kind = "pipe"
		case strings.HasPrefix(link, "anon_inode:"):
			kind = link
		}
		kinds[kind]++
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// rssKB is pid's resident set size in KiB.
func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// getJSON decodes GET url into v with client.
func getJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// apiClient opens a new connection per request, as a monitoring probe
// would, and gives up after timeout.
func apiClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

type daemonStatus struct {
	Name       string `json:"name"`
	Up         bool   `json:"up"`
	Containers int    `json:"containers"`
}

type serviceStatus struct {
	Name     string           `json:"name"`
	Served   int64            `json:"sessions_served"`
	Live     int              `json:"live_sessions"`
	Queued   int              `json:"queued"`
	Failures map[string]int64 `json:"failures"`
}

// logServices logs what the API says of the services, for the record.
func logServices(t *testing.T, api string) {
	t.Helper()
	var svcs []serviceStatus
	if err := getJSON(apiClient(5*time.Second), "http://"+api+"/v1/services", &svcs); err != nil {
		t.Logf("GET /v1/services: %v", err)
		return
	}
	for _, s := range svcs {
		t.Logf("service %s: served=%d live=%d queued=%d failures=%v", s.Name, s.Served, s.Live, s.Queued, s.Failures)
	}
}
