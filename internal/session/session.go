package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/ganger-dev/ganger"
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

// session is one client connection and its life.
type session struct {
	svc    *Service
	id     string
	client *net.TCPConn
	addr   netip.AddrPort // the real client: the PROXY header's source, if any
	log    *slog.Logger
	begin  time.Time
	early  []byte // read with the PROXY header, before the early reader

	lease    *sched.Lease
	unwatch  func() bool // stops ending the session when its daemon goes down
	target   string      // container id, or name until the id is known
	readyIn  time.Duration
	exit     *ganger.Exit
	exitLogs string
	in, out  int64
	outcome  string
	err      error
}

func (s *Service) handle(conn *net.TCPConn) {
	defer s.sessions.Done()
	ss := &session{svc: s, id: newID(), client: conn, begin: time.Now()}
	ss.addr = conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	ss.log = s.log.With("session", ss.id)
	defer ss.logEnd()
	if !ss.admit() {
		conn.Close()
		return
	}
	defer s.ips.done(ss.addr.Addr())
	s.setLive(ss.id, true)
	ss.run()
	switch {
	case ss.target != "":
		s.release(ss.id, ss.target, ss.lease, ss.log) // frees the lease once removed
	case ss.lease != nil:
		s.setLive(ss.id, false)
		ss.lease.Release()
	default:
		s.setLive(ss.id, false)
	}
}

// admit reads the PROXY header if the service takes one, logs the session's
// start, and applies the per-address limits.
func (ss *session) admit() bool {
	s := ss.svc
	if s.trusted != nil {
		addr, rest, err := proxyHeader(ss.client, s.trusted)
		ss.addr, ss.early = addr, rest
		if err != nil {
			ss.log.Info("session start", "client", ss.addr.String(), "peer", ss.client.RemoteAddr().String())
			ss.outcome, ss.err = outcomeRefusedProxy, err
			return false
		}
	}
	ss.log.Info("session start", "client", ss.addr.String())
	if err := s.ips.admit(ss.addr.Addr().Unmap()); err != nil {
		ss.outcome, ss.err = outcomePerIP, err
		if errors.Is(err, errPerIPRate) {
			ss.outcome = outcomePerIPRate
		}
		return false
	}
	return true
}

func (ss *session) run() {
	s := ss.svc
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil) // ends the container watch
	defer ss.client.Close()

	gone, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	defer func() {
		if ss.unwatch != nil {
			ss.unwatch()
		}
	}()
	early := startEarly(ss.client, ss.early, stop)
	upstream, err := ss.place(gone, cancel)
	if err != nil {
		early.handOver()
		ss.fail(err)
		return
	}
	ss.readyIn = time.Since(ss.begin)
	buf, halfClosed := early.handOver()
	ss.proxy(ctx, upstream, buf, halfClosed)
}

// place waits for room, then starts the session's container on the daemon
// the scheduler chose; if that daemon fails a call and turns out to be
// down, it tries another. gone ends when the client leaves; endSession
// ends the session (its daemon going down ends it).
func (ss *session) place(gone context.Context, endSession context.CancelCauseFunc) (*net.TCPConn, error) {
	s := ss.svc
	for attempt := 1; ; attempt++ {
		if err := ss.acquire(gone); err != nil {
			return nil, err
		}
		ss.unwatch = context.AfterFunc(s.cluster.lifeOf(ss.lease.Daemon()), func() { endSession(errDaemonDown) })
		startCtx, cancel := context.WithTimeoutCause(gone, s.cfg.Ready.Timeout.D(), errNotReady)
		upstream, err := ss.start(startCtx)
		cancel()
		if err == nil {
			return upstream, nil
		}
		var se stepError
		if attempt == placeAttempts || gone.Err() != nil || !errors.As(err, &se) {
			return nil, err
		}
		ss.unwatch() // before suspecting: marking the daemon down must not end this session
		if !s.cluster.suspect(ss.lease.Daemon()) {
			return nil, err
		}
		ss.log.Warn("daemon failed and is down; trying another", "daemon", ss.lease.Daemon(), "err", err)
		if ss.target != "" {
			s.setLive(ss.id, true) // the next container; the release below ends the count of this one
			s.release(ss.id, ss.target, ss.lease, ss.log)
		} else {
			ss.lease.Release()
		}
		ss.lease, ss.target = nil, ""
	}
}

// acquire waits in the service's queue, up to its timeout, for a lease.
func (ss *session) acquire(gone context.Context) error {
	q := ss.svc.cfg.Queue
	ctx, cancel := context.WithTimeoutCause(gone, max(q.Timeout.D(), time.Nanosecond), errQueueWait)
	defer cancel()
	lease, err := ss.svc.cluster.Sched.Acquire(ctx, ss.svc.name)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		if errors.Is(err, sched.ErrQueueFull) || errors.Is(err, errQueueWait) {
			ss.reject()
		}
		return err
	}
	ss.lease = lease
	return nil
}

// reject sends the queue's reject message, if any, to a refused client.
func (ss *session) reject() {
	if msg := ss.svc.cfg.Queue.RejectMessage; msg != "" {
		ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(ss.client, msg+"\n")
	}
}

// start creates and starts the session's container and returns a connection
// to it once it answers. ctx bounds the start (ready timeout, client gone,
// shutdown).
func (ss *session) start(ctx context.Context) (*net.TCPConn, error) {
	b := ss.svc.cluster.Backend(ss.lease.Daemon())
	spec := ss.svc.sessionSpec(ss.id)
	ss.target = spec.Name // removal by name covers a create cut short
	id, err := b.Create(ctx, spec)
	if err != nil {
		return nil, stepError{outcomeCreate, err}
	}
	ss.target = id
	addr, err := b.Start(ctx, id, spec.Port)
	if err != nil {
		return nil, stepError{outcomeStart, err}
	}
	return ss.ready(ctx, b, addr, id)
}

// ready dials addr until a connect succeeds, with a doubling backoff, and
// gives up when ctx ends or the container exits. The exit is watched beside
// the dials, not before them, and only until ready: after that a dead
// container shows as its connection closing.
func (ss *session) ready(ctx context.Context, b Backend, addr, id string) (*net.TCPConn, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	seen := make(chan ganger.Exit, 1)
	go func() {
		select {
		case e := <-b.Wait(ctx, id):
			if e.Err != nil { // the watch failed, not the container
				cancel(stepError{outcomeStart, fmt.Errorf("watch container: %w", e.Err)})
				return
			}
			seen <- e
			cancel(errExited)
		case <-ctx.Done():
		}
	}()
	cfg := ss.svc.cfg.Ready
	backoff := cfg.Backoff.D()
	d := net.Dialer{Timeout: time.Second}
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err := context.Cause(ctx)
			if errors.Is(err, errExited) {
				e := <-seen
				ss.exit = &e
			}
			return nil, err
		}
		backoff = min(backoff*2, cfg.BackoffMax.D())
	}
}

// proxy delivers what the client sent early, then pipes both ways.
func (ss *session) proxy(ctx context.Context, upstream *net.TCPConn, early []byte, halfClosed bool) {
	if len(early) > 0 {
		if _, err := upstream.Write(early); err != nil {
			upstream.Close()
			ss.outcome, ss.err = string(proxy.Reset), fmt.Errorf("deliver early bytes: %w", err)
			return
		}
		ss.in = int64(len(early))
	}
	if halfClosed {
		upstream.CloseWrite()
	}
	t := ss.svc.cfg.Timeouts
	opt := proxy.Options{Idle: t.Idle.D()}
	if t.Session > 0 {
		opt.Max = max(t.Session.D()-time.Since(ss.begin), time.Millisecond)
	}
	st := proxy.Pipe(ctx, ss.client, upstream, opt)
	ss.in += st.In
	ss.out = st.Out
	ss.outcome, ss.err = string(st.Outcome), st.Err
	if st.Outcome == proxy.Canceled && errors.Is(context.Cause(ctx), errDaemonDown) {
		ss.outcome, ss.err = outcomeDaemonDown, errDaemonDown
	}
}

// stepError tags a start failure with its outcome.
type stepError struct {
	outcome string
	err     error
}

func (e stepError) Error() string { return e.err.Error() }
func (e stepError) Unwrap() error { return e.err }

// fail records why the session never reached its container, and closes the
// client at once; for an early exit it also fetches the container's output.
func (ss *session) fail(err error) {
	ss.client.Close()
	ss.err = err
	var se stepError
	switch {
	case errors.Is(err, errClientGone):
		ss.outcome = outcomeClientGone
	case errors.Is(err, sched.ErrQueueFull):
		ss.outcome = outcomeQueueFull
	case errors.Is(err, errQueueWait):
		ss.outcome = outcomeQueueTimeout
	case errors.Is(err, errDaemonDown):
		ss.outcome = outcomeDaemonDown
	case errors.Is(err, errExited):
		ss.outcome = outcomeExited
		ss.fetchLogs()
	case errors.Is(err, errNotReady):
		ss.outcome = outcomeNotReady
	case ss.svc.ctx.Err() != nil:
		ss.outcome = outcomeShutdown
	case errors.As(err, &se):
		ss.outcome = se.outcome
	default:
		ss.outcome = outcomeStart
	}
}

func (ss *session) fetchLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	logs, err := ss.svc.cluster.Backend(ss.lease.Daemon()).Logs(ctx, ss.target, logLines)
	if err != nil {
		logs = "(logs unavailable: " + err.Error() + ")"
	}
	ss.exitLogs = logs
}

func (ss *session) logEnd() {
	daemon := ""
	if ss.lease != nil {
		daemon = ss.lease.Daemon()
	}
	attrs := []any{
		"client", ss.addr.String(),
		"daemon", daemon,
		"container", shortID(ss.target),
		"ready", ss.readyIn.Round(time.Microsecond),
		"bytes_in", ss.in,
		"bytes_out", ss.out,
		"duration", time.Since(ss.begin).Round(time.Microsecond),
		"outcome", ss.outcome,
	}
	if ss.exit != nil {
		attrs = append(attrs, "exit_code", ss.exit.Code, "last_output", ss.exitLogs)
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
