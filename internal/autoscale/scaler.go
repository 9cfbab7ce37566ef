package autoscale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Scaler takes the decisions the package doc describes and runs the hooks.
// Its methods are safe for concurrent use.
type Scaler struct {
	cfg    Config
	fleet  Fleet
	leader Leader
	clock  Clock
	log    *slog.Logger

	hooks sync.WaitGroup // hook runs in flight; Run waits for them

	mu       sync.Mutex
	paused   bool
	leading  bool
	last     Decision
	lastMove *Decision
	pending  []*request // oldest first
	out      *Removal   // the host on its way out, one at a time
	lastUp   time.Time  // the last up request
	lastDown time.Time  // the last down hook
	runs     []HookRun  // the latest keepRuns, oldest first
	totals   Totals
	said     string // the last reason logged, so a steady state logs once
}

// request is an up request outstanding.
type request struct {
	id       string
	at       time.Time
	accepted bool
}

// keepRuns is how many hook runs Status shows.
const keepRuns = 16

// New returns a Scaler for cfg, which should have passed Validate. A nil
// leader is Solo, a nil clock RealClock, a nil log discards.
func New(cfg Config, fleet Fleet, leader Leader, clock Clock, log *slog.Logger) *Scaler {
	if leader == nil {
		leader = Solo{}
	}
	if clock == nil {
		clock = RealClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scaler{
		cfg: cfg, fleet: fleet, leader: leader, clock: clock,
		log:  log.With("component", "autoscale"),
		last: Decision{At: clock.Now(), Action: ActionNone, Reason: "no decision yet"},
	}
}

// Run decides every interval, the first one interval after it starts,
// until ctx ends. Start it once the fleet's snapshot holds the hosts there
// are: an empty fleet asks for hosts. When ctx ends the hooks running are
// killed; Run waits for them and puts back a host it had drained.
func (s *Scaler) Run(ctx context.Context) error {
	defer s.stop()
	next := s.clock.Now().Add(s.cfg.Interval)
	for {
		c, stop := s.clock.TimerAt(next)
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-c:
		}
		s.tick(ctx)
		next = s.clock.Now().Add(s.cfg.Interval)
	}
}

func (s *Scaler) stop() {
	s.hooks.Wait()
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out != nil && out.Phase == PhaseDraining {
		s.putBack(out.Host, "the scaler stopped")
	}
}

// tick is one pass: bookkeeping always, a decision when this node may.
func (s *Scaler) tick(ctx context.Context) {
	snap := s.fleet.Snapshot()
	leading := s.leader.Leading()
	now := s.clock.Now()
	s.mu.Lock()
	s.leading = leading
	s.expire(now)
	s.track(snap, now)
	var out *Removal
	if s.out != nil && s.out.Phase == PhaseDraining {
		o := *s.out
		out = &o
	}
	hold := ""
	switch {
	case s.paused:
		hold = "paused"
	case !leading:
		hold = "not leading: another front-end decides"
	}
	s.mu.Unlock()
	switch {
	case hold != "":
		if out != nil {
			s.putBack(out.Host, hold)
			hold += "; " + out.Host + " put back"
		}
		s.record(Decision{At: now, Action: ActionNone, Reason: hold})
	case out != nil:
		s.proceed(ctx, snap, now, *out)
	default:
		s.decide(ctx, snap, now)
	}
}

// decide takes a decision on a fleet with no host drained at step 1.
func (s *Scaler) decide(ctx context.Context, snap Snapshot, now time.Time) {
	u := measure(snap)
	s.mu.Lock()
	if need := s.cfg.upNeed(u, len(s.pending)); need != "" {
		s.recordLocked(s.up(ctx, snap, u, now, need))
		s.mu.Unlock()
		return
	}
	if s.out != nil {
		s.recordLocked(Decision{At: now, Action: ActionNone, Host: s.out.Host, RequestID: s.out.RequestID,
			Reason: s.out.Host + " on its way out (" + string(s.out.Phase) + ")"})
		s.mu.Unlock()
		return
	}
	p := s.cfg.downPick(u, snap, now)
	if !p.ok {
		s.recordLocked(Decision{At: now, Action: ActionNone, Reason: p.reason})
		s.mu.Unlock()
		return
	}
	if l := left(s.lastDown, now, s.cfg.Cooldown); l > 0 {
		s.recordLocked(Decision{At: now, Action: ActionWait, Host: p.host.Name,
			Reason: p.host.Name + " may go but cooldown: " + fmtDur(l) + " left"})
		s.mu.Unlock()
		return
	}
	id := newID("down")
	s.out = &Removal{Host: p.host.Name, RequestID: id, Phase: PhaseDraining, Since: now}
	s.mu.Unlock()
	s.drain(p, id, now)
}

// Pause stops decisions (and puts back, at the next pass, a host drained
// to go) until Resume. Requests and hooks under way go on.
func (s *Scaler) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		s.paused = true
		s.log.Info("paused")
	}
}

// Resume lets decisions be taken again.
func (s *Scaler) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		s.paused = false
		s.log.Info("resumed")
	}
}

// Registered tells the Scaler that host joined the fleet at at: it
// settles the oldest pending up request made at or before at, if any.
func (s *Scaler) Registered(host string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.pending, func(r *request) bool { return !r.at.After(at) })
	if i < 0 {
		return
	}
	r := s.pending[i]
	s.pending = slices.Delete(s.pending, i, i+1)
	s.totals.UpSettled++
	s.log.Info("host registered: up request settled", "host", host, "request_id", r.id, "after", at.Sub(r.at))
}

// Status returns the Scaler's state.
func (s *Scaler) Status() Status {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Paused: s.paused, Leading: s.leading, Last: s.last,
		Pending: make([]Pending, 0, len(s.pending)),
		Hooks:   append([]HookRun{}, s.runs...),
		Totals:  s.totals,
	}
	if s.lastMove != nil {
		d := *s.lastMove
		st.LastMove = &d
	}
	if s.out != nil {
		r := *s.out
		st.Removing = &r
	}
	for _, r := range s.pending {
		st.Pending = append(st.Pending, Pending{RequestID: r.id, Requested: r.at,
			AgeSeconds: now.Sub(r.at).Seconds(), Accepted: r.accepted})
	}
	return st
}

func (s *Scaler) record(d Decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordLocked(d)
}

// recordLocked keeps d as the last decision; moves are logged, the rest
// at debug level when the reason changes.
func (s *Scaler) recordLocked(d Decision) {
	s.last = d
	if d.Action == ActionUp || d.Action == ActionDown {
		s.lastMove = &d
		s.log.Info("decision", "action", d.Action, "host", d.Host, "request_id", d.RequestID, "reason", d.Reason)
	} else if d.Reason != s.said {
		s.log.Debug("decision", "action", d.Action, "reason", d.Reason)
	}
	s.said = d.Reason
}

// keepRun adds run to the runs Status shows. s.mu is held.
func (s *Scaler) keepRun(run HookRun) {
	s.runs = append(s.runs, run)
	if len(s.runs) > keepRuns {
		s.runs = slices.Delete(s.runs, 0, len(s.runs)-keepRuns)
	}
}

// runHook runs h unless this node no longer leads.
func (s *Scaler) runHook(ctx context.Context, h Hook, in hookInput) HookRun {
	started := s.clock.Now()
	var run HookRun
	if s.leader.Leading() {
		run = runHook(ctx, h, in)
	} else {
		run = HookRun{Action: in.Action, RequestID: in.RequestID, Host: in.Host, ExitCode: -1,
			Error: "not leading: hook not run"}
	}
	run.Started = started
	return run
}

// newID returns a request id: a hook may use it to make a retry
// idempotent.
func newID(action string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return action + "-" + hex.EncodeToString(b)
}
