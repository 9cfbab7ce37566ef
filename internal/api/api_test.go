package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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

func newAPI(token string) (*API, *fakeNode) {
	n := &fakeNode{drained: map[string]bool{}, ready: true}
	a := &API{Node: n, Metrics: http.NotFoundHandler(), Token: token, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reload: func(ctx context.Context) error { return errors.New("t.yaml:3: services[0].port: missing") }}
	return a, n
}

func call(t *testing.T, h http.Handler, method, path, token string) (int, map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m, rec.Body.String()
}

func TestReadEndpoints(t *testing.T) {
	a, _ := newAPI("")
	h := a.Handler()
	for _, tt := range []struct{ path, want string }{
		{"/v1/services", `"sessions_served": 3`},
		{"/v1/daemons", `"api_version": "1.41"`},
		{"/v1/sessions", `"live": [`},
		{"/healthz", `"ok"`},
		{"/readyz", `"ready"`},
		{"/", `<tr data-session="abc">`},
	} {
		code, _, body := call(t, h, "GET", tt.path, "")
		if code != 200 || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %s; want 200 with %s", tt.path, code, body, tt.want)
		}
	}
}

func TestMutatingCallsNeedTheToken(t *testing.T) {
	calls := []struct{ method, path string }{
		{"DELETE", "/v1/sessions/abc"}, {"POST", "/v1/daemons/local/drain"}, {"POST", "/v1/daemons/local/undrain"}, {"POST", "/v1/reload"},
	}
	open, _ := newAPI("")
	for _, c := range calls {
		if code, m, _ := call(t, open.Handler(), c.method, c.path, "anything"); code != 403 || m["error"] == nil {
			t.Errorf("%s %s without a configured token: %d %v; want 403 with a reason", c.method, c.path, code, m)
		}
	}
	a, n := newAPI("s3cret")
	for _, c := range calls {
		for _, tok := range []string{"", "wrong"} {
			if code, m, _ := call(t, a.Handler(), c.method, c.path, tok); code != 401 || m["error"] == nil {
				t.Errorf("%s %s with token %q: %d %v; want 401", c.method, c.path, tok, code, m)
			}
		}
	}
	if len(n.killed) != 0 || len(n.drained) != 0 {
		t.Fatal("a refused call changed something")
	}
}

func TestMutatingCalls(t *testing.T) {
	a, n := newAPI("s3cret")
	h := a.Handler()
	if code, _, _ := call(t, h, "DELETE", "/v1/sessions/abc", "s3cret"); code != 200 || len(n.killed) != 1 {
		t.Fatalf("kill: %d, killed %v", code, n.killed)
	}
	if code, _, _ := call(t, h, "POST", "/v1/daemons/local/drain", "s3cret"); code != 200 || !n.drained["local"] {
		t.Fatalf("drain: %d", code)
	}
	if code, _, _ := call(t, h, "POST", "/v1/daemons/local/undrain", "s3cret"); code != 200 || n.drained["local"] {
		t.Fatalf("undrain: %d", code)
	}
	if code, m, _ := call(t, h, "POST", "/v1/reload", "s3cret"); code != 422 || !strings.Contains(m["error"].(string), "port: missing") {
		t.Fatalf("failed reload: %d %v; want 422 with the config error", code, m)
	}
}

func TestBadRequests(t *testing.T) {
	a, n := newAPI("s3cret")
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
		code, m, body := call(t, h, tt.method, tt.path, "s3cret")
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
	a, _ := newAPI("tok")
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
	req.Header.Set("Authorization", "Bearer tok")
	impatient := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := impatient.Do(req); err == nil {
		t.Fatal("the impatient client got an answer before the reload could end")
	}
	if err := <-done; err != nil {
		t.Fatalf("reload cut short when its client left: %v", err)
	}
}
