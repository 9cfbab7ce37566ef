package cluster

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/initproto"
)

func spec3() Spec {
	return Spec{Size: 3, MinReady: 3, Damper: time.Second, MemberTimeout: 30 * time.Second}
}

func TestBootstrapStartsAllSpreadWithUniqueIncarnations(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	acts := r.start()
	if len(acts) != 3 {
		t.Fatalf("got %d starts; want 3", len(acts))
	}
	daemons, incs := map[string]bool{}, map[int64]bool{}
	for i, a := range acts {
		if a.Kind != Start || a.Ordinal != i {
			t.Fatalf("action %d: got %v ordinal %d; want start %d", i, a.Kind, a.Ordinal, i)
		}
		daemons[a.Daemon], incs[a.Incarnation] = true, true
	}
	if len(daemons) != 3 || len(incs) != 3 {
		t.Fatalf("got daemons %v incarnations %v; want 3 distinct each", daemons, incs)
	}
	if got := r.c.Epoch(); got != 0 {
		t.Fatalf("epoch before the damper: got %d; want 0", got)
	}
	r.advance(time.Second)
	if got := r.c.Epoch(); got != 1 {
		t.Fatalf("epoch after the damper: got %d; want 1", got)
	}
	if v := r.c.View(0); len(v.Peers) != 3 || v.Release || v.Leader != nil {
		t.Fatalf("view 0: got %d peers, release %v, leader %v; want 3, false, none", len(v.Peers), v.Release, v.Leader)
	}
}

func TestMinReadyGatesRelease(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.start()
	r.advance(time.Second)
	r.report(0, StateWaiting)
	r.report(1, StateWaiting)
	if r.c.View(0).Release {
		t.Fatal("released with 2 of 3 up")
	}
	r.report(2, StateWaiting)
	if !r.c.View(0).Release {
		t.Fatal("not released with 3 of 3 up")
	}
}

func TestDependencyGatesRelease(t *testing.T) {
	t.Parallel()
	s := spec3()
	s.MinReady, s.DependsOn = 0, []Dep{{Cluster: "other", MinReady: 3}}
	r := newRig(t, s)
	r.start()
	r.advance(time.Second)
	r.report(0, StateWaiting)
	r.c.SetDep("other", initproto.Peers{Epoch: 4, Ready: 2})
	r.advance(time.Second)
	if v := r.c.View(0); v.Release || v.Deps["other"].Ready != 2 || v.DepMinReady["other"] != 3 {
		t.Fatalf("got release %v deps %+v min %v; want held with other at 2 of 3", v.Release, v.Deps, v.DepMinReady)
	}
	r.c.SetDep("other", initproto.Peers{Epoch: 5, Ready: 3, Peers: []initproto.Member{{Ordinal: 0}, {Ordinal: 1}, {Ordinal: 2}}})
	// Not before the view that shows the dependency ready is published:
	// the member renders from that view.
	if v := r.c.View(0); v.Release {
		t.Fatalf("released before the dependency's readiness was published: deps %+v", v.Deps)
	}
	r.advance(time.Second)
	if v := r.c.View(0); !v.Release || len(v.Deps["other"].Peers) != 3 {
		t.Fatalf("release %v, deps %+v: want released with the dependency's 3 peers", v.Release, v.Deps)
	}
}

func TestSequentialReleaseOrder(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.start()
	r.advance(time.Second)
	for o := range 3 {
		r.report(o, StateWaiting)
	}
	steps := []struct {
		configured int    // reports configured before the check; -1 none
		want       []bool // Release of 0, 1, 2
	}{
		{-1, []bool{true, false, false}},
		{0, []bool{true, true, false}},
		{1, []bool{true, true, true}},
	}
	for i, s := range steps {
		if s.configured >= 0 {
			r.report(s.configured, StateConfigured)
		}
		for o, want := range s.want {
			if got := r.c.View(o).Release; got != want {
				t.Fatalf("step %d member %d: got release %v; want %v", i, o, got, want)
			}
		}
	}
}

func TestSequentialSkipsAFailedMember(t *testing.T) {
	t.Parallel()
	s := spec3()
	s.MinReady = 2
	r := newRig(t, s)
	r.start()
	r.advance(time.Second)
	for o := range 3 {
		r.report(o, StateWaiting)
	}
	r.report(0, StateFailed)
	if !r.c.View(1).Release || r.c.View(2).Release {
		t.Fatal("want 1 released past failed 0, and 2 held")
	}
}

func TestParallelReleasesAll(t *testing.T) {
	t.Parallel()
	s := spec3()
	s.Rollout = Parallel
	r := newRig(t, s)
	r.start()
	r.advance(time.Second)
	for o := range 3 {
		r.report(o, StateWaiting)
	}
	for o := range 3 {
		if !r.c.View(o).Release {
			t.Fatalf("member %d held under parallel rollout", o)
		}
	}
}

func TestUpConfiguresInOrderAndElectsLowest(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.start()
	r.advance(time.Second)
	for o := range 3 {
		r.report(o, StateWaiting)
	}
	if got := r.configure(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("configure order: got %v; want [0 1 2]", got)
	}
	r.advance(time.Second)
	l, ok := r.c.Leader()
	if !ok || l.Ordinal != 0 || r.c.Epoch() != 2 {
		t.Fatalf("got leader %v (%v) epoch %d; want 0 at epoch 2", l.Ordinal, ok, r.c.Epoch())
	}
	if v := r.c.View(2); v.Leader == nil || v.Leader.Ordinal != 0 || !v.Peers[0].Leader || v.Peers[1].Leader {
		t.Fatalf("view 2 leader: got %+v", v.Leader)
	}
}

func TestDamperCoalescesABurst(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.up()
	e := r.c.Epoch()
	// Five changes within a second: 2 dies, 2 restarts, 1 dies, 1
	// restarts, 0 turns unready (the leader moves).
	changes := []func(){
		func() { r.kill(2) },
		func() { r.start() },
		func() { r.kill(1) },
		func() { r.start() },
		func() { r.report(0, StateWaiting) },
	}
	for _, ch := range changes {
		ch()
		r.advance(150 * time.Millisecond)
		if got := r.c.Epoch(); got != e {
			t.Fatalf("epoch moved within the damper: got %d; want %d", got, e)
		}
	}
	r.advance(250 * time.Millisecond)
	if got := r.c.Epoch(); got != e+1 {
		t.Fatalf("after the burst: got epoch %d; want %d", got, e+1)
	}
	r.advance(5 * time.Second)
	if got := r.c.Epoch(); got != e+1 {
		t.Fatalf("no change since: got epoch %d; want %d", got, e+1)
	}
}

func TestDamperIgnoresAChangeThatCameBack(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.up()
	e := r.c.Epoch()
	r.report(0, StateWaiting) // the leader flaps...
	r.report(0, StateConfigured)
	r.report(2, StateWaiting) // ...and a non-leader's readiness is no epoch
	r.advance(time.Second)
	if got := r.c.Epoch(); got != e {
		t.Fatalf("got epoch %d; want %d", got, e)
	}
}

func TestLeaderIsLowestReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		ready []int // members that report configured; the rest waiting
		want  int   // -1: none
	}{
		{"none", nil, -1},
		{"all", []int{0, 1, 2}, 0},
		{"not the first", []int{1, 2}, 1},
		{"only the last", []int{2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := spec3()
			s.Rollout = Parallel
			r := newRig(t, s)
			r.start()
			r.advance(time.Second)
			for o := range 3 {
				r.report(o, StateWaiting)
			}
			for _, o := range tt.ready {
				r.report(o, StateConfigured)
			}
			r.advance(time.Second)
			l, ok := r.c.Leader()
			if got := map[bool]int{true: l.Ordinal, false: -1}[ok]; got != tt.want {
				t.Fatalf("got leader %d; want %d", got, tt.want)
			}
		})
	}
}

func TestLeaderMovesWhenItDies(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.up()
	e := r.c.Epoch()
	r.kill(0)
	r.advance(time.Second)
	l, ok := r.c.Leader()
	if !ok || l.Ordinal != 1 || r.c.Epoch() <= e {
		t.Fatalf("got leader %d (%v) at epoch %d; want 1 past epoch %d", l.Ordinal, ok, r.c.Epoch(), e)
	}
	// The replacement comes back as ordinal 0; ready, it does not take
	// the lead back (it may lack what the leader has): leadership is
	// sticky while its holder is ready.
	acts := r.start()
	if len(acts) != 1 || acts[0].Ordinal != 0 || acts[0].Kind != Start {
		t.Fatalf("got %+v; want a start of ordinal 0", acts)
	}
	r.advance(time.Second)
	r.report(0, StateWaiting)
	r.configure()
	r.advance(time.Second)
	r.configure()
	if l, _ := r.c.Leader(); l.Ordinal != 1 {
		t.Fatalf("got leader %d/%d; want 1 to keep the lead", l.Ordinal, l.Incarnation)
	}
	// Once the leader fails, the lowest-ordinal ready member leads: 0.
	r.report(1, StateFailed)
	r.advance(time.Second)
	if l, _ := r.c.Leader(); l.Ordinal != 0 || l.Incarnation != acts[0].Incarnation {
		t.Fatalf("got leader %d/%d; want 0/%d", l.Ordinal, l.Incarnation, acts[0].Incarnation)
	}
}

func TestOrdinalsStableIncarnationsUnique(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.up()
	seen := map[int64]bool{}
	for _, m := range r.c.Members() {
		seen[m.Incarnation] = true
	}
	for i, o := range []int{1, 1, 0, 2, 1, 0} {
		old := r.inc(o)
		r.kill(o)
		if i%2 == 0 {
			r.advance(100 * time.Millisecond)
		}
		acts := r.start()
		if len(acts) != 1 || acts[0].Ordinal != o {
			t.Fatalf("kill %d: got %+v; want one start of ordinal %d", o, acts, o)
		}
		if inc := acts[0].Incarnation; seen[inc] || inc <= old {
			t.Fatalf("kill %d: incarnation %d reused or not past %d", o, inc, old)
		}
		seen[acts[0].Incarnation] = true
		if got := r.ordinals(); !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("ordinals: got %v; want [0 1 2]", got)
		}
	}
	if got := r.c.LastIncarnation(); got != int64(len(seen)) {
		t.Fatalf("last incarnation: got %d; want %d", got, len(seen))
	}
}

func TestNewNeverReusesStoredIncarnations(t *testing.T) {
	t.Parallel()
	c, err := New(spec3(), newRig(t, spec3()).clk, 41)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Plan(nil); a[0].Incarnation != 42 {
		t.Fatalf("got incarnation %d; want 42", a[0].Incarnation)
	}
}

func TestScaleUpOneAtATime(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.up()
	if err := r.c.Scale(5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{3, 4} {
		acts := r.start()
		if len(acts) != 1 || acts[0].Ordinal != want {
			t.Fatalf("got %+v; want one start of ordinal %d", acts, want)
		}
		if extra := r.c.Plan(r.daemons); len(extra) != 0 {
			t.Fatalf("more planned before the view: %+v", extra)
		}
		r.advance(time.Second)
		if v := r.c.View(0); len(v.Peers) != want+1 {
			t.Fatalf("view has %d peers; want %d", len(v.Peers), want+1)
		}
		r.report(want, StateWaiting)
		// All but the newest acknowledged: still nothing more.
		for o := range want {
			r.report(o, StateConfigured)
		}
		if extra := r.c.Plan(r.daemons); len(extra) != 0 {
			t.Fatalf("planned before every member acknowledged: %+v", extra)
		}
		r.report(want, StateConfigured)
		r.advance(time.Second) // a readiness change; the leader stays
	}
	if got := r.ordinals(); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("got %v; want [0 1 2 3 4]", got)
	}
	if a := r.c.Plan(r.daemons); len(a) != 0 {
		t.Fatalf("got %+v; want nothing at size", a)
	}
}

func TestScaleDownAnnouncesThenStopsHighest(t *testing.T) {
	t.Parallel()
	s := spec3()
	s.Size = 5
	r := newRig(t, s)
	r.daemons = []string{"d1", "d2", "d3", "d4", "d5"}
	r.up()
	if err := r.c.Scale(3); err != nil {
		t.Fatal(err)
	}
	for _, leaving := range []int{4, 3} {
		e := r.c.Epoch()
		if got := r.stop(); len(got) != 0 {
			t.Fatalf("stopped %v before the announcement", got)
		}
		r.advance(time.Second)
		if r.c.Epoch() != e+1 {
			t.Fatalf("no announcement epoch")
		}
		v := r.c.View(0)
		if len(v.Peers) != leaving || v.Peers[len(v.Peers)-1].Ordinal != leaving-1 {
			t.Fatalf("announced view: got %d peers; want 0..%d", len(v.Peers), leaving-1)
		}
		if lv := r.c.View(leaving); lv.Self.Ordinal != leaving || !lv.Release {
			t.Fatalf("leaving member's view: self %d release %v", lv.Self.Ordinal, lv.Release)
		}
		for o := range leaving - 1 {
			r.report(o, StateConfigured)
			if got := r.stop(); len(got) != 0 {
				t.Fatalf("stopped %v with member %d not acknowledged", got, leaving-1)
			}
		}
		r.report(leaving-1, StateConfigured)
		if got := r.stop(); !slices.Equal(got, []int{leaving}) {
			t.Fatalf("got stops %v; want [%d]", got, leaving)
		}
	}
	if got := r.ordinals(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("got %v; want [0 1 2]", got)
	}
	if a := r.c.Plan(r.daemons); len(a) != 0 {
		t.Fatalf("got %+v; want nothing at size", a)
	}
}

func TestMemberTimeoutReplaces(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.up()
	r.report(1, StateFailed)
	failed := r.clk.Now()
	old := r.c.Members()[1]
	r.advance(time.Second) // the damper for 1's readiness
	next, ok := r.c.Next()
	if want := failed.Add(30 * time.Second); !ok || !next.Equal(want) {
		t.Fatalf("next: got %v %v; want %v", next, ok, want)
	}
	r.advance(28 * time.Second)
	if a := r.c.Plan(r.daemons); len(a) != 0 {
		t.Fatalf("replaced early: %+v", a)
	}
	r.advance(time.Second)
	acts := r.c.Plan(r.daemons)
	if len(acts) != 1 {
		t.Fatalf("got %+v; want one replacement", acts)
	}
	a := acts[0]
	if a.Kind != Replace || a.Ordinal != 1 || a.Incarnation <= old.Incarnation ||
		a.Old == nil || a.Old.Container != old.Container || a.Old.Incarnation != old.Incarnation {
		t.Fatalf("got %+v (old %+v); want replace of ordinal 1 removing %s", a, a.Old, old.Container)
	}
	if err := r.c.MemberReported(1, old.Incarnation, initproto.Report{State: StateConfigured}); !errors.Is(err, ErrStale) {
		t.Fatalf("report from the old incarnation: got %v; want ErrStale", err)
	}
}

func TestTimeoutOfAMemberThatNeverReports(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	r.start()
	r.advance(time.Second)
	r.report(0, StateWaiting)
	r.report(1, StateWaiting)
	r.advance(29 * time.Second)
	acts := r.c.Plan(r.daemons)
	if len(acts) != 1 || acts[0].Kind != Replace || acts[0].Ordinal != 2 {
		t.Fatalf("got %+v; want ordinal 2 replaced", acts)
	}
}

func TestTimerFiresForTheDamper(t *testing.T) {
	t.Parallel()
	s := spec3()
	s.MemberTimeout = 0
	r := newRig(t, s)
	if ch, _ := r.c.Timer(); ch != nil {
		t.Fatal("a timer with nothing due")
	}
	r.start()
	ch, stop := r.c.Timer()
	defer stop()
	r.clk.Advance(time.Second)
	select {
	case now := <-ch:
		r.c.Tick(now)
	default:
		t.Fatal("timer did not fire at the damper")
	}
	if r.c.Epoch() != 1 {
		t.Fatalf("got epoch %d; want 1", r.c.Epoch())
	}
}

func TestSpread(t *testing.T) {
	t.Parallel()
	tests := []struct {
		loads []Load
		want  string
	}{
		{nil, ""},
		{[]Load{{"d2", 0}, {"d1", 0}}, "d1"},
		{[]Load{{"d1", 1}, {"d2", 0}, {"d3", 1}}, "d2"},
		{[]Load{{"d1", 2}, {"d2", 1}, {"d3", 1}}, "d2"},
	}
	for _, tt := range tests {
		if got := Spread(tt.loads); got != tt.want {
			t.Errorf("Spread(%v): got %q; want %q", tt.loads, got, tt.want)
		}
	}
}

func TestPlacement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pin     bool
		daemons []string
		want    string // daemon of ordinal 1's replacement (it ran on d2)
	}{
		{"pinned to its volume", true, []string{"d1", "d2", "d3", "d4"}, "d2"},
		{"pinned daemon gone", true, []string{"d1", "d3", "d4"}, "d4"},
		{"not pinned: the emptiest", false, []string{"d1", "d2", "d3", "d4"}, "d2"},
		{"more members than daemons: ties by name", false, []string{"d3", "d1"}, "d1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := spec3()
			s.PinVolumes = tt.pin
			r := newRig(t, s)
			r.up() // 0 on d1, 1 on d2, 2 on d3
			r.kill(1)
			r.daemons = tt.daemons
			if a := r.c.Plan(r.daemons); len(a) != 1 || a[0].Daemon != tt.want {
				t.Fatalf("got %+v; want ordinal 1 on %s", a, tt.want)
			}
		})
	}
}

func TestEventErrors(t *testing.T) {
	t.Parallel()
	r := newRig(t, spec3())
	acts := r.c.Plan(nil)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"no member", r.c.MemberDied(7, 1), ErrNoMember},
		{"stale", r.c.MemberStarted(0, 99, Info{}), ErrStale},
		{"report before start", r.c.MemberReported(0, acts[0].Incarnation, initproto.Report{}), ErrState},
		{"replace a pending member", r.c.ReplaceMember(0), ErrState},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: got %v; want %v", tt.name, tt.err, tt.want)
		}
	}
	if _, err := New(Spec{Rollout: "random"}, r.clk, 0); err == nil {
		t.Error("rollout random accepted")
	}
}
