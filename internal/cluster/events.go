package cluster

import (
	"fmt"
	"maps"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// Report states a member's ganger-init sends.
const (
	StateWaiting    = "waiting"
	StateConfigured = "configured"
	StateFailed     = "failed"
)

// MemberStarted records that the container of a planned start runs.
func (c *Cluster) MemberStarted(ordinal int, inc int64, info Info) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(ordinal, inc)
	if err != nil {
		return err
	}
	if m.State != Pending {
		return fmt.Errorf("cluster %s member %d started while %s: %w", c.spec.Name, ordinal, m.State, ErrState)
	}
	info.Ports = maps.Clone(info.Ports)
	m.Info, m.State, m.Old, m.Since = info, Running, nil, c.clock.Now()
	if c.spec.PinVolumes {
		m.Pin = info.Daemon
	}
	c.changed()
	c.step()
	return nil
}

// MemberReported records what a member's ganger-init said.
func (c *Cluster) MemberReported(ordinal int, inc int64, r initproto.Report) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(ordinal, inc)
	if err != nil {
		return err
	}
	if m.State == Pending {
		return fmt.Errorf("cluster %s member %d reported before it started: %w", c.spec.Name, ordinal, ErrState)
	}
	healthy := r.State == StateWaiting || r.State == StateConfigured
	if m.Healthy && !healthy {
		m.Since = c.clock.Now()
	}
	// A member that waits for its turn to apply a new epoch still runs
	// what it applied before: it stays ready (its dependents' counts and
	// the leader do not dip during a rollout). A failure is not ready.
	ready := r.State == StateConfigured || r.State == StateWaiting && m.Ready
	if ready && r.Epoch > m.Acked {
		m.Acked = r.Epoch
	}
	if ready != m.Ready {
		c.changed() // the leader may move
	}
	m.Healthy, m.Ready = healthy, ready
	c.step()
	return nil
}

// MemberDied records that a member's container is gone (or that its start
// failed). A leaving member is removed; any other is started again.
func (c *Cluster) MemberDied(ordinal int, inc int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(ordinal, inc)
	if err != nil {
		return err
	}
	if m.State == Leaving {
		if ordinal != len(c.members)-1 {
			panic("cluster: a leaving member is not the highest ordinal")
		}
		c.members = c.members[:ordinal]
	} else {
		c.replace(m, nil)
	}
	c.step()
	return nil
}

// ReplaceMember replaces a member at an operator's request: same ordinal,
// new incarnation, its container removed first.
func (c *Cluster) ReplaceMember(ordinal int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ordinal < 0 || ordinal >= len(c.members) {
		return fmt.Errorf("cluster %s member %d: %w", c.spec.Name, ordinal, ErrNoMember)
	}
	m := c.members[ordinal]
	if m.State != Running {
		return fmt.Errorf("cluster %s member %d is %s: %w", c.spec.Name, ordinal, m.State, ErrState)
	}
	c.replace(m, &Old{Incarnation: m.Incarnation, Daemon: m.Daemon, Container: m.Container})
	c.step()
	return nil
}

// replace gives m's ordinal a new incarnation, to be started.
func (c *Cluster) replace(m *Member, old *Old) {
	if m.State == Running {
		c.changed()
	}
	if m.Old != nil && old == nil {
		old = m.Old // a replacement whose start failed: the old one may linger
	}
	c.lastInc++
	*m = Member{Ordinal: m.Ordinal, Incarnation: c.lastInc, State: Pending,
		Since: c.clock.Now(), Pin: m.Pin, Old: old}
}

// Tick publishes a damped change whose time has come and replaces members
// unhealthy for longer than MemberTimeout. The server calls it when the
// Timer fires.
func (c *Cluster) Tick(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty && !now.Before(c.due) {
		c.dirty = false
		c.publish()
	}
	for _, m := range c.members {
		if at, ok := c.timeout(m); ok && !now.Before(at) {
			var old *Old
			if m.State == Running {
				old = &Old{Incarnation: m.Incarnation, Daemon: m.Daemon, Container: m.Container}
			}
			c.replace(m, old)
		}
	}
	c.step()
}

// timeout is when m is replaced unless it turns healthy.
func (c *Cluster) timeout(m *Member) (time.Time, bool) {
	if c.spec.MemberTimeout <= 0 || m.Healthy || m.State == Leaving {
		return time.Time{}, false
	}
	return m.Since.Add(c.spec.MemberTimeout), true
}

// Next is when Tick next has work, if ever.
func (c *Cluster) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	ok := false
	if c.dirty {
		next, ok = c.due, true
	}
	for _, m := range c.members {
		if at, has := c.timeout(m); has && (!ok || at.Before(next)) {
			next, ok = at, true
		}
	}
	return next, ok
}

// Timer is a timer for Next on the cluster's clock; a nil channel (never
// ready) when nothing is due. The server selects on it, calls Tick and
// asks again.
func (c *Cluster) Timer() (<-chan time.Time, func() bool) {
	at, ok := c.Next()
	if !ok {
		return nil, func() bool { return false }
	}
	return c.clock.TimerAt(at)
}
