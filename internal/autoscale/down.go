package autoscale

import (
	"context"
	"slices"
	"time"
)

// drain is step 1 of a removal: drain the host, put it back if it is busy.
func (s *Scaler) drain(p pick, id string, now time.Time) {
	host := p.host.Name
	if err := s.fleet.Drain(host, true); err != nil {
		s.log.Warn("cannot drain host", "host", host, "error", err)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.out = nil
		s.recordLocked(Decision{At: now, Action: ActionWait, Host: host, Reason: "cannot drain " + host + ": " + err.Error()})
		return
	}
	s.mu.Lock()
	s.totals.Drained++
	s.mu.Unlock()
	if s.fleet.Busy(host) {
		s.putBack(host, "busy as it was drained")
		s.record(Decision{At: now, Action: ActionDown, Host: host, RequestID: id, Reason: host + " put back: busy as it was drained"})
		return
	}
	s.record(Decision{At: now, Action: ActionDown, Host: host, RequestID: id, Reason: "drain " + p.reason})
}

// proceed is step 2: the host drained at the previous pass gets its down
// hook, or is put back.
func (s *Scaler) proceed(ctx context.Context, snap Snapshot, now time.Time, out Removal) {
	why := s.unfit(snap, out.Host)
	if why == "" && s.fleet.Busy(out.Host) {
		why = "busy while draining"
	}
	if why != "" {
		s.putBack(out.Host, why)
		s.record(Decision{At: now, Action: ActionDown, Host: out.Host, RequestID: out.RequestID,
			Reason: out.Host + " put back: " + why})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil || s.out.RequestID != out.RequestID {
		return
	}
	s.out.Phase, s.out.Since = PhaseHook, now
	s.lastDown = now
	reason := out.Host + " drained and idle: down hook"
	in := hookInput{Action: ActionDown, RequestID: out.RequestID, Host: out.Host, Reason: reason, Snapshot: newHookSnapshot(snap)}
	s.hooks.Go(func() { s.downHook(ctx, in) })
	s.recordLocked(Decision{At: now, Action: ActionDown, Host: out.Host, RequestID: out.RequestID, Reason: reason + " started"})
}

// unfit says why a host drained to go should stay after all, "" if
// nothing does but Busy, which the caller asks.
func (s *Scaler) unfit(snap Snapshot, host string) string {
	i := slices.IndexFunc(snap.Hosts, func(h Host) bool { return h.Name == host })
	if i < 0 {
		return "gone from the fleet"
	}
	switch h := snap.Hosts[i]; {
	case !h.Up:
		return "not up"
	case !h.Draining:
		return "undrained meanwhile"
	case !h.empty():
		return "has a Ganger container"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if need := s.cfg.upNeed(measure(snap), len(s.pending)); need != "" {
		return "an up is wanted: " + need
	}
	return ""
}

// downHook is step 3: a last look at Busy, then the hook. A host whose
// hook fails is put back; one whose hook says yes stays drained until it
// leaves.
func (s *Scaler) downHook(ctx context.Context, in hookInput) {
	why := ""
	switch {
	case !s.leader.Leading():
		why = "not leading: another front-end decides"
	case s.fleet.Busy(in.Host):
		why = "busy just before its down hook"
	}
	if why != "" {
		s.putBack(in.Host, why)
		s.record(Decision{At: s.clock.Now(), Action: ActionDown, Host: in.Host, RequestID: in.RequestID,
			Reason: in.Host + " put back: " + why})
		return
	}
	run := s.runHook(ctx, s.cfg.Down, in)
	s.mu.Lock()
	s.keepRun(run)
	s.totals.DownHooks++
	if run.Accepted {
		if s.out != nil && s.out.RequestID == in.RequestID {
			s.out.Phase, s.out.Since = PhaseRemoving, s.clock.Now()
		}
		s.mu.Unlock()
		s.log.Info("down hook accepted", "host", in.Host, "request_id", in.RequestID)
		return
	}
	s.totals.DownFailed++
	s.mu.Unlock()
	s.log.Warn("down hook failed", "host", in.Host, "request_id", in.RequestID, "error", run.Error, "stderr", run.Stderr)
	s.putBack(in.Host, "down hook failed: "+run.Error)
}

// track follows a host whose down hook said yes: done when it leaves the
// snapshot; left drained, for an operator, if it stays past
// provision_timeout. s.mu is held.
func (s *Scaler) track(snap Snapshot, now time.Time) {
	if s.out == nil || s.out.Phase != PhaseRemoving {
		return
	}
	host := s.out.Host
	if !slices.ContainsFunc(snap.Hosts, func(h Host) bool { return h.Name == host }) {
		s.totals.Removed++
		s.log.Info("host removed", "host", host, "request_id", s.out.RequestID)
		s.out = nil
		return
	}
	if now.Sub(s.out.Since) >= s.cfg.ProvisionTimeout {
		s.log.Warn("host still in the fleet after its down hook: left drained", "host", host,
			"request_id", s.out.RequestID, "provision_timeout", s.cfg.ProvisionTimeout)
		s.out = nil
	}
}

// putBack undrains host and frees the removal slot.
func (s *Scaler) putBack(host, why string) {
	err := s.fleet.Drain(host, false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out != nil && s.out.Host == host {
		s.out = nil
	}
	s.totals.PutBack++
	if err != nil {
		s.log.Warn("cannot put host back", "host", host, "reason", why, "error", err)
		return
	}
	s.log.Info("host put back", "host", host, "reason", why)
}
