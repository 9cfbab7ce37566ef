package autoscale

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// up starts an up request for need, unless a limit holds it back. s.mu is
// held.
func (s *Scaler) up(ctx context.Context, snap Snapshot, u usage, now time.Time, need string) Decision {
	pending := len(s.pending)
	if block := s.cfg.upBlock(u, pending, left(s.lastUp, now, s.cfg.Cooldown)); block != "" {
		return Decision{At: now, Action: ActionWait, Reason: need + " but " + block}
	}
	id := newID("up")
	reason := fmt.Sprintf("%s with %d pending < max_pending %d", need, pending, s.cfg.MaxPending)
	s.pending = append(s.pending, &request{id: id, at: now})
	s.lastUp = now
	s.totals.UpRequested++
	in := hookInput{Action: ActionUp, RequestID: id, Reason: reason, Snapshot: newHookSnapshot(snap)}
	s.hooks.Go(func() { s.upHook(ctx, in) })
	return Decision{At: now, Action: ActionUp, RequestID: id, Reason: reason}
}

// upHook runs the up hook of a request: a failure ends the request.
func (s *Scaler) upHook(ctx context.Context, in hookInput) {
	run := s.runHook(ctx, s.cfg.Up, in)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepRun(run)
	i := slices.IndexFunc(s.pending, func(r *request) bool { return r.id == in.RequestID })
	switch {
	case run.Accepted && i >= 0:
		s.pending[i].accepted = true
	case run.Accepted:
	case i >= 0:
		s.pending = slices.Delete(s.pending, i, i+1)
		s.totals.UpFailed++
		s.log.Warn("up hook failed", "request_id", in.RequestID, "error", run.Error, "stderr", run.Stderr)
	default:
		// Settled by a host that registered while the hook ran, or expired.
		s.log.Warn("up hook failed after its request ended", "request_id", in.RequestID, "error", run.Error)
	}
}

// expire ends the requests older than provision_timeout. s.mu is held.
func (s *Scaler) expire(now time.Time) {
	s.pending = slices.DeleteFunc(s.pending, func(r *request) bool {
		if now.Sub(r.at) < s.cfg.ProvisionTimeout {
			return false
		}
		s.totals.UpExpired++
		s.log.Warn("up request expired: no host registered", "request_id", r.id,
			"provision_timeout", s.cfg.ProvisionTimeout)
		return true
	})
}
