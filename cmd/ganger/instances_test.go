package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/store/pgtest"
)

// redisImage is the Redis server image `make test` builds from Debian's
// package (scripts/build-redis-image.sh).
const redisImage = "ganger-redis:latest"

type instanceJSON struct {
	ID           string
	State        string
	Host         string
	Ports        map[string]int
	Secrets      map[string]string
	Connect      string
	OwnerToken   string    `json:"owner_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	MaxExpiresAt time.Time `json:"max_expires_at"`
	ExtendsLeft  int       `json:"extends_left"`
	EndedAt      time.Time `json:"ended_at"`
}

// instanceNode writes the config of a node with a public Redis instance
// service and starts it; it returns the process, the API's URL and the
// config's path (a restart reuses it, and its store).
func instanceNode(t *testing.T, node string) (*proc, string, string) {
	d := dockertest.Daemon(t)
	if err := d.EnsureImage(context.Background(), redisImage, "never"); err != nil {
		t.Fatalf("%s: %v (make test builds it: make redis-image)", redisImage, err)
	}
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	y := fmt.Sprintf(`node: %s
api: {listen: 127.0.0.1:0, token: %s}
services:
  - name: redis
    mode: instance
    image: %s
    ports: [6379]
    cmd: ["--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/tmp", "--requirepass", "{{.Secrets.password}}"]
    instance:
      public: true
      ttl: 4s
      max_ttl: 7s
      extend: {by: 2s, max: 1}
      per_owner: 2
      create_rate: {rate: 100, burst: 100}
      secrets: {password: 24}
      connect: "redis://:{{.Secrets.password}}@{{.Host}}:{{.Port 6379}}"
`, node, token, redisImage)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	p, api := startInstanceProc(t, path)
	return p, api, path
}

var apiListenRE = regexp.MustCompile(`msg="api listening" addr=(\S+)`)

func startInstanceProc(t *testing.T, path string) (*proc, string) {
	p := startProc(t, path)
	var api string
	dockertest.Eventually(t, time.Minute, "api never listened", func() bool {
		if m := apiListenRE.FindStringSubmatch(p.logs.String()); m != nil {
			api = "http://" + m[1]
		}
		return api != ""
	})
	return p, api
}

// call makes an API call with the bearer token given ("" for none) and
// decodes the answer into v if it is not nil.
func call(t *testing.T, method, url, bearer string, v any) int {
	t.Helper()
	return callBody(t, method, url, bearer, "", v)
}

// redisSession connects to an instance, AUTHs with password and runs
// commands, returning each reply's first line.
func redisSession(t *testing.T, addr, password string, cmds ...string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var out []string
	for _, cmd := range append([]string{"AUTH " + password}, cmds...) {
		fmt.Fprintf(c, "%s\r\n", cmd)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "$") && line != "$-1" { // a bulk string: its value follows
			v, _ := r.ReadString('\n')
			line = strings.TrimRight(v, "\r\n")
		}
		out = append(out, line)
	}
	return out
}

// One API call gives a private Redis: host, port and a generated password
// that Redis requires; the owner token shows it again and extends it (once,
// within max_ttl), the admin sees it without its secrets, a stranger not at
// all. Ganger killed with -9 and started again takes it back: it still
// answers and still expires at its time, its record saying expired once
// its container is gone. Twenty concurrent creates by one address give
// exactly per_owner instances.
func TestInstancesEndToEnd(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	p, api, path := instanceNode(t, node)

	var inst instanceJSON
	if code := call(t, "POST", api+"/v1/services/redis/instances", "", &inst); code != 201 {
		t.Fatalf("create: %d", code)
	}
	addr := net.JoinHostPort(inst.Host, fmt.Sprint(inst.Ports["6379"]))
	pw := inst.Secrets["password"]
	if inst.State != "running" || len(pw) != 24 || inst.OwnerToken == "" || inst.Connect != "redis://:"+pw+"@"+addr {
		t.Fatalf("instance %+v", inst)
	}
	if got := redisSession(t, addr, pw, "SET k v", "GET k"); got[0] != "+OK" || got[1] != "+OK" || got[2] != "v" {
		t.Fatalf("redis with the password: %q", got)
	}
	if got := redisSession(t, addr, "wrong-password"); !strings.HasPrefix(got[0], "-WRONGPASS") {
		t.Fatalf("redis with a wrong password: %q", got)
	}
	if strings.Contains(p.logs.String(), pw) {
		t.Fatal("the password is in Ganger's log")
	}
	req, _ := http.NewRequest("GET", api+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ganger_instances_created_total{service="redis"} 1`, `ganger_instances{service="redis",state="running"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(metrics), pw) {
		t.Fatal("the password is in the metrics")
	}

	var mine, admin instanceJSON
	if code := call(t, "GET", api+"/v1/instances/"+inst.ID, inst.OwnerToken, &mine); code != 200 || mine.Secrets["password"] != pw {
		t.Fatalf("owner's GET: %d %+v", code, mine)
	}
	if code := call(t, "GET", api+"/v1/instances/"+inst.ID, token, &admin); code != 200 || admin.Secrets["password"] == pw || admin.Connect != "" {
		t.Fatalf("admin's GET: %d %+v; want no secret", code, admin)
	}
	if code := call(t, "GET", api+"/v1/instances/"+inst.ID, "", nil); code != 401 {
		t.Fatalf("GET without a token: %d", code)
	}
	if code := call(t, "GET", api+"/v1/instances/"+inst.ID, "not-the-owner-token", nil); code != 404 {
		t.Fatalf("GET with another token: %d", code)
	}
	var ext instanceJSON
	if code := call(t, "POST", api+"/v1/instances/"+inst.ID+"/extend", inst.OwnerToken, &ext); code != 200 ||
		!ext.ExpiresAt.Equal(inst.ExpiresAt.Add(2*time.Second)) || ext.ExtendsLeft != 0 {
		t.Fatalf("extend: %d %+v; want 2s more", code, ext)
	}
	if code := call(t, "POST", api+"/v1/instances/"+inst.ID+"/extend", inst.OwnerToken, nil); code != 409 {
		t.Fatalf("a second extension of one: %d; want 409", code)
	}
	// Restart: a fresh Redis (the key is gone), same address and password.
	var re instanceJSON
	if code := call(t, "POST", api+"/v1/instances/"+inst.ID+"/restart", inst.OwnerToken, &re); code != 200 ||
		re.Ports["6379"] != inst.Ports["6379"] || !re.ExpiresAt.Equal(ext.ExpiresAt) {
		t.Fatalf("restart: %d %+v; want the same port and expiry", code, re)
	}
	if got := redisSession(t, addr, pw, "GET k", "SET k v"); got[1] != "$-1" || got[2] != "+OK" {
		t.Fatalf("redis after the restart: %q; want a fresh one with the same password", got)
	}

	// kill -9, then start again: the instance lives on and is taken back.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	if got := redisSession(t, addr, pw, "GET k"); got[1] != "v" {
		t.Fatalf("while Ganger is down: %q", got)
	}
	_, api = startInstanceProc(t, path)
	if got := redisSession(t, addr, pw, "GET k"); got[1] != "v" {
		t.Fatalf("after the restart: %q", got)
	}
	var ended instanceJSON
	dockertest.Eventually(t, time.Minute, "instance not expired", func() bool {
		call(t, "GET", api+"/v1/instances/"+inst.ID, inst.OwnerToken, &ended)
		return ended.State == "expired"
	})
	if ended.EndedAt.Before(ext.ExpiresAt) {
		t.Fatalf("ended at %s, before its expiry %s", ended.EndedAt, ext.ExpiresAt)
	}
	t.Logf("expired %s after its time (the benchmark measures this)", ended.EndedAt.Sub(ext.ExpiresAt))
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=ganger.instance="+inst.ID).Output(); len(bytes.TrimSpace(out)) != 0 {
		t.Fatal("record says expired while its container is there")
	}

	// Quota: twenty at once from one address.
	var mu sync.Mutex
	codes := map[int]int{}
	var made []instanceJSON
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			var got instanceJSON
			code := call(t, "POST", api+"/v1/services/redis/instances", "", &got)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == 201 {
				made = append(made, got)
			}
		})
	}
	wg.Wait()
	if codes[201] != 2 || codes[429] != 18 {
		t.Fatalf("20 concurrent creates by one address: %v; want 2 created and 18 refused", codes)
	}
	for _, m := range made {
		if code := call(t, "DELETE", api+"/v1/instances/"+m.ID, m.OwnerToken, nil); code != 200 {
			t.Fatalf("delete: %d", code)
		}
	}

	// The same through ganger ctl.
	out, err := ctlRun(t, "--api", api, "instance", "create", "redis", "--ttl", "3s")
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "  "); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err != nil || fields["id"] == "" || len(fields["secret password"]) != 24 || fields["owner token"] == "" {
		t.Fatalf("ctl instance create: %v\n%s", err, out)
	}
	if out, err := ctlRun(t, "--api", api, "--token", token, "instances"); err != nil || !strings.Contains(out, fields["id"]) || strings.Contains(out, fields["secret password"]) {
		t.Fatalf("ctl instances: %v\n%s", err, out)
	}
	if out, err := ctlRun(t, "--api", api, "--token", fields["owner token"], "instance", "delete", fields["id"]); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("ctl instance delete with the owner token: %v\n%s", err, out)
	}
	var live []instanceJSON
	if call(t, "GET", api+"/v1/instances", token, &live); len(live) != 0 {
		t.Fatalf("%d live instances left", len(live))
	}
}

// The one-click page in real headless Chromium: the button makes an
// instance, the page shows its host, port and password (read here from
// the DOM and used to speak to Redis), and its Delete button ends it.
func TestInstancePageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not installed (make test-deps): %v", err)
	}
	d := dockertest.Daemon(t)
	_, api, _ := instanceNode(t, dockertest.Node(t, d))
	ctx := browser(t, chromium, 1000, 800)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	if err := chromedp.Do(ctx,
		chromedp.Navigate(api+"/instances"),
		chromedp.Click(css("#create-redis")),
		chromedp.WaitVisible(css("#host")),
	); err != nil {
		t.Fatal(err)
	}
	host, err1 := chromedp.Run(ctx, chromedp.Text(css("#host")))
	port, err2 := chromedp.Run(ctx, chromedp.Text(css(`.port[data-port="6379"]`)))
	password, err3 := chromedp.Run(ctx, chromedp.Value(css(`input[data-secret="password"]`)))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if got := redisSession(t, net.JoinHostPort(host, port), password, "PING"); got[0] != "+OK" || got[1] != "+PONG" {
		t.Fatalf("redis at %s:%s with the page's password: %q", host, port, got)
	}
	// The Copy button puts the connect line on the clipboard (read back
	// with the page's permission to read it).
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: perm}, Setting: cdpbrowser.PermissionSettingGranted, Origin: api,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(css("#copy-connect")),
		chromedp.WaitVisible(css("#copy-connect")),
	); err != nil {
		t.Fatal(err)
	}
	dockertest.Eventually(t, 10*time.Second, "the Copy button never said Copied", func() bool {
		label, _ := chromedp.Run(ctx, chromedp.Text(css("#copy-connect")))
		return label == "Copied"
	})
	copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if want := "redis://:" + password + "@" + net.JoinHostPort(host, port); err != nil || copied != want {
		t.Fatalf("clipboard after Copy: %q, %v; want %q", copied, err, want)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(css("#delete")),
		chromedp.WaitVisible(css(`#instance[data-state="deleted"]`)),
	); err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(ctx, chromedp.Text(css("#state")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(state, "deleted") {
		t.Fatalf("after Delete the page says %q", state)
	}
}

// Two front-ends share one PostgreSQL store (a real server, started for
// the test): twenty concurrent creates by one address, split over both,
// give exactly per_owner instances; an instance made on one front-end is
// deleted through the other, its container with it.
func TestInstancesTwoFrontEnds(t *testing.T) {
	d := dockertest.Daemon(t)
	dsn := pgtest.DSN(t)
	var apis []string
	for range 2 {
		node := dockertest.Node(t, d)
		path := filepath.Join(t.TempDir(), "ganger.yaml")
		y := fmt.Sprintf(`node: %s
api: {listen: 127.0.0.1:0, token: %s}
store: {driver: postgres, dsn: %q}
services:
  - name: echo
    mode: instance
    image: %s
    ports: [7777]
    cmd: ["-banner", "hi"]
    limits: {memory: 32MiB}
    instance: {public: true, ttl: 1m, per_owner: 2, create_rate: {rate: 100, burst: 100}}
`, node, token, dsn, dockertest.Image)
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		_, api := startInstanceProc(t, path)
		apis = append(apis, api)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	type madeOn struct {
		api string
		in  instanceJSON
	}
	var made []madeOn
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			api := apis[i%2]
			var got instanceJSON
			code := call(t, "POST", api+"/v1/services/echo/instances", "", &got)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == 201 {
				made = append(made, madeOn{api, got})
			}
		})
	}
	wg.Wait()
	if codes[201] != 2 || codes[429] != 18 {
		t.Fatalf("20 concurrent creates over two front-ends: %v; want 2 created and 18 refused", codes)
	}
	for _, m := range made {
		api, in := m.api, m.in
		other := apis[0]
		if other == api {
			other = apis[1]
		}
		var del instanceJSON
		if code := call(t, "DELETE", other+"/v1/instances/"+in.ID, in.OwnerToken, &del); code != 200 || del.State != "deleted" {
			t.Fatalf("delete through the other front-end: %d %+v", code, del)
		}
		if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=ganger.instance="+in.ID).Output(); len(bytes.TrimSpace(out)) != 0 {
			t.Fatal("deleted instance's container is still there")
		}
	}
}

// access: proxy with idle_ttl, on the real engine: the container
// publishes nothing, Ganger proxies a port of its range to it (Redis with
// AUTH works through it), counts the bytes, keeps the instance while a
// connection is open however quiet, and ends it idle_ttl after the last
// connection closed, its port closing and its container going.
func TestInstanceProxyEndToEnd(t *testing.T) {
	d := dockertest.Daemon(t)
	node := dockertest.Node(t, d)
	if err := d.EnsureImage(context.Background(), redisImage, "never"); err != nil {
		t.Fatalf("%s: %v (make test builds it: make redis-image)", redisImage, err)
	}
	lo := 40000 + int(time.Now().UnixNano()%20000)
	path := filepath.Join(t.TempDir(), "ganger.yaml")
	y := fmt.Sprintf(`node: %s
api: {listen: 127.0.0.1:0, token: %s}
services:
  - name: redis
    mode: instance
    image: %s
    ports: [6379]
    cmd: ["--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/tmp", "--requirepass", "{{.Secrets.password}}"]
    instance:
      public: true
      ttl: 5m
      idle_ttl: 3s
      access: proxy
      listen_ip: 127.0.0.1
      port_range: %d-%d
      secrets: {password: 24}
      connect: "redis://:{{.Secrets.password}}@{{.Host}}:{{.Port 6379}}"
`, node, token, redisImage, lo, lo+39)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	_, api := startInstanceProc(t, path)

	var inst instanceJSON
	if code := call(t, "POST", api+"/v1/services/redis/instances", "", &inst); code != 201 {
		t.Fatalf("create: %d", code)
	}
	port := inst.Ports["6379"]
	addr := net.JoinHostPort(inst.Host, fmt.Sprint(port))
	pw := inst.Secrets["password"]
	if inst.Host != "127.0.0.1" || port < lo || port > lo+39 || inst.Connect != "redis://:"+pw+"@"+addr {
		t.Fatalf("instance %+v; want 127.0.0.1 and a port of %d-%d", inst, lo, lo+39)
	}
	out, err := exec.Command("docker", "ps", "--filter", "label=ganger.instance="+inst.ID, "--format", "{{.ID}} [{{.Ports}}]").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 || strings.Contains(string(out), "->") {
		t.Fatalf("docker ps: %q, %v; want the container, with no published port", out, err)
	}
	if got := redisSession(t, addr, pw, "SET k v", "GET k"); got[0] != "+OK" || got[1] != "+OK" || got[2] != "v" {
		t.Fatalf("redis through Ganger's proxy: %q", got)
	}
	if got := redisSession(t, addr, "wrong-password"); !strings.HasPrefix(got[0], "-WRONGPASS") {
		t.Fatalf("a wrong password through the proxy: %q", got)
	}

	// A quiet open connection keeps it: twice idle_ttl without a byte.
	quiet, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	var mine instanceJSON
	if code := call(t, "GET", api+"/v1/instances/"+inst.ID, inst.OwnerToken, &mine); code != 200 || mine.State != "running" {
		t.Fatalf("with a connection open for twice idle_ttl: %d %+v; want running", code, mine)
	}
	if got := redisSession(t, addr, pw, "GET k"); got[1] != "v" {
		t.Fatalf("redis after the quiet connection: %q", got)
	}
	quiet.Close()

	dockertest.Eventually(t, time.Minute, "not ended after idle_ttl without a connection", func() bool {
		call(t, "GET", api+"/v1/instances/"+inst.ID, inst.OwnerToken, &mine)
		return mine.State == "expired"
	})
	var list []map[string]any
	if code := call(t, "GET", api+"/v1/instances?state=all", token, &list); code != 200 {
		t.Fatalf("list: %d", code)
	}
	var rec map[string]any
	for _, r := range list {
		if r["id"] == inst.ID {
			rec = r
		}
	}
	if rec == nil || !strings.HasPrefix(fmt.Sprint(rec["reason"]), "idle") || rec["bytes_in"] == nil || rec["bytes_out"] == nil {
		t.Fatalf("ended record %v; want reason idle and the bytes proxied", rec)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the ended instance's port still answers")
	}
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=ganger.instance="+inst.ID).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("its container is still there: %s", out)
	}
}
