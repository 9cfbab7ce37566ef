package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	token     = "full-token-for-tests"
	readToken = "read-token-for-tests"
)

// apiNode runs the binary with the API on a free port, a token and a read
// token, an echo service, a capped one (one container, no queue) for
// refusals, and "warm", with an adaptive pool.
func apiNode(t *testing.T) (p *proc, api, echo, capped string) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	dir := t.TempDir()
	path, tokenFile, readFile := filepath.Join(dir, "ganger.yaml"), filepath.Join(dir, "token"), filepath.Join(dir, "read-token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	os.WriteFile(readFile, []byte(readToken+"\n"), 0o600)
	y := fmt.Sprintf(`node: %s
api: {listen: 127.0.0.1:0, token_file: %s, read_token_file: %s}
services:
  - {name: echo, listen: 127.0.0.1:0, image: %[4]s, port: 7777, cmd: [-banner, hi], timeouts: {drain: 1s}}
  - {name: capped, listen: 127.0.0.1:0, image: %[4]s, port: 7777, cmd: [-banner, hi], max_containers: 1, queue: {max: 0}, timeouts: {drain: 1s}}
  - {name: warm, listen: 127.0.0.1:0, image: %[4]s, port: 7777, cmd: [-banner, hi], pool: {min: 1, max: 3, adaptive: true}, timeouts: {drain: 1s}}
`, node, tokenFile, readFile, dockertest.Image)
	os.WriteFile(path, []byte(y), 0o644)
	p = startProc(t, path)
	echo = p.addr()
	addrOf := func(re *regexp.Regexp) string {
		var a string
		dockertest.Eventually(t, time.Minute, "no address logged", func() bool {
			if m := re.FindStringSubmatch(p.logs.String()); m != nil {
				a = m[1]
			}
			return a != ""
		})
		return a
	}
	api = "http://" + addrOf(regexp.MustCompile(`msg="api listening" addr=(\S+)`))
	capped = addrOf(regexp.MustCompile(`msg=listening service=capped addr=(\S+)`))
	return p, api, echo, capped
}

func ctlRun(t *testing.T, args ...string) (string, error) {
	out, err := exec.Command(binary, append([]string{"ctl"}, args...)...).CombinedOutput()
	return string(out), err
}

// get makes a GET with the read token, as a monitoring probe would.
func get(url string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+readToken)
	return http.DefaultClient.Do(req)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestAPIAndCtl(t *testing.T) {
	p, api, echo, capped := apiNode(t)
	c, _ := openSession(t, echo)
	var s struct {
		Live []struct{ ID, Service string }
	}
	getJSON(t, api+"/v1/sessions", &s)
	if len(s.Live) != 1 || s.Live[0].Service != "echo" {
		t.Fatalf("live sessions %+v; want the one open", s.Live)
	}
	id := s.Live[0].ID
	if out, err := ctlRun(t, "--api", api, "status"); err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "--token") {
		t.Fatalf("ctl status without a token: %v\n%s; want a refusal that says how to give the token", err, out)
	}
	if out, err := ctlRun(t, "--api", api, "--token", readToken, "sessions"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "live") {
		t.Fatalf("ctl sessions: %v\n%s", err, out)
	}
	if out, err := ctlRun(t, "--api", api, "--token", readToken, "status"); err != nil || !regexp.MustCompile(`(?m)^echo\s`).MatchString(out) || !regexp.MustCompile(`(?m)^local\s+up\s`).MatchString(out) {
		t.Fatalf("ctl status: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"kill", id}, {"drain", "local"}, {"undrain", "local"}, {"reload"}} {
		out, err := ctlRun(t, append([]string{"--api", api, "--token", readToken}, args...)...)
		if err == nil || !strings.Contains(out, "403") || !strings.Contains(out, "read-only") {
			t.Fatalf("ctl %s with the read token: %v\n%s; want 403, read-only", args[0], err, out)
		}
	}
	var ds []struct{ Drained bool }
	if getJSON(t, api+"/v1/daemons", &ds); ds[0].Drained || strings.Contains(p.logs.String(), "outcome=killed") {
		t.Fatalf("a call refused to the read token changed something: %+v\n%s", ds, p.logs)
	}
	if out, err := ctlRun(t, "--api", api, "--token", "wrong-token-for-tests", "kill", id); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("ctl kill with a wrong token: %v\n%s", err, out)
	}
	checkGuards(t, api)
	if out, err := ctlRun(t, "--api", api, "--token", token, "kill", id); err != nil {
		t.Fatalf("ctl kill: %v\n%s", err, out)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("killed session's client not closed: %v", err)
	}
	dockertest.Eventually(t, 30*time.Second, "kill not logged", func() bool { return strings.Contains(p.logs.String(), "outcome=killed") })

	for _, cmd := range []string{"drain", "undrain"} {
		if out, err := ctlRun(t, "--api", api, "--token", token, cmd, "local"); err != nil {
			t.Fatalf("ctl %s: %v\n%s", cmd, err, out)
		}
		var ds []struct {
			Name    string
			Drained bool
		}
		getJSON(t, api+"/v1/daemons", &ds)
		if ds[0].Drained != (cmd == "drain") {
			t.Fatalf("after %s: %+v", cmd, ds)
		}
	}
	if out, err := ctlRun(t, "--api", api, "--token", token, "reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	if out, err := ctlRun(t, "--api", api, "--token", token, "--json", "status"); err != nil || !json.Valid([]byte(out)) {
		t.Fatalf("ctl --json status: %v\n%s", err, out)
	}

	openSession(t, capped) // holds the capped service's only container
	over, err := net.Dial("tcp", capped)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(over) // refused: queue_full
	checkPool(t, p, api)
	checkMetrics(t, api)
}

// checkPool takes a session from the adaptive pool of "warm" and finds it
// in /v1/services: a hit, the measured arrivals and start time.
func checkPool(t *testing.T, p *proc, api string) {
	t.Helper()
	var addr string
	re := regexp.MustCompile(`msg=listening service=warm addr=(\S+)`)
	if m := re.FindStringSubmatch(p.logs.String()); m != nil {
		addr = m[1]
	}
	type pooled struct {
		Name string
		Pool *struct {
			Adaptive     bool
			Target       int
			Ready        int
			ArrivalRate  float64            `json:"arrivals_per_second"`
			StartSeconds map[string]float64 `json:"start_seconds"`
			Hits         int64
		}
	}
	warm := func() pooled {
		var svcs []pooled
		getJSON(t, api+"/v1/services", &svcs)
		for _, s := range svcs {
			if s.Name == "warm" {
				return s
			}
		}
		t.Fatalf("no service warm in %+v", svcs)
		return pooled{}
	}
	dockertest.Eventually(t, time.Minute, "warm pool not ready", func() bool { return warm().Pool.Ready == 1 })
	openSession(t, addr)
	w := warm()
	if !w.Pool.Adaptive || w.Pool.Hits != 1 || w.Pool.ArrivalRate <= 0 || w.Pool.StartSeconds["local"] <= 0 || w.Pool.Target < 1 {
		t.Fatalf("warm's pool %+v; want adaptive, one hit, arrivals and local's start time measured", *w.Pool)
	}
}

// checkGuards asks the API as a browser, a stranger and a DNS-rebinding
// page would: reads need a token (a browser gets a login prompt, and its
// Basic auth works), foreign Host headers are refused but for the health
// checks, and every answer carries nosniff.
func checkGuards(t *testing.T, api string) {
	t.Helper()
	for _, tt := range []struct {
		path, host, user string
		want             int
	}{
		{"/", "", "", 401},
		{"/metrics", "", "", 401},
		{"/", "", "viewer", 200},
		{"/v1/services", "", "viewer", 200},
		{"/v1/services", "rebound.example", "viewer", 421},
		{"/healthz", "rebound.example", "", 200},
	} {
		req, _ := http.NewRequest("GET", api+tt.path, nil)
		if tt.host != "" {
			req.Host = tt.host
		}
		if tt.user != "" {
			req.SetBasicAuth(tt.user, readToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s (Host %q, user %q): %s; want %d", tt.path, tt.host, tt.user, resp.Status, tt.want)
		}
		if resp.StatusCode == 401 && !slices.Contains(resp.Header.Values("WWW-Authenticate"), `Basic realm="ganger"`) {
			t.Errorf("GET %s: 401 without a Basic challenge: %q", tt.path, resp.Header.Values("WWW-Authenticate"))
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", tt.path)
		}
	}
}

// checkMetrics compares the ganger_ metric families and their label names
// with testdata/metrics.golden (go test -update rewrites it).
func checkMetrics(t *testing.T, api string) {
	t.Helper()
	var got []string
	dockertest.Eventually(t, 30*time.Second, "refusal not counted", func() bool {
		resp, err := get(api + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got = metricShapes(resp.Body)
		return slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "ganger_refusals_total") })
	})
	golden := "testdata/metrics.golden"
	if *update {
		os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(got, "\n") + "\n"; g != string(want) {
		t.Fatalf("metrics differ from %s (go test -update to accept):\ngot:\n%s\nwant:\n%s", golden, g, want)
	}
}

// metricShapes returns "family{label,...}" for every ganger_ family.
func metricShapes(r io.Reader) []string {
	kinds := map[string]string{}
	labels := map[string]map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			kinds[f[2]] = f[3]
			continue
		}
		if !strings.HasPrefix(line, "ganger_") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suffix); base != name && kinds[base] == "histogram" {
				name = base
			}
		}
		if labels[name] == nil {
			labels[name] = map[string]bool{}
		}
		for _, kv := range regexp.MustCompile(`(\w+)="`).FindAllStringSubmatch(rest, -1) {
			if kv[1] != "le" {
				labels[name][kv[1]] = true
			}
		}
	}
	var out []string
	for name, ls := range labels {
		keys := make([]string, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out = append(out, fmt.Sprintf("%s %s{%s}", name, kinds[name], strings.Join(keys, ",")))
	}
	slices.Sort(out)
	return out
}

// The status page in real headless Chromium, with a session open: its DOM
// shows that session; a screenshot is kept in the test's temp dir.
func TestStatusPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not installed (make test-deps): %v", err)
	}
	_, api, echo, _ := apiNode(t)
	openSession(t, echo)
	var s struct{ Live []struct{ ID string } }
	getJSON(t, api+"/v1/sessions", &s)
	if len(s.Live) != 1 {
		t.Fatalf("live: %+v", s.Live)
	}
	ctx := browser(t, chromium, 1280, 900)
	sel := chromedp.CSS(fmt.Sprintf(`tr[data-session="%s"]`, s.Live[0].ID))
	// The read token as the password the browser's login prompt asks for
	// (the API answers 401 with a Basic challenge; the browser retries).
	page := strings.Replace(api, "http://", "http://viewer:"+readToken+"@", 1) + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(sel)); err != nil {
		t.Fatal(err)
	}
	// The page's CSP lets its inline style in by hash: the style applies.
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("th")).backgroundColor`))
	if err != nil || bg != "rgb(246, 248, 250)" {
		t.Fatalf("table header background %q, %v; want the page's style, rgb(246, 248, 250)", bg, err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if title != "Ganger status" || !strings.Contains(row, "echo") || !strings.Contains(row, "local") {
		t.Fatalf("title %q, session row %q", title, row)
	}
	services, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#services")))
	if err != nil || !strings.Contains(services, "adaptive") {
		t.Fatalf("services table %q, %v; want the warm service's adaptive pool shown", services, err)
	}
	png := filepath.Join(t.TempDir(), "status.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", png, len(shot))
	if os.Getenv("GANGER_SCREENSHOT") != "" {
		os.WriteFile(os.Getenv("GANGER_SCREENSHOT"), shot, 0o644)
	}
}

// browser starts Debian's headless Chromium for the test, with the flags
// this project runs it with; it is closed when the test ends, and every
// step on it is bounded by two minutes.
func browser(t *testing.T, chromium string, width, height int) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancel(); cancelCtx(); cancelAlloc() })
	return ctx
}
