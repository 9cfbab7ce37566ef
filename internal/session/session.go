package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/proxy"
)

// Outcomes of a session that never reached its container. Once proxying,
// the outcome is the proxy's (closed, reset, idle, timeout, canceled).
const (
	outcomeClientGone = "client_gone" // the client left while its container started
	outcomeCreate     = "create_failed"
	outcomeStart      = "start_failed"
	outcomeExited     = "exited" // the container exited before it was ready
	outcomeNotReady   = "not_ready"
	outcomeShutdown   = "shutdown"    // Ganger stopped while the container started
	outcomeCapacity   = "no_capacity" // the daemon has max_containers already
	logLines          = 10            // container output lines logged on early exit
)

// session is one client connection and its life.
type session struct {
	svc    *Service
	id     string
	client *net.TCPConn
	log    *slog.Logger
	begin  time.Time

	target   string // container id, or name until the id is known
	daemon   string
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
	ss.log = s.log.With("session", ss.id)
	ss.log.Info("session start", "client", conn.RemoteAddr().String())
	if !s.slots.TryAcquire() {
		conn.Close()
		ss.outcome, ss.err = outcomeCapacity, errNoCapacity
		ss.logEnd()
		return
	}
	s.setLive(ss.id, true)
	ss.run()
	if ss.target != "" {
		s.release(ss.id, ss.target, ss.log) // frees the slot once removed
	} else {
		s.setLive(ss.id, false)
		s.slots.Release()
	}
	ss.logEnd()
}

func (ss *session) run() {
	s := ss.svc
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel() // ends the container watch
	defer ss.client.Close()

	startCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	startCtx, cancelT := context.WithTimeoutCause(startCtx, s.cfg.Ready.Timeout.D(), errNotReady)
	defer cancelT()
	early := startEarly(ss.client, stop)

	upstream, err := ss.start(startCtx)
	if err != nil {
		early.handOver()
		ss.fail(err)
		return
	}
	ss.readyIn = time.Since(ss.begin)
	buf, halfClosed := early.handOver()
	ss.proxy(ctx, upstream, buf, halfClosed)
}

// start creates and starts the session's container and returns a connection
// to it once it answers. startCtx bounds the start (ready timeout, client
// gone, shutdown).
func (ss *session) start(startCtx context.Context) (*net.TCPConn, error) {
	b := ss.svc.backend
	spec := ss.svc.sessionSpec(ss.id)
	ss.daemon = b.Name()
	ss.target = spec.Name // removal by name covers a create cut short
	id, err := b.Create(startCtx, spec)
	if err != nil {
		return nil, stepError{outcomeCreate, err}
	}
	ss.target = id
	addr, err := b.Start(startCtx, id, spec.Port)
	if err != nil {
		return nil, stepError{outcomeStart, err}
	}
	return ss.ready(startCtx, addr, id)
}

var (
	errNoCapacity = errors.New("daemon is at max_containers; client refused")
	errNotReady   = errors.New("container not ready within the ready timeout")
	errExited     = errors.New("container exited before it was ready")
)

// ready dials addr until a connect succeeds, with a doubling backoff, and
// gives up when ctx ends or the container exits. The exit is watched beside
// the dials, not before them, and only until ready: after that a dead
// container shows as its connection closing.
func (ss *session) ready(ctx context.Context, addr, id string) (*net.TCPConn, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	seen := make(chan ganger.Exit, 1)
	go func() {
		select {
		case e := <-ss.svc.backend.Wait(ctx, id):
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
	logs, err := ss.svc.backend.Logs(ctx, ss.target, logLines)
	if err != nil {
		logs = "(logs unavailable: " + err.Error() + ")"
	}
	ss.exitLogs = logs
}

func (ss *session) logEnd() {
	attrs := []any{
		"client", ss.client.RemoteAddr().String(),
		"daemon", ss.daemon,
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
