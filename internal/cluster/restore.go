package cluster

import (
	"fmt"
	"maps"
	"slices"
)

// Saved is a member as a server stores it, to take it back after a
// restart (see Restore).
type Saved struct {
	Member
	// Alive: its container was found running when the server came back.
	// A member not alive is started again (same ordinal, new incarnation).
	Alive bool
}

// Restore returns a cluster as it was: the members (by ordinal, each with
// its incarnation, addresses, readiness and acknowledgements), the size
// wanted and the published epoch, whose view is rebuilt from the members
// that are alive, and the leader it had (-1: none). A member that is not alive is replaced at once; one
// that was pending (its start was under way) likewise. Nothing is
// published again unless something changed: members that come back to
// the same view see the same epoch.
func Restore(spec Spec, clock Clock, lastInc int64, size int, epoch int64, leader int, saved []Saved) (*Cluster, error) {
	c, err := New(Spec{Name: spec.Name, Rollout: spec.Rollout}, clock, lastInc)
	if err != nil {
		return nil, err
	}
	c.spec = spec
	if c.spec.Rollout == "" {
		c.spec.Rollout = Sequential
	}
	c.target = size
	saved = slices.Clone(saved)
	slices.SortFunc(saved, func(a, b Saved) int { return a.Ordinal - b.Ordinal })
	for i, s := range saved {
		if s.Ordinal != i {
			return nil, fmt.Errorf("cluster %s: saved ordinals are not 0..%d (found %d at %d)", spec.Name, len(saved)-1, s.Ordinal, i)
		}
		if s.Incarnation > c.lastInc {
			c.lastInc = s.Incarnation
		}
		m := s.Member
		m.Ports = maps.Clone(m.Ports)
		m.Old = nil
		m.Since = clock.Now()
		if m.State == Pending {
			m.State = Running // taken back below as dead
			s.Alive = false
		}
		c.members = append(c.members, &m)
	}
	// The published view as it was: the running members, with the
	// readiness they had (the leader is recomputed from it).
	c.pub = c.snapshot()
	c.pub.epoch = epoch
	if p := c.pub.peer(leader); p != nil && p.Ready && leader != c.pub.leader {
		// The published leader, kept by stickiness, was not the lowest.
		if old := c.pub.peer(c.pub.leader); old != nil {
			old.Leader = false
		}
		p.Leader, c.pub.leader = true, leader
		c.pub.key = c.pub.fingerprint()
	}
	for i, s := range saved {
		m := c.members[i]
		if !s.Alive {
			if m.State == Leaving {
				c.members = c.members[:i] // stopped already, or about to be: gone
				break
			}
			c.replace(m, nil)
		}
	}
	if c.pub.key != c.snapshot().key {
		c.changed()
	}
	c.step()
	return c, nil
}
