package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A request under a name the API was not told of is refused (a
// DNS-rebinding page would send its own name), but the health checks
// answer any name.
func TestHostHeader(t *testing.T) {
	a, n := newAPI(fullToken)
	a.Hosts = []string{"ganger.example.com", "proxy.example:8080", "[fd00::1]:5480"}
	h := a.Handler()
	for _, tt := range []struct {
		host, path string
		want       int
	}{
		{"127.0.0.1:5480", "/v1/services", 200},
		{"127.0.0.1", "/", 200},
		{"127.0.0.2:5480", "/v1/services", 200}, // loopback
		{"localhost:5480", "/v1/services", 200},
		{"LocalHost", "/metrics", 200},
		{"[::1]:5480", "/v1/daemons", 200},
		{"ganger.example.com", "/", 200},
		{"Ganger.Example.COM:5480", "/v1/sessions", 200},
		{"proxy.example:8080", "/", 200},
		{"[fd00::1]:5480", "/", 200},
		{"evil.example", "/", 421},
		{"evil.example", "/v1/clusters", 421},
		{"members.internal:5480", "/v1/clusters/zk/members/0/view", 404}, // a member's own call: its token guards it
		{"members.internal:5480", "/v1/clusters/zk/members/0/view/x", 421},
		{"evil.example:5480", "/v1/services", 421},
		{"localhost.evil.example", "/metrics", 421},
		{"proxy.example", "/", 421}, // port 80, not 8080
		{"proxy.example:9090", "/", 421},
		{"[fd00::1]:80", "/", 421},
		{"10.1.2.3:5480", "/v1/services", 421},
		{"", "/v1/services", 421},
		{"evil.example", "/v1/nothing", 421},
		{"evil.example", "/healthz", 200},
		{"evil.example", "/readyz", 200},
	} {
		rec := do(h, "GET", tt.path, bearer(fullToken), tt.host)
		if rec.Code != tt.want {
			t.Errorf("GET %s with Host %q: %d %s; want %d", tt.path, tt.host, rec.Code, rec.Body, tt.want)
		}
		if rec.Code == 421 && !strings.Contains(rec.Body.String(), "api.hosts") {
			t.Errorf("GET %s with Host %q: %s; want a reason naming api.hosts", tt.path, tt.host, rec.Body)
		}
	}
	if rec := do(h, "DELETE", "/v1/sessions/abc", bearer(fullToken), "evil.example"); rec.Code != 421 || len(n.killed) != 0 {
		t.Errorf("kill with a foreign Host: %d, killed %v; want 421 and nothing killed", rec.Code, n.killed)
	}
}

// An address the request arrived on is a name the API answers to: an
// API listening on every interface is reachable by each of its addresses.
func TestHostIsTheLocalAddress(t *testing.T) {
	a, _ := newAPI(fullToken)
	h := a.Handler()
	for _, tt := range []struct {
		host string
		want int
	}{{"10.1.2.3:5480", 200}, {"10.1.2.3", 200}, {"10.9.9.9:5480", 421}} {
		req := httptest.NewRequest("GET", "/v1/services", nil)
		req.Host = tt.host
		req.Header.Set("Authorization", bearer(fullToken))
		local := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5480}
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, local))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Host %q on a connection to %s: %d; want %d", tt.host, local, rec.Code, tt.want)
		}
	}
}

// Every answer, whatever its status, carries the hardening headers; the
// status page's CSP allows its own style by hash, and no script.
func TestSecurityHeaders(t *testing.T) {
	a, _ := newAPI(fullToken)
	h := a.Handler()
	for _, tt := range []struct{ method, path, auth, host string }{
		{"GET", "/", bearer(fullToken), "127.0.0.1"},
		{"GET", "/", "", "127.0.0.1"},
		{"GET", "/", bearer(fullToken), "evil.example"},
		{"GET", "/v1/services", bearer(fullToken), "127.0.0.1"},
		{"GET", "/metrics", bearer(fullToken), "127.0.0.1"},
		{"GET", "/healthz", "", "evil.example"},
		{"GET", "/v1/nothing", "", "127.0.0.1"},
		{"POST", "/v1/services", "", "127.0.0.1"},
		{"POST", "/v1/reload", bearer(fullToken), "127.0.0.1"},
	} {
		rec := do(h, tt.method, tt.path, tt.auth, tt.host)
		name := tt.method + " " + tt.path + " (" + rec.Result().Status + ")"
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
		} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("%s: %s %q; want %q", name, k, got, want)
			}
		}
		policy := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'"} {
			if !strings.Contains(policy, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %s", name, policy, want)
			}
		}
		for _, bad := range []string{"unsafe-inline", "script-src", "*"} {
			if strings.Contains(policy, bad) {
				t.Errorf("%s: Content-Security-Policy %q has %s", name, policy, bad)
			}
		}
	}
	// The hash in the policy is that of the style the page really serves.
	rec := do(h, "GET", "/", bearer(fullToken), "127.0.0.1")
	_, rest, _ := strings.Cut(rec.Body.String(), "<style>")
	css, _, ok := strings.Cut(rest, "</style>")
	if !ok {
		t.Fatal("the status page has no <style>")
	}
	sum := sha256.Sum256([]byte(css))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(rec.Header().Get("Content-Security-Policy"), want) {
		t.Errorf("Content-Security-Policy %q; want %s", rec.Header().Get("Content-Security-Policy"), want)
	}
	if strings.Contains(rec.Body.String(), "<script") || strings.Contains(rec.Body.String(), " style=") {
		t.Error("the status page has a script or a style attribute, which its CSP blocks")
	}
}
