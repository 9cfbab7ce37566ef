// Package api serves Ganger's HTTP interface: the status page, a JSON API,
// Prometheus metrics and health checks. It reads state through the same
// types the core uses; it keeps none of its own.
package api

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/autoscale"
	"github.com/ganger-dev/ganger/internal/view"
)

// Node is what the API reads and steers.
type Node interface {
	Services() []view.Service
	Daemons() []view.Daemon
	Sessions() (live, recent []view.Session)
	Kill(id string) bool
	Drain(daemon string, on bool) error
	Ready() bool
}

// API is the HTTP interface of one node. Set its fields, then Serve.
type API struct {
	Node    Node
	Metrics http.Handler
	// Reload re-reads and applies the config file; nil refuses reloads.
	Reload func(ctx context.Context) error
	// ReloadTimeout bounds a reload (image pulls included); it is not cut
	// short by the client hanging up. If zero, 10 minutes.
	ReloadTimeout time.Duration
	// Token authorises every call, reads and mutations. If empty,
	// mutating calls are refused. A token is sent as a Bearer credential,
	// or as the password of HTTP Basic auth (any user name) so that a
	// browser's login prompt opens the status page.
	Token string
	// ReadToken authorises reads only: the status page, the JSON reads
	// and /metrics.
	ReadToken string
	// PublicRead opens reads to anyone who reaches the API, no token
	// needed. If false and neither token is set, reads are refused.
	PublicRead bool
	// Hosts are the Host headers the API answers besides localhost,
	// loopback addresses and the address a request arrived on: "host"
	// (any port) or "host:port". Others get 421, so that a DNS-rebinding
	// page cannot read the API. /healthz and /readyz answer any Host.
	Hosts []string
	// MaxConnections caps the connections open at once; past it new ones
	// wait in the kernel's accept queue, so that a flood of API clients
	// cannot take the descriptors sessions need. If zero,
	// DefaultMaxConnections.
	MaxConnections int
	Log            *slog.Logger
	// Instances makes and manages instances; nil: none configured.
	Instances Instances
	// InstanceServices are the names of the instance services, for the
	// one-click page.
	InstanceServices []string
	// Clients are the named API clients (instance owners by token).
	Clients []Client
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// HostList lists the Docker hosts, static and discovered (GET
	// /v1/hosts); nil: the daemons, as static hosts.
	HostList func() []view.Host
	// Degraded says what is not well though the node serves (etcd not
	// answering, say); /readyz reports it. Nil: nothing.
	Degraded func() []string
	// Autoscale is the node's autoscaler; nil: not configured.
	Autoscale Autoscaler
	// Clusters runs the node's clusters; nil: none configured.
	Clusters Clusters

	mu     sync.Mutex
	srv    *http.Server
	closed bool // Shutdown came first: Serve returns at once
}

//go:embed status.html instances.html
var files embed.FS

var page = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ms":    func(s float64) string { return formatMS(s) },
	"dur":   func(s float64) string { return (time.Duration(s * float64(time.Second))).Round(time.Second).String() },
	"bytes": formatBytes,
	"add":   func(a, b int64) int64 { return a + b },
	"until": func(t time.Time) string { return max(time.Until(t), 0).Round(time.Second).String() },
	"addr":  instanceAddr,
	"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"deref": func(p *int) int { return *p },
}).ParseFS(files, "status.html"))

// Handler routes every endpoint.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", a.reading(http.HandlerFunc(a.status)))
	mux.Handle("GET /v1/services", a.reading(http.HandlerFunc(a.services)))
	mux.Handle("GET /v1/daemons", a.reading(http.HandlerFunc(a.daemons)))
	mux.Handle("GET /v1/hosts", a.reading(http.HandlerFunc(a.hosts)))
	mux.Handle("GET /v1/autoscale", a.reading(http.HandlerFunc(a.autoscale)))
	mux.HandleFunc("POST /v1/autoscale/pause", a.mutating(a.autoscalePause(true)))
	mux.HandleFunc("POST /v1/autoscale/resume", a.mutating(a.autoscalePause(false)))
	mux.Handle("GET /v1/sessions", a.reading(a.handle(a.sessions)))
	mux.HandleFunc("DELETE /v1/sessions/{id}", a.mutating(a.kill))
	mux.HandleFunc("POST /v1/daemons/{name}/drain", a.mutating(a.drain(true)))
	mux.HandleFunc("POST /v1/daemons/{name}/undrain", a.mutating(a.drain(false)))
	mux.HandleFunc("POST /v1/reload", a.mutating(a.reload))
	mux.HandleFunc("POST /v1/services/{svc}/instances", a.handle(a.createInstance))
	mux.HandleFunc("GET /v1/instances", a.handle(a.listInstances))
	mux.HandleFunc("GET /v1/instances/{id}", a.handle(a.getInstance))
	mux.HandleFunc("POST /v1/instances/{id}/extend", a.handle(a.extendInstance))
	mux.HandleFunc("POST /v1/instances/{id}/restart", a.handle(a.restartInstance))
	mux.HandleFunc("DELETE /v1/instances/{id}", a.handle(a.deleteInstance))
	a.pageHandlers(mux)
	mux.Handle("GET /v1/clusters", a.reading(a.handle(a.clusters)))
	mux.Handle("GET /v1/clusters/{name}", a.reading(a.handle(a.cluster)))
	mux.HandleFunc("POST /v1/clusters/{name}/scale", a.mutating(a.scaleCluster))
	mux.HandleFunc("POST /v1/clusters/{name}/members/{ordinal}/replace", a.mutating(a.replaceMember))
	mux.HandleFunc("GET /v1/clusters/{name}/members/{ordinal}/processes", a.mutating(a.memberProcesses))
	mux.HandleFunc("GET /v1/clusters/{name}/members/{ordinal}/processes/{process}/log", a.mutating(a.memberLog))
	mux.HandleFunc("POST /v1/clusters/{name}/members/{ordinal}/processes/{process}/{action}", a.mutating(a.memberAct))
	// A member's own calls, with its own token (not the API's).
	mux.HandleFunc("GET /v1/clusters/{name}/members/{ordinal}/view", a.handle(a.memberView))
	mux.HandleFunc("POST /v1/clusters/{name}/members/{ordinal}/report", a.handle(a.memberReport))
	mux.Handle("GET /metrics", a.reading(a.Metrics))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", a.ready)
	hosts := newHostPolicy(a.Hosts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		if !exemptFromHostCheck(r.URL.Path) && !hosts.allows(r) {
			a.refuse(w, r, &apiError{code: http.StatusMisdirectedRequest, msg: fmt.Sprintf(
				"this API does not answer to host %q: add it to api.hosts if it is a name of this node", r.Host)})
			return
		}
		route(mux, w, r)
	})
}

// route serves r through mux, with a JSON reason when no route matches.
func route(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
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
}

// statusOnly records the status and headers a handler writes, not its body.
type statusOnly struct {
	header http.Header
	code   int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int)        { s.code = code }

// Serve serves on ln until Shutdown, at most MaxConnections at once.
// Timeouts keep slow clients from holding a connection.
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
	n := a.MaxConnections
	if n <= 0 {
		n = DefaultMaxConnections
	}
	if err := srv.Serve(limit(ln, n)); !errors.Is(err, http.ErrServerClosed) {
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
	if a.Instances != nil {
		list, err := a.Instances.List(r.Context(), "", false)
		if err != nil {
			a.Log.Error("status page: instances", "err", err)
		}
		for i := range list { // a status page shows no secret and no owner
			hideSecrets(&list[i])
			list[i].Owner = ""
		}
		data["Instances"] = list
	}
	if a.Clusters != nil {
		data["Clusters"] = a.Clusters.Statuses()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, data); err != nil {
		a.Log.Error("status page", "err", err)
	}
}

func (a *API) services(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Node.Services()) }

func (a *API) daemons(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Node.Daemons()) }

// Autoscaler is what the API shows and steers of the autoscaler.
type Autoscaler interface {
	Status() autoscale.Status
	Pause()
	Resume()
}

// autoscale: GET /v1/autoscale, the last decision and why.
func (a *API) autoscale(w http.ResponseWriter, r *http.Request) {
	if a.Autoscale == nil {
		fail(w, 404, "autoscale is not configured")
		return
	}
	writeJSON(w, 200, a.Autoscale.Status())
}

// autoscalePause: POST /v1/autoscale/pause and /resume.
func (a *API) autoscalePause(pause bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.Autoscale == nil {
			return &apiError{code: 404, msg: "autoscale is not configured"}
		}
		if pause {
			a.Autoscale.Pause()
		} else {
			a.Autoscale.Resume()
		}
		writeJSON(w, 200, a.Autoscale.Status())
		return nil
	}
}

// hosts: GET /v1/hosts, one object per Docker host.
func (a *API) hosts(w http.ResponseWriter, r *http.Request) {
	var out []view.Host
	if a.HostList != nil {
		out = a.HostList()
	} else {
		for _, d := range a.Node.Daemons() {
			h := view.Host{Name: d.Name, Source: "static", State: "up", Containers: d.Containers, Capacity: d.Max}
			switch {
			case !d.Up:
				h.State = "down"
			case d.Drained:
				h.State = "draining"
			}
			out = append(out, h)
		}
	}
	if out == nil {
		out = []view.Host{}
	}
	writeJSON(w, 200, out)
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request) error {
	live, recent := a.Node.Sessions()
	if live == nil {
		live = []view.Session{}
	}
	if recent == nil {
		recent = []view.Session{}
	}
	writeJSON(w, 200, view.Sessions{Live: live, Recent: recent})
	return nil
}

func (a *API) kill(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !a.Node.Kill(id) {
		return &apiError{code: 404, msg: "no live session " + id}
	}
	writeJSON(w, 200, map[string]string{"killed": id})
	return nil
}

func (a *API) drain(on bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		if err := a.Node.Drain(name, on); err != nil {
			return &apiError{code: 404, msg: "no such daemon: " + name, err: err}
		}
		writeJSON(w, 200, map[string]any{"daemon": name, "drained": on})
		return nil
	}
}

// reload applies the config file. The reload runs to its end even if the
// client hangs up (cutting an image pull short helps nobody), bounded by
// ReloadTimeout, and the response may take that long to write.
func (a *API) reload(w http.ResponseWriter, r *http.Request) error {
	if a.Reload == nil {
		return &apiError{code: 501, msg: "reload is not available"}
	}
	limit := a.ReloadTimeout
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(limit + 5*time.Second))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), limit)
	defer cancel()
	if err := a.Reload(ctx); err != nil {
		return &apiError{code: 422, msg: err.Error(), err: err}
	}
	writeJSON(w, 200, map[string]string{"reloaded": "ok"})
	return nil
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if !a.Node.Ready() {
		fail(w, 503, "not ready: no daemon is up, or not serving yet")
		return
	}
	if a.Degraded != nil {
		if why := a.Degraded(); len(why) > 0 {
			writeJSON(w, 200, map[string]any{"status": "degraded", "reasons": why})
			return
		}
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

// handlerFunc is an endpoint that returns its failure instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// apiError is a failure: the status and message the client sees, and the
// error behind it, which is logged and not shown.
type apiError struct {
	code int
	msg  string
	err  error
}

func (e *apiError) Error() string { return e.msg }

// handle writes h's failure as JSON and logs it.
func (a *API) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		ae, ok := err.(*apiError)
		if !ok {
			ae = &apiError{code: 500, msg: "internal error", err: err}
		}
		a.refuse(w, r, ae)
	}
}

// refuse writes ae as JSON and logs it: a 5xx as an error, a 4xx as a
// warning.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, ae *apiError) {
	level := slog.LevelWarn
	if ae.code >= 500 {
		level = slog.LevelError
	}
	a.Log.Log(r.Context(), level, "api: request failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", ae.code, "reason", ae.msg, "err", ae.err)
	fail(w, ae.code, ae.msg)
}

// mutating admits a call only with the full token, and logs every
// mutating call that succeeds (failures are logged by handle).
func (a *API) mutating(h handlerFunc) http.HandlerFunc {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		if err := a.authorise(w, r, mutate); err != nil {
			return err
		}
		t0 := time.Now()
		if err := h(w, r); err != nil {
			return err
		}
		a.Log.Info("api: call done", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "took", time.Since(t0).Round(time.Millisecond))
		return nil
	})
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
