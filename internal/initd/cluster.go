package initd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// The member side of issue 14: with cluster set, ganger-init long-polls
// its cluster's view from Ganger, writes the files Ganger rendered for it
// (View.Files), starts its processes at the first epoch released to it,
// runs on_change at later ones, and reports what it did with each epoch.
// Ganger decides when a member may apply an epoch (min_ready members up,
// dependencies ready, the rollout's order): the member only follows
// View.Release. No template is parsed here: PID 1 stays small.

// Bounds of the member's talk with Ganger.
const (
	pollTimeout    = 2 * time.Minute  // one long-poll; Ganger answers well before
	reportTimeout  = 10 * time.Second // one report
	commandTimeout = time.Minute      // an on_change command
	retryMin       = 200 * time.Millisecond
	retryMax       = 10 * time.Second
	maxAnswer      = 4 << 20
)

// Report states.
const (
	repWaiting    = "waiting"
	repConfigured = "configured"
	repFailed     = "failed"
)

// member is ganger-init's side of the cluster protocol. Its settings and
// on_change are the ones ganger-init started with (a reload changes the
// processes only).
type member struct {
	s        *Supervisor
	log      *slog.Logger
	cfg      Cluster
	onChange *OnChange
	started  bool              // the processes were let start (the first epoch applied)
	unsent   *initproto.Report // the last report, if it did not go through
	applied  map[string]string // the files as last written
}

func newMember(s *Supervisor) *member {
	os.Unsetenv("GANGER_CLUSTER_TOKEN") // no process inherits it
	return &member{s: s, log: s.log.With("component", "cluster"), cfg: *s.cfg.Cluster, onChange: s.cfg.OnChange}
}

// run polls the view until ctx ends. Each poll says what the member holds
// (the last view's epoch and release), so Ganger answers at once when
// that changed, even a release at the same epoch. A view not released is
// reported waiting, once per epoch: that is what makes Ganger count the
// member up. A released epoch not applied yet is applied and reported.
func (m *member) run(ctx context.Context) {
	var after int64
	released := false
	applied, waited := int64(-1), int64(-1)
	retry := retryMin
	for {
		v, err := m.view(ctx, after, released)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.log.Warn("cannot get the cluster's view", "err", err, "retry_in", retry)
			if !sleep(ctx, jitter(retry)) {
				return
			}
			retry = min(2*retry, retryMax)
			continue
		}
		retry = retryMin
		after, released = v.Epoch, v.Release
		switch {
		case v.Release && v.Epoch != applied:
			applied = v.Epoch
			m.report(ctx, m.apply(ctx, v))
		case !v.Release && v.Epoch != waited && v.Epoch != applied:
			waited = v.Epoch
			why := waitReason(v)
			m.log.Info("waiting", "epoch", v.Epoch, "for", why)
			m.report(ctx, initproto.Report{Epoch: v.Epoch, State: repWaiting, Reason: why})
		case m.unsent != nil:
			m.report(ctx, *m.unsent) // Ganger is back: tell it again
		}
	}
}

// waitReason words why v is not released; Ganger alone knows which of
// its conditions holds the member back.
func waitReason(v *initproto.View) string {
	why := []string{fmt.Sprintf("%d members up (min_ready)", v.MinReady)}
	for _, dep := range slices.Sorted(maps.Keys(v.DepMinReady)) {
		why = append(why, fmt.Sprintf("cluster %s ready (%d of %d)", dep, v.Deps[dep].Ready, v.DepMinReady[dep]))
	}
	return "not released yet: waiting for " + strings.Join(why, ", ") + ", or the rollout's order"
}

// apply writes v's files, then starts the processes (the first time) or
// runs on_change, and says how it went.
func (m *member) apply(ctx context.Context, v *initproto.View) initproto.Report {
	if err := writeFiles(v.Files); err != nil {
		return m.failed(v.Epoch, err)
	}
	if !m.started {
		m.started = true
		m.s.call(func() {
			m.s.gated = false
			m.s.schedule()
			m.s.checkDone()
		})
	} else if len(v.Files) > 0 && maps.Equal(v.Files, m.applied) {
		// Nothing the processes read changed (a new leader nobody
		// renders, say): on_change would only disturb them.
		m.log.Info("epoch changes no file: on_change not run", "epoch", v.Epoch)
	} else if err := m.change(ctx); err != nil {
		m.applied = nil
		return m.failed(v.Epoch, fmt.Errorf("on_change: %w", err))
	}
	m.applied = maps.Clone(v.Files)
	m.log.Info("configured", "epoch", v.Epoch, "files", len(v.Files))
	return initproto.Report{Epoch: v.Epoch, State: repConfigured}
}

func (m *member) failed(epoch int64, err error) initproto.Report {
	m.log.Error("cannot apply the epoch", "epoch", epoch, "err", err)
	return initproto.Report{Epoch: epoch, State: repFailed, Reason: err.Error()}
}

// writeFiles writes every file, by path, each whole: Ganger rendered them
// (and is the authority on which there are).
func writeFiles(files map[string]string) error {
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if !filepathIsAbs(path) {
			return fmt.Errorf("write %s: not an absolute path", path)
		}
		if err := writeAtomic(path, []byte(files[path])); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// writeAtomic writes a file whole or not at all: a process never reads
// half of it.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // once renamed, a no-op
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// change runs on_change: restart or signal processes (in the loop, as
// ganger-init ctl would), or run the command.
func (m *member) change(ctx context.Context) error {
	o := m.onChange
	if o == nil {
		return nil
	}
	if len(o.Command) > 0 {
		return m.command(ctx, o.Command)
	}
	var reqs []initproto.Request
	for _, name := range o.Restart {
		reqs = append(reqs, initproto.Request{Op: "restart", Name: name})
	}
	for _, name := range slices.Sorted(maps.Keys(o.Signal)) {
		reqs = append(reqs, initproto.Request{Op: "signal", Name: name, Signal: o.Signal[name]})
	}
	var errs []error
	if !m.s.call(func() {
		for _, r := range reqs {
			if why := m.s.act(r); why != "" {
				errs = append(errs, fmt.Errorf("%s %s: %s", r.Op, r.Name, why))
			}
		}
	}) {
		return errStopping
	}
	return errors.Join(errs...)
}

// command runs argv through the reaper with ganger-init's output, and
// fails unless it exits 0 within commandTimeout.
func (m *member) command(ctx context.Context, argv []string) error {
	q := &proc{name: "on_change", spec: &Process{Cmd: argv}, ring: &ring{}}
	pid, done, err := m.s.spawn(q)
	if err != nil {
		return err
	}
	t := time.NewTimer(commandTimeout)
	defer t.Stop()
	select {
	case st := <-done:
		if !st.OK() {
			return fmt.Errorf("%s: %s", argv[0], st)
		}
		return nil
	case <-ctx.Done():
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s: killed: ganger-init is stopping", argv[0])
	case <-t.C:
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-done
	return fmt.Errorf("%s: did not finish within %s", argv[0], commandTimeout)
}

// status is the process list a report carries.
func (m *member) status() []initproto.Process {
	var list []initproto.Process
	m.s.call(func() {
		for _, name := range sortedNames(m.s.procs) {
			list = append(list, m.s.procs[name].view())
		}
	})
	return list
}

// view long-polls the view: Ganger answers once its view of the member
// differs from the epoch and release it holds (or after a wait).
func (m *member) view(ctx context.Context, after int64, released bool) (*initproto.View, error) {
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	rel := "0"
	if released {
		rel = "1"
	}
	b, err := m.do(ctx, "GET", "/view?after="+strconv.FormatInt(after, 10)+"&released="+rel, nil)
	if err != nil {
		return nil, err
	}
	v := &initproto.View{}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode the view: %w", err)
	}
	return v, nil
}

// report posts r with the processes' state now, trying a few times:
// Ganger waits for it to go on. One that does not go through is kept, and
// sent again after the next poll unless a newer one replaces it.
func (m *member) report(ctx context.Context, r initproto.Report) {
	r.Processes = m.status()
	m.unsent = &r
	body, err := json.Marshal(r)
	if err != nil {
		m.log.Error("cannot encode the report", "err", err)
		return
	}
	retry := retryMin
	for try := 1; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, reportTimeout)
		_, err = m.do(rctx, "POST", "/report", body)
		cancel()
		switch {
		case err == nil:
			m.unsent = nil
			return
		case ctx.Err() != nil:
			return
		case try == 3:
			m.log.Error("cannot report: will again after the next poll", "epoch", r.Epoch, "state", r.State, "err", err)
			return
		}
		if !sleep(ctx, jitter(retry)) {
			return
		}
		retry *= 2
	}
}

// token is the bearer token: GANGER_CLUSTER_TOKEN's (the environment
// wins), else token_file's (read at each call, so that it may be
// rotated).
func (m *member) token() (string, error) {
	if m.cfg.token != "" || m.cfg.TokenFile == "" {
		return m.cfg.token, nil
	}
	b, err := os.ReadFile(m.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read the cluster token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// do makes one call of the member's API (suffix after its path) with its
// token, and returns the body of a 2xx answer.
func (m *member) do(ctx context.Context, method, suffix string, body []byte) ([]byte, error) {
	tok, err := m.token()
	if err != nil {
		return nil, err
	}
	raw := strings.TrimRight(m.cfg.API, "/") + "/v1/clusters/" + url.PathEscape(m.cfg.Name) +
		"/members/" + strconv.Itoa(*m.cfg.Ordinal) + suffix
	header := "Content-Type: application/json\r\n"
	if tok != "" {
		header += "Authorization: Bearer " + tok + "\r\n"
	}
	code, b, err := httpDo(ctx, method, raw, header, body, true)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, suffix, err)
	}
	if code/100 != 2 {
		return nil, fmt.Errorf("%s %s answered %d: %s", method, suffix, code, strings.TrimSpace(string(b[:min(len(b), 200)])))
	}
	return b, nil
}

// httpDo makes one HTTP/1.1 request with ganger-init's minimal client
// (net/http would double its size): header lines end with CRLF, body is
// sent with its length. It returns the status and, with wantBody, the
// body (by Content-Length, chunks, or up to the close). ctx ending closes
// the connection: a shutdown ends a long-poll at once.
func httpDo(ctx context.Context, method, raw, header string, body []byte, wantBody bool) (int, []byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ganger-init\r\nConnection: close\r\n%s", method, u.RequestURI(), u.Host, header)
	if body != nil || method != "GET" {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return 0, nil, err
	}
	return readAnswer(bufio.NewReader(conn), wantBody)
}

// readAnswer reads an HTTP/1.1 answer's status and, with wantBody, its
// body (by Content-Length, chunks, or up to the close).
func readAnswer(r *bufio.Reader, wantBody bool) (int, []byte, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("no answer: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return 0, nil, fmt.Errorf("not an HTTP answer: %q", strings.TrimSpace(line))
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, nil, fmt.Errorf("bad status %q", f[1])
	}
	if !wantBody {
		return code, nil, nil
	}
	length, chunked := -1, false
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, fmt.Errorf("headers: %w", err)
		}
		h = strings.TrimSpace(h)
		if h == "" {
			break
		}
		k, val, _ := strings.Cut(h, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-length":
			length, _ = strconv.Atoi(strings.TrimSpace(val))
		case "transfer-encoding":
			chunked = strings.EqualFold(strings.TrimSpace(val), "chunked")
		}
	}
	var b []byte
	switch {
	case chunked:
		b, err = readChunks(r)
	case length > maxAnswer:
		err = fmt.Errorf("answer of %d bytes: too long", length)
	case length >= 0:
		b = make([]byte, length)
		_, err = io.ReadFull(r, b)
	default:
		b, err = io.ReadAll(io.LimitReader(r, maxAnswer))
	}
	return code, b, err
}

func readChunks(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		hex, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(hex, 16, 64)
		switch {
		case err != nil || n < 0:
			return nil, fmt.Errorf("bad chunk size %q", hex)
		case n == 0:
			return out, nil
		case int64(len(out))+n > maxAnswer:
			return nil, fmt.Errorf("answer too long")
		}
		chunk := make([]byte, n+2) // and its CRLF
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, err
		}
		out = append(out, chunk[:n]...)
	}
}

// jitter is d give or take half.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
