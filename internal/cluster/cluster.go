package cluster

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// Clock is the time a Cluster keeps: the wall clock, or a test's
// (clocktest.Clock). Same shape as instance.Clock.
type Clock interface {
	Now() time.Time
	// TimerAt returns a channel that receives once the time is when, and
	// a function that stops it.
	TimerAt(when time.Time) (<-chan time.Time, func() bool)
}

// Rollout is the order in which members apply a new epoch.
type Rollout string

// The rollouts.
const (
	Sequential Rollout = "sequential" // one member at a time, by ordinal
	Parallel   Rollout = "parallel"   // all at once
)

// Dep is a cluster this one waits for.
type Dep struct {
	Cluster  string
	MinReady int // its ready members before any of ours is released
}

// Spec is a cluster's configuration.
type Spec struct {
	Name string
	Size int // members at the start
	// MinReady is how many members must be up before any is released.
	// If zero, none is awaited; it never exceeds the current size.
	MinReady  int
	Rollout   Rollout // if empty, Sequential
	Damper    time.Duration
	DependsOn []Dep
	// MemberTimeout is how long a member may be unhealthy before it is
	// replaced. If zero, members are replaced only when they die.
	MemberTimeout time.Duration
	// PinVolumes: each ordinal has a volume on the daemon it last ran on,
	// and its replacement goes there.
	PinVolumes bool
}

// Errors of the event methods; the server logs them and goes on.
var (
	ErrNoMember = errors.New("no such member")
	ErrStale    = errors.New("stale incarnation")
	ErrState    = errors.New("event does not fit the member's state")
)

// State is where a member is in its life.
type State int

// The states.
const (
	Pending State = iota // a start is planned; no container known yet
	Running              // its container started
	Leaving              // scaled away: announced, then stopped
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Running:
		return "running"
	case Leaving:
		return "leaving"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Info is what the server learns when a member's container starts.
type Info struct {
	Daemon    string
	Container string
	IP        string
	Host      string
	Ports     map[string]int
}

// Member is one ordinal's current holder.
type Member struct {
	Ordinal     int
	Incarnation int64
	Info
	State   State
	Healthy bool      // its last report was waiting or configured
	Ready   bool      // its last report was configured
	Acked   int64     // the last epoch it reported configured for
	Since   time.Time // when it started, or last turned unhealthy
	Pin     string    // the daemon its volume lives on, if pinned
	// Old is the container a replacement must remove first (a member
	// replaced for its timeout is still there); nil when it died.
	Old *Old
	// LeaveEpoch is the epoch that announced its leaving; 0 until then.
	LeaveEpoch int64
}

// Old is a container being replaced.
type Old struct {
	Incarnation int64
	Daemon      string
	Container   string
}

// Cluster is one cluster's membership. Its methods are safe to call from
// several goroutines.
type Cluster struct {
	mu      sync.Mutex
	spec    Spec
	clock   Clock
	target  int
	members []*Member // by ordinal, 0..len-1
	lastInc int64
	pub     snapshot // the published view
	dirty   bool     // a change waits for the damper
	due     time.Time
	deps    map[string]initproto.Peers
}

// New returns a cluster with nothing published yet; its Plan starts Size
// members. lastInc is the highest incarnation ever given to this cluster
// (from the store, so a restarted server never reuses one).
func New(spec Spec, clock Clock, lastInc int64) (*Cluster, error) {
	if spec.Size < 0 {
		return nil, fmt.Errorf("cluster %s: size %d", spec.Name, spec.Size)
	}
	if spec.Rollout == "" {
		spec.Rollout = Sequential
	}
	if spec.Rollout != Sequential && spec.Rollout != Parallel {
		return nil, fmt.Errorf("cluster %s: rollout %q", spec.Name, spec.Rollout)
	}
	c := &Cluster{spec: spec, clock: clock, target: spec.Size, lastInc: lastInc,
		deps: map[string]initproto.Peers{}}
	c.pub = c.snapshot()
	c.step()
	return c, nil
}

// Scale sets the desired size; members are added or removed one at a time.
func (c *Cluster) Scale(n int) error {
	if n < 0 {
		return fmt.Errorf("cluster %s: scale to %d", c.spec.Name, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.target = n
	c.step()
	return nil
}

// SetDep records a dependency's current members (the server copies them
// from that cluster's published view).
func (c *Cluster) SetDep(name string, p initproto.Peers) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deps[name] = p
	c.changed()
}

// Members returns a copy of every member, by ordinal.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, len(c.members))
	for i, m := range c.members {
		out[i] = *m
	}
	return out
}

// Damping reports whether a change waits for the damper: the next epoch
// is coming.
func (c *Cluster) Damping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirty
}

// Target is the size wanted.
func (c *Cluster) Target() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target
}

// Spec is the cluster's configuration.
func (c *Cluster) Spec() Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spec
}

// LastIncarnation is the highest incarnation given so far: the server
// stores it so that a restart never reuses one.
func (c *Cluster) LastIncarnation() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastInc
}

// changed starts the damper's countdown unless one runs.
func (c *Cluster) changed() {
	if c.dirty {
		return
	}
	c.dirty = true
	c.due = c.clock.Now().Add(c.spec.Damper)
}

// member returns the holder of ordinal if it is incarnation inc.
func (c *Cluster) member(ordinal int, inc int64) (*Member, error) {
	if ordinal < 0 || ordinal >= len(c.members) {
		return nil, fmt.Errorf("cluster %s member %d: %w", c.spec.Name, ordinal, ErrNoMember)
	}
	m := c.members[ordinal]
	if m.Incarnation != inc {
		return nil, fmt.Errorf("cluster %s member %d incarnation %d (now %d): %w",
			c.spec.Name, ordinal, inc, m.Incarnation, ErrStale)
	}
	return m, nil
}
