package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/clocktest"
	"github.com/ganger-dev/ganger/internal/initproto"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// rig drives a Cluster the way the server will, on a manual clock.
type rig struct {
	t       *testing.T
	clk     *clocktest.Clock
	c       *Cluster
	daemons []string
}

func newRig(t *testing.T, spec Spec) *rig {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "zk"
	}
	clk := clocktest.New(t0)
	c, err := New(spec, clk, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, clk: clk, c: c, daemons: []string{"d1", "d2", "d3"}}
}

// start carries out the starts of Plan and returns them.
func (r *rig) start() []Action {
	r.t.Helper()
	var done []Action
	for _, a := range r.c.Plan(r.daemons) {
		if a.Kind == Stop {
			continue
		}
		info := Info{Daemon: a.Daemon, Container: fmt.Sprintf("c%d", a.Incarnation),
			IP: fmt.Sprintf("10.0.0.%d", a.Incarnation), Ports: map[string]int{"2181": 30000 + int(a.Incarnation)}}
		if err := r.c.MemberStarted(a.Ordinal, a.Incarnation, info); err != nil {
			r.t.Fatalf("start %d: %v", a.Ordinal, err)
		}
		done = append(done, a)
	}
	return done
}

// stop carries out the stops of Plan and returns the ordinals stopped.
func (r *rig) stop() []int {
	r.t.Helper()
	var done []int
	for _, a := range r.c.Plan(r.daemons) {
		if a.Kind != Stop {
			continue
		}
		if err := r.c.MemberDied(a.Ordinal, a.Incarnation); err != nil {
			r.t.Fatalf("stop %d: %v", a.Ordinal, err)
		}
		done = append(done, a.Ordinal)
	}
	return done
}

// advance moves the clock and ticks.
func (r *rig) advance(d time.Duration) {
	r.clk.Advance(d)
	r.c.Tick(r.clk.Now())
}

// inc is the incarnation holding ordinal now.
func (r *rig) inc(ordinal int) int64 {
	return r.c.Members()[ordinal].Incarnation
}

// report sends a report for the current epoch.
func (r *rig) report(ordinal int, state string) {
	r.t.Helper()
	rep := initproto.Report{Epoch: r.c.Epoch(), State: state}
	if err := r.c.MemberReported(ordinal, r.inc(ordinal), rep); err != nil {
		r.t.Fatalf("report %d: %v", ordinal, err)
	}
}

// kill reports ordinal's container dead.
func (r *rig) kill(ordinal int) {
	r.t.Helper()
	if err := r.c.MemberDied(ordinal, r.inc(ordinal)); err != nil {
		r.t.Fatalf("kill %d: %v", ordinal, err)
	}
}

// configure has every released member that has not applied the epoch
// report configured, in ordinal order, until none is left; it returns the
// order in which they went.
func (r *rig) configure() []int {
	r.t.Helper()
	var order []int
	for again := true; again; {
		again = false
		for _, m := range r.c.Members() {
			if m.State != Running || m.Acked >= r.c.Epoch() || !r.c.View(m.Ordinal).Release {
				continue
			}
			r.report(m.Ordinal, StateConfigured)
			order = append(order, m.Ordinal)
			again = true
			break
		}
	}
	return order
}

// up brings a fresh cluster to a configured, settled state.
func (r *rig) up() {
	r.t.Helper()
	r.start()
	r.advance(r.c.spec.Damper)
	for _, m := range r.c.Members() {
		r.report(m.Ordinal, StateWaiting)
	}
	r.configure()
	r.advance(r.c.spec.Damper) // readiness moved the leader: a new epoch
	r.configure()
	if !r.c.settled() {
		r.t.Fatalf("not settled after up: %+v", r.c.Members())
	}
}

func (r *rig) ordinals() []int {
	var out []int
	for _, m := range r.c.Members() {
		out = append(out, m.Ordinal)
	}
	return out
}
