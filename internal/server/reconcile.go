package server

import (
	"context"
	"time"

	"github.com/ganger-dev/ganger"
)

// reconcileEvery removes, every interval, the containers of this node that
// no live session owns, and counts other nodes' containers on each daemon
// (they share its max_containers).
func (s *Server) reconcileEvery(ctx context.Context, every time.Duration) {
	tick(ctx, every, func() {
		for _, m := range s.members {
			if m.isUp() {
				s.sweep(ctx, m, "reconcile")
			}
		}
	})
}

// tick calls f every interval until ctx ends.
func tick(ctx context.Context, every time.Duration, f func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// sweep removes the containers of this node on the daemon that were owned
// by no live session, neither before they were listed nor after: a session
// that ended in between has had its container removed already (it stays
// owned until then), and one that began in between is owned now. At
// start-up nothing is owned: everything of this node is an orphan of an
// earlier run. A periodic pass removes only what the pass before it also
// found unowned: an orphan waits one interval more, and a container that
// changes hands at the wrong moment is never taken.
func (s *Server) sweep(ctx context.Context, m *member, when string) (int, error) {
	before := s.liveSessions()
	found, err := m.d.ListManaged(ctx, "")
	if err != nil {
		s.log.Warn("cannot list containers", "daemon", m.name, "when", when, "err", err)
		return 0, err
	}
	removed, others := 0, 0
	next := map[string]bool{}
	defer func() {
		if when == "reconcile" {
			m.unowned = next
		}
	}()
	for _, c := range found {
		if c.Labels[ganger.LabelOwner] != s.cfg.Node {
			others++
			continue
		}
		key := m.name + "/" + c.Name
		if before[key] || s.owned(m.name, c) {
			continue
		}
		if when == "reconcile" && !m.unowned[key] {
			next[key] = true // removed if the next pass finds it unowned still
			continue
		}
		if err := m.d.Remove(ctx, c.ID); err != nil {
			s.log.Warn("cannot remove orphan", "daemon", m.name, "container", c.Name, "err", err)
			continue
		}
		removed++
		if when == "reconcile" {
			s.log.Info("reconcile: removed orphan", "daemon", m.name, "container", c.Name, "service", c.Labels[ganger.LabelService])
		}
	}
	s.sched.SetOthers(m.name, others)
	if when != "reconcile" {
		s.log.Info("swept containers of this node", "when", when, "daemon", m.name, "owner", s.cfg.Node, "removed", removed)
	}
	return removed, nil
}

// liveSessions returns the daemon/name of every container a service owns
// now.
func (s *Server) liveSessions() map[string]bool {
	live := map[string]bool{}
	for _, svc := range s.serviceList() {
		for _, key := range svc.Live() {
			live[key] = true
		}
	}
	return live
}

// owned reports whether a service (running or draining) owns c.
func (s *Server) owned(daemon string, c ganger.Managed) bool {
	for _, svc := range s.serviceList() {
		if svc.Owns(daemon, c.Name) {
			return true
		}
	}
	return false
}
