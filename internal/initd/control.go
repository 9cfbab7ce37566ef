package initd

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// serveControl opens the control interface (the unix socket, and TCP if
// configured) and returns what closes it. A socket that cannot be made (a
// read-only root, no /run) is logged, not fatal: the processes matter more.
func (s *Supervisor) serveControl() func() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/processes", s.hStatus)
	mux.HandleFunc("GET /v1/processes/{name}/log", s.hLog)
	mux.HandleFunc("POST /v1/processes/{name}/{action}", s.hAct)
	mux.HandleFunc("POST /v1/reload", s.hReload)
	var closers []func()
	serve := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		closers = append(closers, func() { srv.Close() })
	}
	path := s.cfg.Control.Socket
	if s.opt.Control != "" {
		path = s.opt.Control
	}
	if path != "" && path != "none" {
		os.Remove(path) // a socket left by an earlier run
		if ln, err := net.Listen("unix", path); err != nil {
			s.log.Warn("no control socket", "path", path, "err", err)
		} else {
			os.Chmod(path, 0o600)
			serve(ln, mux)
			closers = append(closers, func() { os.Remove(path) })
		}
	}
	if c := s.cfg.Control; c.Listen != "" {
		token := c.Token
		if c.TokenFile != "" {
			b, err := os.ReadFile(c.TokenFile)
			if err != nil {
				s.log.Error("no TCP control: cannot read its token", "err", err)
			}
			token = strings.TrimSpace(string(b))
		}
		if ln, err := net.Listen("tcp", c.Listen); err != nil {
			s.log.Error("no TCP control", "addr", c.Listen, "err", err)
		} else if token != "" {
			serve(ln, bearer(token, mux))
			s.log.Info("control listening", "addr", ln.Addr().String())
		} else {
			ln.Close()
		}
	}
	return func() {
		for _, c := range closers {
			c()
		}
	}
}

func bearer(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			reply(w, 401, initproto.Error{Error: "send the control token: Authorization: Bearer <token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

var errStopping = errors.New("ganger-init is stopping")

func (s *Supervisor) hStatus(w http.ResponseWriter, r *http.Request) {
	var st initproto.Status
	if !s.call(func() {
		for _, name := range sortedNames(s.procs) {
			st.Processes = append(st.Processes, s.procs[name].view())
		}
		st.Stopping = s.shutting
	}) {
		reply(w, 503, initproto.Error{Error: errStopping.Error()})
		return
	}
	st.Orphans = s.reaper.Orphans()
	reply(w, 200, st)
}

func (s *Supervisor) hLog(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("lines"))
	var rg *ring
	s.call(func() {
		if p := s.procs[r.PathValue("name")]; p != nil {
			rg = p.ring
		}
	})
	if rg == nil {
		reply(w, 404, initproto.Error{Error: "no process " + strconv.Quote(r.PathValue("name"))})
		return
	}
	reply(w, 200, initproto.Log{Lines: orEmpty(rg.last(n))})
}

func (s *Supervisor) hAct(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	var sigName string
	if action == "signal" {
		var body struct{ Signal string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
			reply(w, 400, initproto.Error{Error: `want {"signal": "HUP"}`})
			return
		}
		sigName = body.Signal
	}
	code, msg := 200, ""
	var view initproto.Process
	ok := s.call(func() {
		p := s.procs[name]
		switch {
		case p == nil || p.removed:
			code, msg = 404, "no process "+strconv.Quote(name)
			return
		case s.shutting:
			code, msg = 409, errStopping.Error()
			return
		}
		switch action {
		case "start":
			p.held = false
			if p.state == stBackoff && p.retry != nil {
				p.retry.Stop()
				p.state = stDown
			}
			if p.final() {
				p.state, p.restarts, p.recent, p.backoff = stDown, 0, nil, p.spec.Backoff.Initial
			}
			s.schedule()
		case "stop":
			p.held = true
			if p.retry != nil {
				p.retry.Stop()
			}
			if p.state == stBackoff {
				p.state = stDown
			}
			s.stop(p, false)
		case "restart":
			p.held = false
			if p.pid > 0 {
				s.stop(p, true)
			} else {
				if p.retry != nil {
					p.retry.Stop()
				}
				p.state, p.restarts, p.recent, p.backoff = stDown, 0, nil, p.spec.Backoff.Initial
				s.schedule()
			}
		case "signal":
			sig, err := ParseSignal(sigName)
			switch {
			case err != nil:
				code, msg = 400, err.Error()
			case p.pid == 0:
				code, msg = 409, name+" is not running"
			default:
				if err := killGroup(p.pid, sig); err != nil {
					code, msg = 500, err.Error()
				}
			}
		default:
			code, msg = 404, "no action "+strconv.Quote(action)+": start, stop, restart or signal"
		}
		view = p.view()
	})
	switch {
	case !ok:
		reply(w, 503, initproto.Error{Error: errStopping.Error()})
	case msg != "":
		reply(w, code, initproto.Error{Error: msg})
	default:
		reply(w, 200, view)
	}
}

func (s *Supervisor) hReload(w http.ResponseWriter, r *http.Request) {
	var res initproto.Reload
	var err error
	if !s.call(func() { res, err = s.reload() }) {
		reply(w, 503, initproto.Error{Error: errStopping.Error()})
		return
	}
	if err != nil {
		reply(w, 400, initproto.Error{Error: err.Error()})
		return
	}
	res.Added, res.Removed, res.Restarted = orEmpty(res.Added), orEmpty(res.Removed), orEmpty(res.Restarted)
	reply(w, 200, res)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
