package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ganger-dev/ganger/internal/initproto"
)

// snapshot is a view as published at one epoch.
type snapshot struct {
	epoch  int64
	peers  []initproto.Member // running, non-leaving members by ordinal
	leader int                // ordinal, or -1
	deps   map[string]initproto.Peers
	key    string // what decides whether a change is a new epoch
}

// snapshot builds the view of the members now (epoch left unset).
//
// The leader is the published leader while it is still the same member
// and ready: leadership is sticky, so a lower ordinal coming back (a
// replaced member, fresh and possibly without the data) does not take it
// over. Otherwise it is the lowest-ordinal ready member.
func (c *Cluster) snapshot() snapshot {
	s := snapshot{leader: -1, deps: maps.Clone(c.deps)}
	keep := -1
	if old := c.pub.peer(c.pub.leader); old != nil {
		if m := c.holder(*old); m != nil && m.State == Running && m.Ready {
			keep = old.Ordinal
		}
	}
	for _, m := range c.members {
		if m.State != Running {
			continue
		}
		p := initproto.Member{Ordinal: m.Ordinal, Incarnation: m.Incarnation,
			Name: fmt.Sprintf("%s-%d", c.spec.Name, m.Ordinal), IP: m.IP, Host: m.Host,
			Ports: maps.Clone(m.Ports), Ready: m.Ready}
		s.peers = append(s.peers, p)
	}
	for i := range s.peers {
		p := &s.peers[i]
		if keep >= 0 && p.Ordinal == keep || keep < 0 && p.Ready && s.leader < 0 {
			s.leader, p.Leader = p.Ordinal, true
			break
		}
	}
	s.key = s.fingerprint()
	return s
}

// fingerprint is everything a member renders from, bar readiness.
func (s snapshot) fingerprint() string {
	var b strings.Builder
	for _, p := range s.peers {
		fmt.Fprintf(&b, "%d/%d/%s/%s", p.Ordinal, p.Incarnation, p.IP, p.Host)
		for _, k := range slices.Sorted(maps.Keys(p.Ports)) {
			fmt.Fprintf(&b, ",%s=%d", k, p.Ports[k])
		}
		b.WriteByte(';')
	}
	fmt.Fprintf(&b, "leader=%d;", s.leader)
	for _, k := range slices.Sorted(maps.Keys(s.deps)) {
		fmt.Fprintf(&b, "dep %s@%d/%d;", k, s.deps[k].Epoch, s.deps[k].Ready)
	}
	return b.String()
}

// publish makes the view now the published one, with a new epoch if it
// differs, and dates the announcement of leaving members.
func (c *Cluster) publish() {
	s := c.snapshot()
	if s.key != c.pub.key {
		s.epoch = c.pub.epoch + 1
		c.pub = s
	}
	for _, m := range c.members {
		if m.State == Leaving && m.LeaveEpoch == 0 && c.pub.epoch > 0 {
			m.LeaveEpoch = c.pub.epoch
		}
	}
}

// Epoch is the published epoch; 0 before the first.
func (c *Cluster) Epoch() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub.epoch
}

// Leader is the published epoch's leader, if it has one.
func (c *Cluster) Leader() (initproto.Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pub.peer(c.pub.leader); p != nil {
		return *p, true
	}
	return initproto.Member{}, false
}

// peer is the published member with ordinal, or nil.
func (s *snapshot) peer(ordinal int) *initproto.Member {
	for i := range s.peers {
		if s.peers[i].Ordinal == ordinal {
			return &s.peers[i]
		}
	}
	return nil
}

// View is the published view as the member with ordinal sees it. A
// member not (or no longer) among the peers gets itself as Self from
// what is known of it now.
func (c *Cluster) View(ordinal int) initproto.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := initproto.View{Cluster: c.spec.Name, Epoch: c.pub.epoch, MinReady: c.minReady(),
		Peers: make([]initproto.Member, len(c.pub.peers))}
	for i, p := range c.pub.peers {
		p.Ports = maps.Clone(p.Ports)
		v.Peers[i] = p
		if p.Leader {
			v.Leader = &v.Peers[i]
		}
	}
	if len(c.spec.DependsOn) > 0 {
		v.Deps, v.DepMinReady = map[string]initproto.Peers{}, map[string]int{}
		for _, d := range c.spec.DependsOn {
			v.Deps[d.Cluster] = c.pub.deps[d.Cluster]
			v.DepMinReady[d.Cluster] = d.MinReady
		}
	}
	if p := c.pub.peer(ordinal); p != nil && c.holder(*p) != nil {
		v.Self = *p
	} else if ordinal >= 0 && ordinal < len(c.members) {
		// Not (or no longer) among the peers, or a new incarnation of
		// the ordinal the published view still shows: itself as it is.
		m := c.members[ordinal]
		v.Self = initproto.Member{Ordinal: ordinal, Incarnation: m.Incarnation,
			Name: fmt.Sprintf("%s-%d", c.spec.Name, ordinal), IP: m.IP, Host: m.Host,
			Ports: maps.Clone(m.Ports), Ready: m.Ready}
	}
	v.Release = c.released(ordinal)
	return v
}

// minReady is MinReady capped at the size wanted.
func (c *Cluster) minReady() int {
	return min(c.spec.MinReady, c.target)
}

// released says whether the member with ordinal may apply the published
// epoch now.
func (c *Cluster) released(ordinal int) bool {
	if ordinal < 0 || ordinal >= len(c.members) {
		return false
	}
	if c.members[ordinal].State == Leaving {
		return c.members[ordinal].LeaveEpoch > 0 // it learns it leaves
	}
	// Only the incarnation the published view shows may apply it: a
	// replacement waits for a view of its own.
	if p := c.pub.peer(ordinal); p == nil || c.holder(*p) == nil || !c.gate() {
		return false
	}
	if c.spec.Rollout == Parallel {
		return true
	}
	for _, p := range c.pub.peers {
		if p.Ordinal >= ordinal {
			break
		}
		if m := c.holder(p); m != nil && m.Healthy && m.Acked < c.pub.epoch {
			return false
		}
	}
	return true
}

// gate says whether enough members are up and every dependency is ready.
func (c *Cluster) gate() bool {
	up := 0
	for _, p := range c.pub.peers {
		if m := c.holder(p); m != nil && m.Healthy {
			up++
		}
	}
	if up < c.minReady() {
		return false
	}
	for _, d := range c.spec.DependsOn {
		// The published view's: what the member renders from.
		if c.pub.deps[d.Cluster].Ready < d.MinReady {
			return false
		}
	}
	return true
}

// holder is the member a published peer still is, or nil if it was
// replaced or removed since.
func (c *Cluster) holder(p initproto.Member) *Member {
	if p.Ordinal >= len(c.members) || c.members[p.Ordinal].Incarnation != p.Incarnation {
		return nil
	}
	return c.members[p.Ordinal]
}
