package fleet

import (
	"context"

	"github.com/ganger-dev/ganger"
)

// reconcile sweeps every daemon that is up.
func (f *Fleet) reconcile() {
	for _, m := range f.memberList() {
		if f.isUp(m.name) {
			f.sweep(f.ctx, m, "reconcile")
		}
	}
}

// sweep removes this node's containers on the daemon that the fleet does
// not own, neither before they were listed nor after: one released in
// between had its removal confirmed already, and one made in between is
// owned now. At start-up nothing is owned: everything of this node is an
// orphan of an earlier run. A periodic pass removes only what the pass
// before it also found unowned. It also counts the other nodes'
// containers there: they share the daemon's max_containers.
func (f *Fleet) sweep(ctx context.Context, m *member, when string) (int, error) {
	before := map[Ref]bool{}
	for _, r := range f.Owned() {
		before[r] = true
	}
	found, err := m.b.ListManaged(ctx, "")
	if err != nil {
		f.log.Warn("cannot list containers", "daemon", m.name, "when", when, "err", err)
		return 0, err
	}
	removed, others := 0, 0
	next := map[string]bool{}
	m.mu.Lock()
	prev := m.unowned
	m.mu.Unlock()
	for _, c := range found {
		if c.Labels[ganger.LabelOwner] != f.opt.Node {
			others++
			continue
		}
		ref := Ref{Daemon: m.name, Name: c.Name}
		if before[ref] || f.owns(ref) || (f.opt.Keep != nil && f.opt.Keep(c)) || m.providing(c.Labels[ganger.LabelInit]) {
			continue
		}
		if when == "reconcile" && !prev[c.Name] {
			next[c.Name] = true // removed if the next pass finds it unowned still
			continue
		}
		if err := m.b.Remove(ctx, c.ID); err != nil {
			f.log.Warn("cannot remove orphan", "daemon", m.name, "container", c.Name, "err", err)
			continue
		}
		removed++
		if when == "reconcile" {
			f.log.Info("reconcile: removed orphan", "daemon", m.name, "container", c.Name, "service", c.Labels[ganger.LabelService])
		}
	}
	if when == "reconcile" {
		m.mu.Lock()
		m.unowned = next
		m.mu.Unlock()
	}
	f.sched.SetOthers(m.name, others)
	if when != "reconcile" {
		f.log.Info("swept containers of this node", "when", when, "daemon", m.name, "owner", f.opt.Node, "removed", removed)
	}
	return removed, nil
}
