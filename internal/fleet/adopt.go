package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/ganger-dev/ganger"
)

// Adopt takes back a container of this node that an earlier run made to be
// kept (Request.Keep) and left running: an instance, after Ganger
// restarted. It counts against every capacity limit again (even past
// them: it exists), its exit is watched, Destroy removes it, and Close
// leaves it. port is the one Ganger dials to reach it.
func (f *Fleet) Adopt(ctx context.Context, daemon, service string, mc ganger.Managed, port int) (*Container, error) {
	m := f.member(daemon)
	if m == nil {
		return nil, fmt.Errorf("adopt %s: no daemon %s", mc.Name, daemon)
	}
	if mc.Labels[ganger.LabelOwner] != f.opt.Node {
		return nil, fmt.Errorf("adopt %s: it belongs to node %q, not %q", mc.Name, mc.Labels[ganger.LabelOwner], f.opt.Node)
	}
	if c := f.ownedRef(Ref{Daemon: daemon, Name: mc.Name}); c != nil {
		return nil, fmt.Errorf("adopt %s: already owned", mc.Name)
	}
	lease := f.sched.Take(service, daemon)
	c := f.track(m, lease, service, mc.Name)
	c.keep = true
	c.mu.Lock()
	c.id, c.created = mc.ID, true
	c.mu.Unlock()
	close(c.booted)
	m.await(c) // from here its exit is seen
	if !mc.Running() {
		c.died(ganger.Exit{Code: -1, Err: errors.New("container " + mc.State)})
		return c, nil
	}
	addr, err := m.b.Start(ctx, mc.ID, port) // running already: this only looks it up
	if err != nil {
		c.Destroy()
		return nil, fmt.Errorf("adopt %s: %w", mc.Name, err)
	}
	c.mu.Lock()
	c.addr = addr
	c.mu.Unlock()
	return c, nil
}

func (f *Fleet) ownedRef(r Ref) *Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owned[r]
}

// Listed returns this node's containers on the named daemon, as the daemon
// lists them now: what a restarted node looks for its kept containers in.
func (f *Fleet) Listed(ctx context.Context, daemon string) ([]ganger.Managed, error) {
	m := f.member(daemon)
	if m == nil {
		return nil, fmt.Errorf("no daemon %s", daemon)
	}
	return m.b.ListManaged(ctx, f.opt.Node)
}

// ListAll lists every node's Ganger containers on a daemon, from the
// daemon now (not as last reconciled).
func (f *Fleet) ListAll(ctx context.Context, daemon string) ([]ganger.Managed, error) {
	m := f.member(daemon)
	if m == nil {
		return nil, fmt.Errorf("no daemon %s", daemon)
	}
	return m.b.ListManaged(ctx, "")
}

// RemoveOther removes a container that another node made and keeps (an
// instance deleted through this node's API, when several front-ends share
// one store): the daemon removes it, and its own node sees it go. It
// returns once the daemon confirms.
func (f *Fleet) RemoveOther(ctx context.Context, daemon, id string) error {
	m := f.member(daemon)
	if m == nil {
		return fmt.Errorf("no daemon %s", daemon)
	}
	return m.b.Remove(ctx, id)
}
