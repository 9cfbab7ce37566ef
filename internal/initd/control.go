package initd

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// serveControl opens the control interface (the unix socket, and TCP if
// configured) and returns what closes it. A socket that cannot be made (a
// read-only root, no /run) is logged, not fatal: the processes matter more.
func (s *Supervisor) serveControl() func() {
	var closers []func()
	serve := func(ln net.Listener, token string) {
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				go s.answer(conn, token)
			}
		}()
		closers = append(closers, func() { ln.Close() })
	}
	path := s.cfg.Control.Socket
	if s.opt.Control != "" {
		path = s.opt.Control
	}
	if path != "" && path != "none" {
		os.Remove(path)             // a socket left by an earlier run
		old := syscall.Umask(0o177) // the socket is made 0600: no window where others may connect
		ln, err := net.Listen("unix", path)
		syscall.Umask(old)
		if err != nil {
			s.log.Warn("no control socket", "path", path, "err", err)
		} else {
			os.Chmod(path, 0o600)
			serve(ln, "")
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
		if token == "" {
			s.log.Error("no TCP control: no token")
		} else if ln, err := net.Listen("tcp", c.Listen); err != nil {
			s.log.Error("no TCP control", "addr", c.Listen, "err", err)
		} else {
			serve(ln, token)
			s.log.Info("control listening", "addr", ln.Addr().String())
		}
	}
	return func() {
		for _, c := range closers {
			c()
		}
	}
}

var errStopping = errors.New("ganger-init is stopping")

// answer reads one request line and writes one reply line.
func (s *Supervisor) answer(conn net.Conn, token string) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReaderSize(conn, 4096).ReadSlice('\n')
	var req initproto.Request
	var r initproto.Reply
	switch {
	case err != nil:
		r.Error = "want one JSON request on one line"
	case json.Unmarshal(line, &req) != nil:
		r.Error = "bad request: want JSON"
	case token != "" && subtle.ConstantTimeCompare([]byte(req.Token), []byte(token)) != 1:
		r.Error = "send the control token"
	default:
		r = s.handle(req)
	}
	b, _ := json.Marshal(r)
	conn.Write(append(b, '\n'))
}

func (s *Supervisor) handle(req initproto.Request) initproto.Reply {
	var r initproto.Reply
	var ok bool
	switch req.Op {
	case "status":
		st := initproto.Status{Processes: []initproto.Process{}}
		ok = s.call(func() {
			for _, name := range sortedNames(s.procs) {
				st.Processes = append(st.Processes, s.procs[name].view())
			}
			st.Stopping = s.shutting
		})
		st.Orphans = s.reaper.Orphans()
		r.Status = &st
	case "log":
		var rg *ring
		ok = s.call(func() {
			if p := s.procs[req.Name]; p != nil {
				rg = p.ring
			}
		})
		if ok && rg == nil {
			r.Error = "no process " + strconv.Quote(req.Name)
		} else if rg != nil {
			r.Log = &initproto.Log{Lines: orEmpty(rg.last(req.Lines))}
		}
	case "reload":
		var res initproto.Reload
		var err error
		ok = s.call(func() { res, err = s.reload() })
		if err != nil {
			r.Error = err.Error()
		}
		res.Added, res.Removed, res.Restarted = orEmpty(res.Added), orEmpty(res.Removed), orEmpty(res.Restarted)
		r.Reload = &res
	case "start", "stop", "restart", "signal":
		var view initproto.Process
		ok = s.call(func() {
			if msg := s.act(req); msg != "" {
				r.Error = msg
			} else {
				view = s.procs[req.Name].view()
			}
		})
		r.Process = &view
	default:
		return initproto.Reply{Error: "no op " + strconv.Quote(req.Op) + ": status, log, start, stop, restart, signal or reload"}
	}
	if !ok {
		return initproto.Reply{Error: errStopping.Error()}
	}
	if r.Error != "" {
		return initproto.Reply{Error: r.Error}
	}
	return r
}

// act starts, stops, restarts or signals a process; in the loop. It
// returns why it cannot, or "".
func (s *Supervisor) act(req initproto.Request) string {
	p := s.procs[req.Name]
	switch {
	case p == nil || p.removed:
		return "no process " + strconv.Quote(req.Name)
	case s.shutting:
		return errStopping.Error()
	}
	switch req.Op {
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
			return ""
		}
		if p.retry != nil {
			p.retry.Stop()
		}
		p.state, p.restarts, p.recent, p.backoff = stDown, 0, nil, p.spec.Backoff.Initial
		s.schedule()
	case "signal":
		sig, err := ParseSignal(req.Signal)
		switch {
		case err != nil:
			return err.Error()
		case p.pid == 0:
			return req.Name + " is not running"
		}
		if err := killGroup(p.pid, sig); err != nil {
			return err.Error()
		}
	}
	return ""
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
