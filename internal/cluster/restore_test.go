package cluster

import (
	"testing"
	"time"
)

// saved is what a server stores of r's members, each alive unless dead
// names it.
func (r *rig) saved(dead ...int) []Saved {
	var out []Saved
	for _, m := range r.c.Members() {
		s := Saved{Member: m, Alive: true}
		for _, d := range dead {
			if d == m.Ordinal {
				s.Alive = false
			}
		}
		out = append(out, s)
	}
	return out
}

// A settled cluster taken back whole keeps its epoch, leader, members and
// acknowledgements: nothing to start, no new epoch, every member still
// released at the epoch it applied.
func TestRestoreUntouched(t *testing.T) {
	spec := Spec{Size: 3, MinReady: 3, Damper: 2 * time.Second}
	r := newRig(t, spec)
	r.up()
	epoch, leader := r.c.Epoch(), r.c.View(0).Leader
	spec.Name = "zk"
	c, err := Restore(spec, r.clk, r.c.LastIncarnation(), 3, epoch, leader.Ordinal, r.saved())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Plan(r.daemons); len(got) != 0 {
		t.Fatalf("plan after restore: %+v; want nothing", got)
	}
	if _, due := c.Next(); due {
		t.Fatal("a change is pending after restoring an unchanged cluster")
	}
	v := c.View(1)
	if c.Epoch() != epoch || v.Leader == nil || leader == nil || v.Leader.Ordinal != leader.Ordinal || !v.Release || len(v.Peers) != 3 {
		t.Fatalf("epoch %d (was %d), view %+v", c.Epoch(), epoch, v)
	}
	for i, m := range c.Members() {
		if m.Incarnation != r.inc(i) || m.Acked != epoch || !m.Ready {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	if !c.settled() {
		t.Fatal("not settled")
	}
}

// A member whose container vanished while the server was away is started
// again with a new incarnation above every one given before, and the next
// epoch leaves it out until it runs.
func TestRestoreReplacesTheDead(t *testing.T) {
	spec := Spec{Name: "zk", Size: 3, MinReady: 3, Damper: 2 * time.Second}
	r := newRig(t, spec)
	r.up()
	last, epoch := r.c.LastIncarnation(), r.c.Epoch()
	c, err := Restore(spec, r.clk, last, 3, epoch, 0, r.saved(2))
	if err != nil {
		t.Fatal(err)
	}
	plan := c.Plan(r.daemons)
	if len(plan) != 1 || plan[0].Ordinal != 2 || plan[0].Kind != Start || plan[0].Incarnation != last+1 {
		t.Fatalf("plan %+v; want ordinal 2 started as incarnation %d", plan, last+1)
	}
	r.clk.Advance(spec.Damper)
	c.Tick(r.clk.Now())
	if c.Epoch() != epoch+1 || len(c.View(0).Peers) != 2 {
		t.Fatalf("epoch %d, peers %d; want %d without the dead member", c.Epoch(), len(c.View(0).Peers), epoch+1)
	}
}

// Saved ordinals with a hole are refused: the store is not trusted blindly.
func TestRestoreRefusesHoles(t *testing.T) {
	r := newRig(t, Spec{Size: 3, MinReady: 3, Damper: time.Second})
	r.up()
	s := r.saved()
	if _, err := Restore(Spec{Name: "zk"}, r.clk, 9, 3, 1, 0, []Saved{s[0], s[2]}); err == nil {
		t.Fatal("a hole in the ordinals was accepted")
	}
}

// A leader kept by stickiness (not the lowest ordinal) is the leader
// after a restore too: the same epoch never names two leaders.
func TestRestoreKeepsAStickyLeader(t *testing.T) {
	spec := Spec{Name: "zk", Size: 3, MinReady: 2, Damper: time.Second}
	r := newRig(t, spec)
	r.up()
	r.kill(0)
	r.advance(time.Second)
	r.configure()
	r.start()
	r.advance(time.Second)
	r.report(0, StateWaiting)
	r.configure()
	r.advance(time.Second)
	r.configure()
	l, _ := r.c.Leader()
	if l.Ordinal != 1 || !r.c.settled() {
		t.Fatalf("leader %d, settled %v; want 1, settled", l.Ordinal, r.c.settled())
	}
	c, err := Restore(spec, r.clk, r.c.LastIncarnation(), 3, r.c.Epoch(), 1, r.saved())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Leader(); got.Ordinal != 1 || c.Epoch() != r.c.Epoch() {
		t.Fatalf("leader %d at epoch %d after the restore; want 1 at %d", got.Ordinal, c.Epoch(), r.c.Epoch())
	}
	if _, due := c.Next(); due {
		t.Fatal("a change is pending after restoring an unchanged cluster")
	}
}

// A member waiting for its turn to apply a new epoch still runs what it
// applied: it stays ready, and the leader does not move.
func TestWaitingKeepsReadiness(t *testing.T) {
	r := newRig(t, Spec{Name: "zk", Size: 3, MinReady: 2, Damper: time.Second})
	r.up()
	e := r.c.Epoch()
	r.kill(2)
	r.advance(time.Second)
	if r.c.Epoch() != e+1 {
		t.Fatalf("epoch %d; want %d", r.c.Epoch(), e+1)
	}
	r.report(1, StateWaiting) // member 0 applies first
	if m := r.c.Members()[1]; !m.Ready || !m.Healthy {
		t.Fatalf("member 1 waiting its turn: %+v; want still ready", m)
	}
	r.advance(time.Second)
	if l, _ := r.c.Leader(); l.Ordinal != 0 || r.c.Epoch() != e+1 {
		t.Fatalf("leader %d at epoch %d; want 0 at %d", l.Ordinal, r.c.Epoch(), e+1)
	}
	r.report(1, StateFailed)
	if m := r.c.Members()[1]; m.Ready || m.Healthy {
		t.Fatalf("member 1 failed: %+v; want neither ready nor healthy", m)
	}
}

// A replacement that starts before the view without its predecessor is
// published is not released at the predecessor's epoch, and does not see
// itself as its predecessor: it waits for a view of its own.
func TestReplacementWaitsForItsOwnView(t *testing.T) {
	r := newRig(t, Spec{Name: "redis", Size: 3, MinReady: 2, Damper: time.Second})
	r.up()
	e := r.c.Epoch()
	r.kill(0)
	acts := r.start() // within the damper: the published view still shows the dead one
	v := r.c.View(0)
	if v.Epoch != e || v.Release || v.Self.Incarnation != acts[0].Incarnation {
		t.Fatalf("the replacement's view at the old epoch: release %v, self %+v; want held, itself", v.Release, v.Self)
	}
	r.report(0, StateWaiting)
	r.advance(time.Second)
	if l, _ := r.c.Leader(); l.Ordinal != 1 {
		t.Fatalf("leader %d; want 1 (the replacement is not ready)", l.Ordinal)
	}
	if v := r.c.View(0); !v.Release || v.Epoch != e+1 || v.Self.Incarnation != acts[0].Incarnation {
		t.Fatalf("the replacement's view at its own epoch: %+v", v)
	}
}
