package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/proxy"
	"github.com/ganger-dev/ganger/internal/sched"
)

// Outcomes of a session that never reached its container. Once proxying,
// the outcome is the proxy's (closed, reset, idle, timeout, canceled).
const (
	outcomeClientGone   = "client_gone" // the client left while waiting or while its container started
	outcomeRefusedProxy = "refused_proxy"
	outcomePerIP        = "refused_per_ip"
	outcomePerIPRate    = "refused_rate"
	outcomeQueueFull    = "queue_full"
	outcomeQueueTimeout = "queue_timeout"
	outcomeCreate       = "create_failed"
	outcomeStart        = "start_failed"
	outcomeExited       = "exited" // the container exited before it was ready
	outcomeNotReady     = "not_ready"
	outcomeDaemonDown   = "daemon_down" // its daemon was marked down
	outcomeShutdown     = "shutdown"    // Ganger stopped before the session was proxying
	logLines            = 10            // container output lines logged on early exit
	placeAttempts       = 3             // daemons tried when one fails a call
)

var (
	errNotReady   = errors.New("container not ready within the ready timeout")
	errExited     = errors.New("container exited before it was ready")
	errQueueWait  = errors.New("no room within the queue timeout")
	errDaemonDown = errors.New("daemon marked down")
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

	c       *container
	from    string      // new, pool or shared
	unwatch func() bool // stops ending the session when its daemon goes down
	readyIn time.Duration
	exit    *exitError
	in, out int64
	outcome string
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
	defer ss.cf.ips.done(ss.addr.Addr().Unmap())
	ss.run()
}

// admit reads the PROXY header if the service takes one, logs the session's
// start, and applies the per-address limits.
func (ss *session) admit() bool {
	if ss.cf.trusted != nil {
		addr, rest, err := proxyHeader(ss.client, ss.cf.trusted)
		ss.addr, ss.early = addr, rest
		if err != nil {
			ss.log.Info("session start", "client", ss.addr.String(), "peer", ss.client.RemoteAddr().String())
			ss.setOutcome(outcomeRefusedProxy, err)
			return false
		}
	}
	ss.log.Info("session start", "client", ss.addr.String())
	if err := ss.cf.ips.admit(ss.addr.Addr().Unmap()); err != nil {
		outcome := outcomePerIP
		if errors.Is(err, errPerIPRate) {
			outcome = outcomePerIPRate
		}
		ss.setOutcome(outcome, err)
		return false
	}
	return true
}

func (ss *session) setOutcome(outcome string, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.outcome, ss.err = outcome, err
}

func (ss *session) run() {
	s := ss.svc
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	ss.setEnd(cancel)
	defer ss.client.Close()

	gone, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	early := startEarly(ss.client, ss.early, stop)
	c, upstream, from, err := s.supply.get(gone, ss.cf, ss.id, ss.log)
	if err != nil {
		early.handOver()
		ss.fail(err)
		return
	}
	ss.mu.Lock()
	ss.c, ss.from, ss.readyIn = c, from, time.Since(ss.begin)
	ss.mu.Unlock()
	ss.unwatch = context.AfterFunc(s.cluster.lifeOf(c.daemon()), func() { cancel(errDaemonDown) })
	buf, halfClosed := early.handOver()
	ss.proxy(ctx, upstream, buf, halfClosed)
	ss.unwatch()
	s.supply.put(c, ss.reusable(), ss.log)
}

// reusable reports whether the session ended in a way that leaves its
// container fit to serve again.
func (ss *session) reusable() bool {
	switch proxy.Outcome(ss.outcome) {
	case proxy.Closed, proxy.Idle, proxy.MaxTime:
		return true
	}
	return false
}

// proxy delivers what the client sent early, then pipes both ways.
func (ss *session) proxy(ctx context.Context, upstream *net.TCPConn, early []byte, halfClosed bool) {
	var in int64
	if len(early) > 0 {
		if _, err := upstream.Write(early); err != nil {
			upstream.Close()
			ss.setOutcome(string(proxy.Reset), fmt.Errorf("deliver early bytes: %w", err))
			return
		}
		in = int64(len(early))
	}
	if halfClosed {
		upstream.CloseWrite()
	}
	t := ss.cf.cfg.Timeouts
	opt := proxy.Options{Idle: t.Idle.D()}
	if t.Session > 0 {
		opt.Max = max(t.Session.D()-time.Since(ss.begin), time.Millisecond)
	}
	st := proxy.Pipe(ctx, ss.client, upstream, opt)
	outcome, err := string(st.Outcome), st.Err
	if st.Outcome == proxy.Canceled {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errDaemonDown):
			outcome, err = outcomeDaemonDown, cause
		case errors.Is(cause, errKilled):
			outcome, err = outcomeKilled, cause
		}
	}
	ss.mu.Lock()
	ss.in, ss.out = in+st.In, st.Out
	ss.outcome, ss.err = outcome, err
	ss.mu.Unlock()
}

// stepError tags a start failure with its outcome.
type stepError struct {
	outcome string
	err     error
}

func (e stepError) Error() string { return e.err.Error() }
func (e stepError) Unwrap() error { return e.err }

// fail records why the session never reached a container, closes the
// client at once, and tells a client refused for want of room, if the
// service says what to tell it.
func (ss *session) fail(err error) {
	ss.mu.Lock()
	ss.err = err
	var se stepError
	switch {
	case errors.Is(err, errKilled):
		ss.outcome = outcomeKilled
	case errors.Is(err, errClientGone):
		ss.outcome = outcomeClientGone
	case errors.Is(err, sched.ErrQueueFull):
		ss.outcome = outcomeQueueFull
	case errors.Is(err, errQueueWait):
		ss.outcome = outcomeQueueTimeout
	case errors.Is(err, errDaemonDown):
		ss.outcome = outcomeDaemonDown
	case errors.As(err, &ss.exit):
		ss.outcome = outcomeExited
	case errors.Is(err, errNotReady):
		ss.outcome = outcomeNotReady
	case ss.svc.ctx.Err() != nil:
		ss.outcome = outcomeShutdown
	case errors.As(err, &se):
		ss.outcome = se.outcome
	default:
		ss.outcome = outcomeStart
	}
	ss.mu.Unlock()
	if msg := ss.cf.cfg.Queue.RejectMessage; msg != "" && (ss.outcome == outcomeQueueFull || ss.outcome == outcomeQueueTimeout) {
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
		daemon, container = ss.c.daemon(), shortID(ss.c.id)
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
		"outcome", ss.outcome,
	}
	if ss.exit != nil {
		attrs = append(attrs, "exit_code", ss.exit.exit.Code, "last_output", ss.exit.logs)
	}
	level := slog.LevelInfo
	if ss.err != nil {
		attrs = append(attrs, "err", ss.err.Error())
		if ss.outcome != outcomeClientGone && ss.outcome != string(proxy.Reset) {
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
