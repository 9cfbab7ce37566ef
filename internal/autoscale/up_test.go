package autoscale

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// Load (queued clients included, over usable hosts only) at scale_up_at
// asks for a host; just under it does not.
func TestUpAtThreshold(t *testing.T) {
	t.Parallel()
	down := busyHost("h9", 0)
	down.Up = false
	drained := busyHost("h8", 0)
	drained.Draining = true
	for _, tc := range []struct {
		name   string
		hosts  []Host
		queued int
		want   Action
		reason string
	}{
		{"under", []Host{busyHost("h1", 13), idleHost("h2", time.Hour)}, 0, ActionNone, "load 0.65 < 0.70"},
		{"at", []Host{busyHost("h1", 14), idleHost("h2", time.Hour)}, 0, ActionUp, "load 0.70 ≥ 0.70 with 0 pending < max_pending 2"},
		{"queued count", []Host{busyHost("h1", 10), idleHost("h2", time.Hour)}, 4, ActionUp, "load 0.70 ≥ 0.70"},
		{"down and draining hosts do not", []Host{busyHost("h1", 7), idleHost("h2", time.Hour), down, drained}, 0, ActionNone, "load 0.35 < 0.70"},
		{"no capacity", nil, 1, ActionUp, "0 hosts + 0 pending < min_hosts 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, accept, accept, nil)
			h.fleet.hosts, h.fleet.queued = tc.hosts, tc.queued
			d := h.step()
			wantAction(t, d, tc.want, tc.reason)
			calls := h.calls("up")
			if tc.want != ActionUp {
				if len(calls) != 0 {
					t.Fatalf("%d up hooks ran; want none", len(calls))
				}
				return
			}
			c, ok := calls[d.RequestID]
			if len(calls) != 1 || !ok {
				t.Fatalf("up hooks %v; want one, for %s", calls, d.RequestID)
			}
			if c.in.Action != ActionUp || c.in.Host != "" || c.in.Reason != d.Reason || c.in.Snapshot.Queued != tc.queued {
				t.Fatalf("hook read %+v", c.in)
			}
			want := []string{"GANGER_ACTION=up", "GANGER_REQUEST_ID=" + d.RequestID}
			if !slices.Equal(c.env, want) {
				t.Fatalf("hook env %q; want %q", c.env, want)
			}
		})
	}
}

// The hook reads the snapshot's figures: used and capacity over usable
// hosts, every host listed.
func TestUpHookSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	off := busyHost("h3", 5)
	off.Up = false
	h.fleet.hosts = []Host{busyHost("h1", 9), busyHost("h2", 6), off}
	h.fleet.queued = 2
	d := h.step()
	got := h.calls("up")[d.RequestID].in.Snapshot
	if got.Used != 15 || got.Capacity != 20 || got.Queued != 2 || len(got.Hosts) != 3 || !got.At.Equal(t0) {
		t.Fatalf("snapshot %+v; want used 15, capacity 20, queued 2, 3 hosts at %v", got, t0)
	}
}

// Under steady load, one up hook per cooldown, and the passes between
// wait saying how long is left.
func TestOneUpPerCooldown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, func(c *Config) { c.MaxPending = 10 })
	h.fleet.hosts = []Host{busyHost("h1", 10), busyHost("h2", 10)}
	var ups []time.Time
	for range 8 * time.Minute / (5 * time.Second) {
		d := h.step()
		switch d.Action {
		case ActionUp:
			ups = append(ups, d.At)
		case ActionWait:
			if !strings.Contains(d.Reason, "but cooldown: ") {
				t.Fatalf("wait %q; want a cooldown", d.Reason)
			}
		default:
			t.Fatalf("decision %+v", d)
		}
		h.clock.Advance(5 * time.Second)
	}
	want := []time.Time{t0, t0.Add(2 * time.Minute), t0.Add(4 * time.Minute), t0.Add(6 * time.Minute)}
	if !slices.Equal(ups, want) {
		t.Fatalf("ups at %v; want %v", ups, want)
	}
	if n := len(h.calls("up")); n != len(want) {
		t.Fatalf("%d up hooks ran; want %d", n, len(want))
	}
}

// A hook that always fails leaves no request pending: one attempt per
// cooldown, each failure kept with its exit status and stderr.
func TestFailingUpHook(t *testing.T) {
	t.Parallel()
	h := newHarness(t, refuse, accept, nil)
	h.fleet.hosts = []Host{busyHost("h1", 10)}
	for range 40 * time.Minute / (5 * time.Second) {
		h.step()
		if n := len(h.s.Status().Pending); n != 0 {
			t.Fatalf("%d pending after a failed hook", n)
		}
		h.clock.Advance(5 * time.Second)
	}
	st := h.s.Status()
	if st.Totals.UpRequested != 20 || st.Totals.UpFailed != 20 || len(h.calls("up")) != 20 {
		t.Fatalf("totals %+v, %d hooks run; want 20 requested and failed", st.Totals, len(h.calls("up")))
	}
	last := st.Hooks[len(st.Hooks)-1]
	if last.ExitCode != 3 || last.Accepted || last.Error != "exit status 3" || last.Stderr != "no quota left\n" {
		t.Fatalf("last hook run %+v", last)
	}
	if len(st.Hooks) != keepRuns {
		t.Fatalf("%d hook runs kept; want %d", len(st.Hooks), keepRuns)
	}
}

// Requests whose hooks are still running count: max_pending holds the
// third back, and stopping kills the hooks, which ends both requests.
func TestMaxPendingWhileHooksRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, block, accept, nil)
	h.fleet.hosts = []Host{busyHost("h1", 10)}
	ctx, cancel := context.WithCancel(t.Context())
	h.ctx = ctx
	for i, want := range []Action{ActionUp, ActionUp, ActionWait, ActionWait} {
		h.s.tick(ctx) // no wait: the hooks block
		d := h.s.Status().Last
		if d.Action != want {
			t.Fatalf("pass %d: %s %q; want %s", i, d.Action, d.Reason, want)
		}
		if want == ActionWait && d.Reason != "load 1.00 ≥ 0.70 but 2 pending at max_pending 2" {
			t.Fatalf("reason %q", d.Reason)
		}
		if n := len(h.s.Status().Pending); n > 2 {
			t.Fatalf("%d pending", n)
		}
		h.clock.Advance(2 * time.Minute)
	}
	cancel()
	h.s.hooks.Wait()
	st := h.s.Status()
	if len(st.Pending) != 0 || st.Totals.UpFailed != 2 || len(st.Hooks) != 2 {
		t.Fatalf("after stop: %+v", st)
	}
	for _, r := range st.Hooks {
		if r.Error != "stopped: process group killed" || r.ExitCode != -1 {
			t.Fatalf("hook run %+v", r)
		}
	}
}

// A registering host settles the oldest request made before it; one made
// after it stays pending.
func TestRegisteredSettles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	h.fleet.hosts = []Host{busyHost("h1", 10)}
	first := h.step()
	h.clock.Advance(2 * time.Minute)
	second := h.step()
	if first.Action != ActionUp || second.Action != ActionUp {
		t.Fatalf("decisions %+v, %+v; want two ups", first, second)
	}
	h.s.Registered("h7", t0.Add(-time.Second)) // before both: not theirs
	if n := len(h.s.Status().Pending); n != 2 {
		t.Fatalf("%d pending; want 2", n)
	}
	h.s.Registered("h7", t0.Add(3*time.Minute))
	h.clock.Advance(time.Minute)
	st := h.s.Status()
	if len(st.Pending) != 1 || st.Pending[0].RequestID != second.RequestID || !st.Pending[0].Accepted {
		t.Fatalf("pending %+v; want %s alone, accepted", st.Pending, second.RequestID)
	}
	if st.Pending[0].AgeSeconds != 60 || st.Totals.UpSettled != 1 {
		t.Fatalf("pending %+v, totals %+v", st.Pending, st.Totals)
	}
}

// A request no host answers expires at provision_timeout, counted, and
// frees its place.
func TestPendingExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, func(c *Config) { c.MaxPending = 1 })
	h.fleet.hosts = []Host{busyHost("h1", 10)}
	first := h.step()
	h.clock.Advance(10*time.Minute - time.Second)
	wantAction(t, h.step(), ActionWait, "1 pending at max_pending 1")
	h.clock.Advance(time.Second)
	d := h.step()
	wantAction(t, d, ActionUp, "load 1.00 ≥ 0.70 with 0 pending")
	st := h.s.Status()
	if st.Totals.UpExpired != 1 || len(st.Pending) != 1 || st.Pending[0].RequestID == first.RequestID {
		t.Fatalf("after expiry: totals %+v, pending %+v", st.Totals, st.Pending)
	}
}

// max_hosts counts every known host and the pending requests.
func TestMaxHosts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, func(c *Config) { c.MaxHosts = 3 })
	off := busyHost("h3", 0)
	off.Up = false
	h.fleet.hosts = []Host{busyHost("h1", 9), busyHost("h2", 9), off}
	wantAction(t, h.step(), ActionWait, "load 0.90 ≥ 0.70 but 3 hosts at max_hosts 3")
	h.fleet.remove("h3")
	wantAction(t, h.step(), ActionUp, "load 0.90 ≥ 0.70 with 0 pending")
	h.clock.Advance(3 * time.Minute) // cooldown passed, request still pending
	h.fleet.set(Host{Name: "h4", Up: true, Capacity: 0, Registered: t0})
	wantAction(t, h.step(), ActionWait, "but 3 hosts + 1 pending at max_hosts 3")
}

// Standby: with no empty host one is asked for, once while it is pending.
func TestStandbyUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	h.fleet.hosts = []Host{busyHost("h1", 2)}
	wantAction(t, h.step(), ActionUp, "0 empty hosts + 0 pending < standby_hosts 1 with 0 pending < max_pending 2")
	h.clock.Advance(5 * time.Minute)
	wantAction(t, h.step(), ActionNone, "load 0.20 < 0.70; 0 empty hosts, standby_hosts 1")
	if n := len(h.calls("up")); n != 1 {
		t.Fatalf("%d up hooks; want 1", n)
	}
}
