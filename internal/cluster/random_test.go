package cluster

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRandomLifeKeepsInvariants kills, restarts, reports and scales at
// random and checks after every step: ordinals are 0..n-1, no incarnation
// is given twice, epochs never go back, and an epoch has one leader.
func TestRandomLifeKeepsInvariants(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := spec3()
		s.MinReady = 2
		r := newRig(t, s)
		r.daemons = []string{"d1", "d2", "d3", "d4", "d5"}
		leaders, incs := map[int64]int{}, map[int64]int{}
		var epoch int64
		for step := range 300 {
			n := len(r.c.Members())
			switch k := rng.IntN(10); {
			case k < 3:
				r.start()
			case k < 4 && n > 0:
				if m := r.c.Members()[rng.IntN(n)]; m.State != Pending {
					r.kill(m.Ordinal)
				}
			case k < 6 && n > 0:
				if m := r.c.Members()[rng.IntN(n)]; m.State != Pending {
					r.report(m.Ordinal, []string{StateWaiting, StateConfigured, StateFailed}[rng.IntN(3)])
				}
			case k < 7:
				r.configure()
				r.stop()
			case k < 8 && rng.IntN(5) == 0:
				_ = r.c.Scale(1 + rng.IntN(5))
			default:
				r.advance(time.Duration(rng.IntN(1500)) * time.Millisecond)
			}
			ms := r.c.Members()
			for i, m := range ms {
				if m.Ordinal != i {
					t.Fatalf("seed %d step %d: ordinal %d at %d", seed, step, m.Ordinal, i)
				}
				if o, ok := incs[m.Incarnation]; ok && o != m.Ordinal {
					t.Fatalf("seed %d step %d: incarnation %d on ordinals %d and %d", seed, step, m.Incarnation, o, m.Ordinal)
				}
				incs[m.Incarnation] = m.Ordinal
			}
			e := r.c.Epoch()
			if e < epoch {
				t.Fatalf("seed %d step %d: epoch went back %d → %d", seed, step, epoch, e)
			}
			epoch = e
			if l, ok := r.c.Leader(); ok {
				if o, seen := leaders[e]; seen && o != l.Ordinal {
					t.Fatalf("seed %d step %d: epoch %d led by %d and %d", seed, step, e, o, l.Ordinal)
				}
				leaders[e] = l.Ordinal
			}
		}
	}
}

func TestLeavingMemberDiesBeforeItsAnnouncement(t *testing.T) {
	t.Parallel()
	s := spec3()
	s.Size = 4
	r := newRig(t, s)
	r.daemons = []string{"d1", "d2", "d3", "d4"}
	r.up()
	_ = r.c.Scale(3)
	if m := r.c.Members()[3]; m.State != Leaving {
		t.Fatalf("member 3 is %s; want leaving", m.State)
	}
	r.kill(3)
	_ = r.c.View(0) // the published view still names 3
	r.advance(time.Second)
	if got := len(r.c.View(0).Peers); got != 3 {
		t.Fatalf("got %d peers; want 3", got)
	}
	if a := r.c.Plan(r.daemons); len(a) != 0 {
		t.Fatalf("got %+v; want nothing", a)
	}
}
