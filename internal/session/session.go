package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/proxy"
)

var (
	errKilled    = ganger.Fail(ganger.Killed, errors.New("killed by an operator"))
	errDied      = ganger.Fail(ganger.Died, errors.New("its container exited"))
	errFirstByte = ganger.Fail(ganger.Silent, errors.New("the client sent nothing within timeouts.first_byte"))
	errNoData    = ganger.Fail(ganger.Silent, errors.New("the client sent nothing within ready.first_byte"))
)

// session is one client connection and its life. Its own goroutine writes
// the fields below mu; an operator's view (info) reads them under mu.
type session struct {
	mu  sync.Mutex
	end context.CancelCauseFunc // ends the session (Kill)

	svc    *Service
	cf     *conf // the configuration generation it started with
	id     string
	client *net.TCPConn
	addr   netip.AddrPort // the real client: the PROXY header's source, if any
	log    *slog.Logger
	begin  time.Time
	early  []byte // read with the PROXY header, before the early reader
	header int64  // the PROXY header's length: received, but not the client's
	// releaseIP frees the client's per-address slot, once: before the
	// client can see its connection end (a client that reconnects at
	// once is not refused for the session it just left).
	releaseIP func()

	c       *container
	from    string // new, pool or shared
	readyIn time.Duration
	in, out int64
	outcome ganger.Outcome
	err     error
}

func (s *Service) handle(conn *net.TCPConn) {
	defer s.sessions.Done()
	ss := &session{svc: s, cf: s.conf.Load(), id: newID(), client: conn, begin: time.Now()}
	ss.addr = conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	ss.log = s.log.With("session", ss.id)
	s.begin(ss)
	defer s.finish(ss)
	defer ss.logEnd()
	if !ss.admit() {
		conn.Close()
		return
	}
	ip := ss.addr.Addr().Unmap()
	ss.releaseIP = sync.OnceFunc(func() { ss.cf.ips.done(ip) })
	defer ss.releaseIP()
	ss.run()
}

// admit reads the PROXY header if the service takes one, logs the session's
// start, and applies the per-address limits.
func (ss *session) admit() bool {
	if ss.cf.trusted != nil {
		addr, rest, n, err := proxyHeader(ss.client, ss.cf.trusted)
		ss.addr, ss.early, ss.header = addr, rest, n
		if err != nil {
			ss.log.Info("session start", "client", ss.addr.String(), "peer", ss.client.RemoteAddr().String())
			ss.setOutcome(err)
			return false
		}
	}
	ss.log.Info("session start", "client", ss.addr.String())
	if err := ss.cf.ips.admit(ss.addr.Addr().Unmap()); err != nil {
		ss.setOutcome(err)
		return false
	}
	return true
}

// setOutcome records how the session ended: the outcome err carries.
func (ss *session) setOutcome(err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.outcome, ss.err = ganger.OutcomeOf(err, ganger.StartFailed), err
}

func (ss *session) run() {
	s := ss.svc
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	ss.mu.Lock()
	ss.end = cancel
	ss.mu.Unlock()
	defer ss.client.Close()

	spoke := len(ss.early) > 0
	if ss.cf.cfg.Start == "data" && !spoke {
		if err := ss.awaitData(ctx); err != nil {
			ss.fail(err)
			return
		}
		spoke = true
	}
	// A hit (a pooled container, a shared one with room) goes straight to
	// the proxy: nothing stands between the client's bytes and the
	// container. On a miss, an early reader holds what the client sends
	// while a container starts, and notices the client leaving.
	early, halfClosed := ss.early, false
	c, upstream, from, err := s.supply.hit(ss.cf, ss.log)
	if err == nil && c == nil {
		gone, stop := context.WithCancelCause(ctx)
		r := startEarly(ss.client, ss.early, stop)
		c, upstream, from, err = s.supply.get(gone, ss.cf, ss.id, ss.log)
		early, halfClosed = r.handOver()
		stop(nil)
		select {
		case <-r.firstByte():
			spoke = true
		default:
		}
	}
	if err != nil {
		ss.fail(err)
		return
	}
	ss.mu.Lock()
	ss.c, ss.from, ss.readyIn = c, from, time.Since(ss.begin)
	ss.mu.Unlock()
	// The session ends with its connection, or when its container is
	// reported dead (say, once its daemon answers again after a restart);
	// never because its daemon is slow to answer pings.
	unwatch := context.AfterFunc(c.Life(), func() { cancel(errDied) })
	if d := ss.cf.cfg.Timeouts.FirstByte.D(); d > 0 && !spoke {
		silent := time.AfterFunc(d, func() {
			if in, _ := proxy.Counts(ss.client); in <= ss.header {
				cancel(errFirstByte)
			}
		})
		defer silent.Stop()
	}
	ss.proxy(ctx, upstream, early, halfClosed)
	unwatch()
	s.supply.put(c, ss.outcome.Reusable(), ss.log)
}

// awaitData holds a start: data session until the client sends its first
// byte, for at most ready.first_byte, reading nothing: no container is
// made, no Docker call is made, and no goroutine but the session's waits.
func (ss *session) awaitData(ctx context.Context) error {
	c := ss.client
	c.SetReadDeadline(time.Now().Add(ss.cf.cfg.Ready.FirstByte.D()))
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	err := proxy.AwaitData(c)
	stop()
	c.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errNoData
	default: // EOF or a reset
		return errClientGone
	}
}

// proxy delivers what the client sent early, then pipes both ways.
func (ss *session) proxy(ctx context.Context, upstream *net.TCPConn, early []byte, halfClosed bool) {
	var in int64
	if len(early) > 0 {
		if _, err := upstream.Write(early); err != nil {
			upstream.Close()
			ss.setOutcome(ganger.Fail(ganger.Reset, fmt.Errorf("deliver early bytes: %w", err)))
			return
		}
		in = int64(len(early))
	}
	if halfClosed {
		upstream.CloseWrite()
	}
	t := ss.cf.cfg.Timeouts
	opt := proxy.Options{Idle: t.Idle.D(), HalfClosed: t.HalfClosed.D(), Replied: ss.svc.supply.replied, Ending: ss.releaseIP}
	if t.Session > 0 {
		opt.Max = max(t.Session.D()-time.Since(ss.begin), time.Millisecond)
	}
	st := proxy.Pipe(ctx, ss.client, upstream, opt)
	outcome, err := ganger.Outcome(st.Outcome), st.Err
	if st.Outcome == proxy.Canceled {
		err = context.Cause(ctx)
		outcome = ganger.OutcomeOf(err, ganger.Canceled)
	}
	ss.mu.Lock()
	ss.in, ss.out = in+st.In, st.Out
	ss.outcome, ss.err = outcome, err
	ss.mu.Unlock()
}

// fail records why the session never reached a container, closes the
// client at once, and tells a client refused for want of room, if the
// service says what to tell it.
func (ss *session) fail(err error) {
	ss.setOutcome(err)
	if ss.releaseIP != nil {
		ss.releaseIP()
	}
	if msg := ss.cf.cfg.Queue.RejectMessage; msg != "" && (ss.outcome == ganger.QueueFull || ss.outcome == ganger.QueueTimeout) {
		ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(ss.client, msg+"\n")
	}
	ss.client.Close()
}

func (ss *session) logEnd() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	daemon, container := "", ""
	if ss.c != nil {
		daemon, container = ss.c.Daemon(), shortID(ss.c.ID())
	}
	attrs := []any{
		"client", ss.addr.String(),
		"daemon", daemon,
		"container", container,
		"from", ss.from,
		"ready", ss.readyIn.Round(time.Microsecond),
		"bytes_in", ss.in,
		"bytes_out", ss.out,
		"duration", time.Since(ss.begin).Round(time.Microsecond),
		"outcome", string(ss.outcome),
	}
	var exit *fleet.ExitError
	if errors.As(ss.err, &exit) {
		attrs = append(attrs, "exit_code", exit.Exit.Code, "last_output", exit.Output())
	}
	level := slog.LevelInfo
	if ss.err != nil {
		attrs = append(attrs, "err", ss.err.Error())
		if !ss.outcome.Quiet() {
			level = slog.LevelWarn
		}
	}
	ss.log.Log(context.Background(), level, "session end", attrs...)
}

func shortID(id string) string {
	if len(id) == 64 {
		return id[:12]
	}
	return id
}
