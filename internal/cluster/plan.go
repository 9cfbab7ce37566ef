package cluster

import (
	"cmp"
	"slices"
)

// Kind is what an Action asks of the server.
type Kind int

// The kinds of action.
const (
	Start   Kind = iota // create and start the member's container
	Replace             // remove Old's container, then start the member's
	Stop                // stop and remove the member's container
)

func (k Kind) String() string {
	return [...]string{"start", "replace", "stop"}[k]
}

// Action is one thing the server must do. Plan returns the same actions
// until events change them, so the server keys work in flight by
// (Ordinal, Incarnation) and does each once.
type Action struct {
	Kind        Kind
	Ordinal     int
	Incarnation int64  // the member to start or stop
	Daemon      string // where to start it, or where it runs (Stop)
	Container   string // Stop: the container to remove
	Old         *Old   // Replace: the container to remove first
}

// Load is a daemon and how many of this cluster's members it runs.
type Load struct {
	Daemon  string
	Members int
}

// Spread chooses the daemon with the fewest members, ties broken by name;
// "" when there is none.
func Spread(loads []Load) string {
	if len(loads) == 0 {
		return ""
	}
	return slices.MinFunc(loads, func(a, b Load) int {
		return cmp.Or(cmp.Compare(a.Members, b.Members), cmp.Compare(a.Daemon, b.Daemon))
	}).Daemon
}

// Plan is what the server must do now. daemons are those it may start
// members on; starts are spread over them in ordinal order, counting the
// members running there (a nil list leaves Daemon empty unless pinned).
func (c *Cluster) Plan(daemons []string) []Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	loads := map[string]int{}
	for _, d := range daemons {
		loads[d] = 0
	}
	for _, m := range c.members {
		if _, ok := loads[m.Daemon]; ok && m.State != Pending {
			loads[m.Daemon]++
		}
	}
	var out []Action
	for _, m := range c.members {
		switch {
		case m.State == Pending:
			a := Action{Kind: Start, Ordinal: m.Ordinal, Incarnation: m.Incarnation, Old: m.Old}
			if m.Old != nil {
				a.Kind = Replace
			}
			a.Daemon = place(m.Pin, daemons, loads)
			if a.Daemon != "" {
				loads[a.Daemon]++
			}
			out = append(out, a)
		case m.State == Leaving && m.LeaveEpoch > 0 && c.acked(m.LeaveEpoch):
			out = append(out, Action{Kind: Stop, Ordinal: m.Ordinal, Incarnation: m.Incarnation,
				Daemon: m.Daemon, Container: m.Container})
		}
	}
	return out
}

// place is the pinned daemon if it is offered, else the least loaded.
func place(pin string, daemons []string, loads map[string]int) string {
	if pin != "" && (daemons == nil || slices.Contains(daemons, pin)) {
		return pin
	}
	ls := make([]Load, 0, len(loads))
	for d, n := range loads {
		ls = append(ls, Load{Daemon: d, Members: n})
	}
	return Spread(ls)
}

// acked says whether every staying member runs and reported configured
// for epoch e or later.
func (c *Cluster) acked(e int64) bool {
	for _, m := range c.members {
		if m.State == Leaving {
			continue
		}
		if m.State != Running || m.Acked < e {
			return false
		}
	}
	return true
}

// settled: the view is published, nothing starts or leaves, and every
// member applied the epoch. Only then does the size move by one.
func (c *Cluster) settled() bool {
	if c.dirty || c.pub.epoch == 0 {
		return false
	}
	for _, m := range c.members {
		if m.State != Running {
			return false
		}
	}
	return c.acked(c.pub.epoch)
}

// step moves the membership towards the size wanted.
func (c *Cluster) step() {
	n := len(c.members)
	switch {
	case c.pub.epoch == 0 && !c.dirty && n < c.target:
		// Bootstrap: nothing published and nothing running yet.
		for n < c.target {
			c.add()
			n++
		}
	case n < c.target && c.settled():
		c.add()
	case n > c.target && c.settled():
		c.members[n-1].State = Leaving
		c.changed()
	}
}

// add starts the next ordinal with a new incarnation.
func (c *Cluster) add() {
	c.lastInc++
	c.members = append(c.members, &Member{Ordinal: len(c.members), Incarnation: c.lastInc,
		State: Pending, Since: c.clock.Now()})
}
