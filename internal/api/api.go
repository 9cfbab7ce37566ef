// Package api serves Ganger's HTTP interface: the status page, a JSON API,
// Prometheus metrics and health checks. It reads state through the same
// types the core uses; it keeps none of its own.
package api

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/server"
	"github.com/ganger-dev/ganger/internal/session"
)

// Node is what the API reads and steers.
type Node interface {
	Services() []server.ServiceStatus
	Daemons() []server.DaemonStatus
	Sessions() (live, recent []session.Info)
	Kill(id string) bool
	Drain(daemon string, on bool) error
	Ready() bool
}

var _ Node = (*server.Server)(nil)

// API is the HTTP interface of one node. Set its fields, then Serve.
type API struct {
	Node    Node
	Metrics http.Handler
	// Reload re-reads and applies the config file; nil refuses reloads.
	Reload func(ctx context.Context) error
	// Token authorises mutating calls (Bearer). If empty, they are refused.
	Token string
	Log   *slog.Logger

	mu     sync.Mutex
	srv    *http.Server
	closed bool // Shutdown came first: Serve returns at once
}

//go:embed status.html
var files embed.FS

var page = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ms":    func(s float64) string { return formatMS(s) },
	"dur":   func(s float64) string { return (time.Duration(s * float64(time.Second))).Round(time.Second).String() },
	"bytes": formatBytes,
	"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}).ParseFS(files, "status.html"))

// Handler routes every endpoint.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.status)
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Node.Services()) })
	mux.HandleFunc("GET /v1/daemons", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Node.Daemons()) })
	mux.HandleFunc("GET /v1/sessions", a.sessions)
	mux.HandleFunc("DELETE /v1/sessions/{id}", a.auth(a.kill))
	mux.HandleFunc("POST /v1/daemons/{name}/drain", a.auth(a.drain(true)))
	mux.HandleFunc("POST /v1/daemons/{name}/undrain", a.auth(a.drain(false)))
	mux.HandleFunc("POST /v1/reload", a.auth(a.reload))
	mux.Handle("GET /metrics", a.Metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", a.ready)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // it sets the path's values; Handler does not
			return
		}
		// No route: the mux knows whether it is 404 or 405; say it in JSON.
		probe := &statusOnly{header: http.Header{}, code: 200}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
			fail(w, probe.code, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
			return
		}
		fail(w, probe.code, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// statusOnly records the status and headers a handler writes, not its body.
type statusOnly struct {
	header http.Header
	code   int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int)        { s.code = code }

// Serve serves on ln until Shutdown. Timeouts keep slow clients from
// holding it.
func (a *API) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ln.Close()
	}
	a.srv = srv
	a.mu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown drains in-flight requests until ctx is done, then closes.
func (a *API) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	srv := a.srv
	a.closed = true
	a.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	live, recent := a.Node.Sessions()
	if len(recent) > 25 {
		recent = recent[:25]
	}
	data := map[string]any{
		"Services": a.Node.Services(), "Daemons": a.Node.Daemons(),
		"Live": live, "Recent": recent, "Now": time.Now().UTC().Format(time.RFC3339),
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, data); err != nil {
		a.Log.Error("status page", "err", err)
	}
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request) {
	live, recent := a.Node.Sessions()
	if live == nil {
		live = []session.Info{}
	}
	if recent == nil {
		recent = []session.Info{}
	}
	writeJSON(w, 200, map[string][]session.Info{"live": live, "recent": recent})
}

func (a *API) kill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.Node.Kill(id) {
		fail(w, 404, "no live session "+id)
		return
	}
	a.Log.Info("api: session killed", "session", id, "remote", r.RemoteAddr)
	writeJSON(w, 200, map[string]string{"killed": id})
}

func (a *API) drain(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := a.Node.Drain(name, on); err != nil {
			fail(w, 404, err.Error()+": "+name)
			return
		}
		writeJSON(w, 200, map[string]any{"daemon": name, "drained": on})
	}
}

func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	if a.Reload == nil {
		fail(w, 501, "reload is not available")
		return
	}
	if err := a.Reload(r.Context()); err != nil {
		fail(w, 422, err.Error())
		return
	}
	writeJSON(w, 200, map[string]string{"reloaded": "ok"})
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if !a.Node.Ready() {
		fail(w, 503, "not ready: no daemon is up, or not serving yet")
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

// auth admits a mutating call only with the configured bearer token.
func (a *API) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Token == "" {
			fail(w, 403, "no API token is configured: mutating calls are disabled")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ganger"`)
			fail(w, 401, "missing or wrong bearer token")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func fail(w http.ResponseWriter, code int, reason string) {
	writeJSON(w, code, map[string]string{"error": reason})
}
