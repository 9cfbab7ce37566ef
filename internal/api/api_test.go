package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/view"
)

// fakeNode is a Node for testing the HTTP layer; the end-to-end tests in
// cmd/ganger run the same endpoints against a real node.
type fakeNode struct {
	killed  []string
	drained map[string]bool
	ready   bool
}

func (f *fakeNode) Services() []view.Service {
	return []view.Service{{Name: "echo", Listen: "127.0.0.1:5454", Mode: "per-connection", Image: "img", Stats: view.Stats{Served: 3, Live: 1, Failures: map[string]int64{"exited": 1}}}}
}
func (f *fakeNode) Daemons() []view.Daemon {
	return []view.Daemon{{Name: "local", Up: true, APIVersion: "1.41", Containers: 1, Max: 100}}
}
func (f *fakeNode) Sessions() ([]view.Session, []view.Session) {
	return []view.Session{{ID: "abc", Service: "echo", Client: "127.0.0.1:1", Live: true, Start: time.Now()}}, nil
}
func (f *fakeNode) Kill(id string) bool {
	if id != "abc" {
		return false
	}
	f.killed = append(f.killed, id)
	return true
}
func (f *fakeNode) Drain(d string, on bool) error {
	if d != "local" {
		return errors.New("no such daemon")
	}
	f.drained[d] = on
	return nil
}
func (f *fakeNode) Ready() bool { return f.ready }

const (
	fullToken = "full-token-0123456789"
	readToken = "read-token-0123456789"
)

func newAPI(token string) (*API, *fakeNode) {
	n := &fakeNode{drained: map[string]bool{}, ready: true}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ganger_up 1\n") })
	a := &API{Node: n, Metrics: metrics, Token: token, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reload: func(ctx context.Context) error { return errors.New("t.yaml:3: services[0].port: missing") }}
	return a, n
}

// call makes a request with the Authorization header given ("" for none)
// and the Host header the API answers by default.
func call(t *testing.T, h http.Handler, method, path, auth string) (int, map[string]any, string) {
	t.Helper()
	rec := do(h, method, path, auth, "127.0.0.1:5480")
	var m map[string]any
	json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m, rec.Body.String()
}

func do(h http.Handler, method, path, auth, host string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.Host = host
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func bearer(tok string) string { return "Bearer " + tok }

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestReadEndpoints(t *testing.T) {
	a, _ := newAPI(fullToken)
	h := a.Handler()
	for _, tt := range []struct{ path, want string }{
		{"/v1/services", `"sessions_served": 3`},
		{"/v1/daemons", `"api_version": "1.41"`},
		{"/v1/sessions", `"live": [`},
		{"/metrics", `ganger_up 1`},
		{"/healthz", `"ok"`},
		{"/readyz", `"ready"`},
		{"/", `<tr data-session="abc">`},
	} {
		code, _, body := call(t, h, "GET", tt.path, bearer(fullToken))
		if code != 200 || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %s; want 200 with %s", tt.path, code, body, tt.want)
		}
	}
}

// Every read endpoint, with every kind of credential, with and without
// public_read, with both tokens configured and with none.
func TestReadsNeedAToken(t *testing.T) {
	paths := []string{"/", "/v1/services", "/v1/daemons", "/v1/sessions", "/metrics"}
	creds := []struct {
		name, auth string
		want       int // with both tokens configured and public_read false
	}{
		{"no token", "", 401},
		{"read token", bearer(readToken), 200},
		{"full token", bearer(fullToken), 200},
		{"wrong token", bearer("wrong-token-0123456789"), 401},
		{"lower-case scheme", "bearer " + fullToken, 200},
		{"upper-case scheme", "BEARER " + readToken, 200},
		{"basic auth, read token", basic("anyone", readToken), 200},
		{"basic auth, full token", basic("", fullToken), 200},
		{"lower-case basic", strings.Replace(basic("x", readToken), "Basic", "basic", 1), 200},
		{"basic auth, wrong password", basic("anyone", "wrong"), 401},
		{"token in the wrong scheme", "Token " + fullToken, 401},
	}
	for _, public := range []bool{false, true} {
		for _, configured := range []bool{true, false} {
			a, _ := newAPI("")
			a.PublicRead = public
			if configured {
				a.Token, a.ReadToken = fullToken, readToken
			}
			h := a.Handler()
			for _, path := range paths {
				for _, c := range creds {
					want := c.want
					switch {
					case public:
						want = 200
					case !configured:
						want = 403
					}
					rec := do(h, "GET", path, c.auth, "127.0.0.1:5480")
					name := fmt.Sprintf("public_read=%v tokens=%v GET %s with %s", public, configured, path, c.name)
					if rec.Code != want {
						t.Errorf("%s: %d %s; want %d", name, rec.Code, rec.Body, want)
						continue
					}
					switch want {
					case 401:
						if got := rec.Header().Values("WWW-Authenticate"); !slices.Contains(got, `Basic realm="ganger"`) {
							t.Errorf("%s: WWW-Authenticate %q; want a Basic challenge, so that a browser asks for a login", name, got)
						}
					case 403:
						if !strings.Contains(rec.Body.String(), "api.public_read") || !strings.Contains(rec.Body.String(), "api.read_token") {
							t.Errorf("%s: %s; want a reason saying how to open reads", name, rec.Body)
						}
					}
				}
			}
		}
	}
}

func TestHealthChecksNeedNoToken(t *testing.T) {
	a, _ := newAPI(fullToken)
	a.ReadToken = readToken
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, body := call(t, a.Handler(), "GET", path, ""); code != 200 {
			t.Errorf("GET %s without a token: %d %s; want 200", path, code, body)
		}
	}
}

func TestMutatingCallsNeedTheToken(t *testing.T) {
	calls := []struct{ method, path string }{
		{"DELETE", "/v1/sessions/abc"}, {"POST", "/v1/daemons/local/drain"}, {"POST", "/v1/daemons/local/undrain"}, {"POST", "/v1/reload"},
	}
	open, _ := newAPI("")
	open.ReadToken, open.PublicRead = readToken, true
	for _, c := range calls {
		if code, m, _ := call(t, open.Handler(), c.method, c.path, bearer("anything")); code != 403 || m["error"] == nil {
			t.Errorf("%s %s without a configured token: %d %v; want 403 with a reason", c.method, c.path, code, m)
		}
	}
	a, n := newAPI(fullToken)
	a.ReadToken, a.PublicRead = readToken, true
	for _, c := range calls {
		for _, tt := range []struct {
			auth string
			want int
		}{
			{"", 401}, {bearer("wrong"), 401}, {basic("x", "wrong"), 401},
			{bearer(readToken), 403}, {"bearer " + readToken, 403}, {basic("x", readToken), 403},
		} {
			code, m, _ := call(t, a.Handler(), c.method, c.path, tt.auth)
			if code != tt.want || m["error"] == nil {
				t.Errorf("%s %s with %q: %d %v; want %d", c.method, c.path, tt.auth, code, m, tt.want)
			}
			if code == 403 && !strings.Contains(m["error"].(string), "read-only") {
				t.Errorf("%s %s with the read token: %v; want a reason naming the read-only token", c.method, c.path, m)
			}
		}
	}
	if len(n.killed) != 0 || len(n.drained) != 0 {
		t.Fatal("a refused call changed something")
	}
}

// The full token works in any scheme case and as a Basic auth password.
func TestMutatingCallSchemes(t *testing.T) {
	for _, auth := range []string{bearer(fullToken), "bearer " + fullToken, "BEARER " + fullToken, "bEaReR  " + fullToken, basic("me", fullToken)} {
		a, n := newAPI(fullToken)
		a.ReadToken = readToken
		if code, _, body := call(t, a.Handler(), "DELETE", "/v1/sessions/abc", auth); code != 200 || len(n.killed) != 1 {
			t.Errorf("kill with %q: %d %s; want 200", auth, code, body)
		}
	}
}

func TestMutatingCalls(t *testing.T) {
	a, n := newAPI(fullToken)
	h := a.Handler()
	if code, _, _ := call(t, h, "DELETE", "/v1/sessions/abc", bearer(fullToken)); code != 200 || len(n.killed) != 1 {
		t.Fatalf("kill: %d, killed %v", code, n.killed)
	}
	if code, _, _ := call(t, h, "POST", "/v1/daemons/local/drain", bearer(fullToken)); code != 200 || !n.drained["local"] {
		t.Fatalf("drain: %d", code)
	}
	if code, _, _ := call(t, h, "POST", "/v1/daemons/local/undrain", bearer(fullToken)); code != 200 || n.drained["local"] {
		t.Fatalf("undrain: %d", code)
	}
	if code, m, _ := call(t, h, "POST", "/v1/reload", bearer(fullToken)); code != 422 || !strings.Contains(m["error"].(string), "port: missing") {
		t.Fatalf("failed reload: %d %v; want 422 with the config error", code, m)
	}
}

func TestBadRequests(t *testing.T) {
	a, n := newAPI(fullToken)
	h := a.Handler()
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"DELETE", "/v1/sessions/nope", 404},
		{"POST", "/v1/daemons/nope/drain", 404},
		{"GET", "/v1/nothing", 404},
		{"POST", "/v1/services", 405},
		{"GET", "/v1/reload", 405},
	} {
		code, m, body := call(t, h, tt.method, tt.path, bearer(fullToken))
		if code != tt.want {
			t.Errorf("%s %s: %d %s; want %d", tt.method, tt.path, code, body, tt.want)
		}
		if tt.want == 404 && m["error"] == nil {
			t.Errorf("%s %s: no JSON reason: %s", tt.method, tt.path, body)
		}
	}
	n.ready = false
	if code, _, _ := call(t, h, "GET", "/readyz", ""); code != 503 {
		t.Errorf("readyz while not ready: %d; want 503", code)
	}
}

// A client that sends half a request and stalls cannot hold a connection:
// the server's header timeout closes it.
func TestSlowClientIsCut(t *testing.T) {
	a, _ := newAPI("")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ln)
	defer a.Shutdown(context.Background())
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/services HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("stalled request still open after 30s: %v", err)
	}
}

// A reload runs to its end when the client that asked for it hangs up
// (a ctl timing out, say): an image pull it is doing is not cut short.
func TestReloadOutlivesItsClient(t *testing.T) {
	a, _ := newAPI(fullToken)
	done := make(chan error, 1)
	a.Reload = func(ctx context.Context) error {
		select {
		case <-time.After(500 * time.Millisecond): // a pull in progress
			done <- nil
		case <-ctx.Done():
			done <- ctx.Err()
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ln)
	defer a.Shutdown(context.Background())
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/reload", nil)
	req.Header.Set("Authorization", bearer(fullToken))
	impatient := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := impatient.Do(req); err == nil {
		t.Fatal("the impatient client got an answer before the reload could end")
	}
	if err := <-done; err != nil {
		t.Fatalf("reload cut short when its client left: %v", err)
	}
}
