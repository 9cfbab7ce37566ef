package autoscale

import (
	"slices"
	"testing"
	"time"
)

// down1 is a fleet where h3 may go: h1 works, h2 and h3 are empty.
func down1(h *harness) {
	h.fleet.hosts = []Host{busyHost("h1", 3), idleHost("h2", 2*time.Hour), idleHost("h3", 3*time.Hour)}
}

// From idle to gone: drain, then at the next pass the hook, then the host
// leaves the fleet; the hosts kept are the standby and the static one.
func TestDownToStandby(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	h.fleet.hosts = []Host{busyHost("h1", 3), idleHost("h2", 2*time.Hour), idleHost("h3", 3*time.Hour), idleHost("h4", 4*time.Hour)}
	var gone []string
	for range 20 * time.Minute / (5 * time.Second) {
		d := h.step()
		if d.Action == ActionDown && d.Reason == d.Host+" drained and idle: down hook started" {
			h.fleet.remove(d.Host) // the hook removed it
			gone = append(gone, d.Host)
		}
		if d.Action == ActionUp {
			t.Fatalf("up: %q", d.Reason)
		}
		h.clock.Advance(5 * time.Second)
	}
	if want := []string{"h4", "h3"}; !slices.Equal(gone, want) {
		t.Fatalf("removed %v; want %v (oldest first)", gone, want)
	}
	wantAction(t, h.step(), ActionNone, "load 0.15 < 0.70; 1 empty hosts, standby_hosts 1")
	calls := h.calls("down")
	if len(calls) != 2 {
		t.Fatalf("%d down hooks; want 2", len(calls))
	}
	for id, c := range calls {
		want := []string{"GANGER_ACTION=down", "GANGER_HOST=" + c.in.Host, "GANGER_REQUEST_ID=" + id}
		if c.in.Action != ActionDown || !slices.Equal(c.env, want) {
			t.Fatalf("down hook read %+v with env %q", c.in, c.env)
		}
	}
	if st := h.s.Status(); st.Totals.Removed != 2 || st.Totals.DownHooks != 2 || st.Removing != nil {
		t.Fatalf("status %+v", st)
	}
}

// The steps of one removal, as Status tells them.
func TestDownSteps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	down1(h)
	d := h.step()
	wantAction(t, d, ActionDown, "drain h3 idle 1h0m0s, age 3h0m0s; load 0.10 → 0.15 without it; 2 empty hosts > standby_hosts 1")
	if st := h.s.Status(); st.Removing == nil || st.Removing.Phase != PhaseDraining || st.Removing.RequestID != d.RequestID {
		t.Fatalf("removing %+v", st.Removing)
	}
	if len(h.calls("down")) != 0 {
		t.Fatal("down hook ran at the drain")
	}
	h.clock.Advance(5 * time.Second)
	wantAction(t, h.step(), ActionDown, "h3 drained and idle: down hook started")
	c, ok := h.calls("down")[d.RequestID]
	if !ok || c.in.Host != "h3" || c.in.RequestID != d.RequestID {
		t.Fatalf("down hook %+v; want h3 under %s", c, d.RequestID)
	}
	if st := h.s.Status(); st.Removing == nil || st.Removing.Phase != PhaseRemoving {
		t.Fatalf("removing %+v", st.Removing)
	}
	// Until it leaves, it stays drained and no other host goes.
	h.clock.Advance(5 * time.Minute)
	wantAction(t, h.step(), ActionNone, "h3 on its way out (removing)")
	h.fleet.remove("h3")
	h.clock.Advance(5 * time.Second)
	h.step()
	if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on"}) {
		t.Fatalf("drains %v", got)
	}
	if st := h.s.Status(); st.Removing != nil || st.Totals.Removed != 1 {
		t.Fatalf("status %+v", st)
	}
}

// A host whose hook said yes but that never leaves is left drained after
// provision_timeout, and the slot is freed.
func TestDownHostLingers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	down1(h)
	h.step()
	h.clock.Advance(5 * time.Second)
	h.step()
	h.clock.Advance(10 * time.Minute)
	h.step()
	if st := h.s.Status(); st.Removing != nil || st.Totals.Removed != 0 {
		t.Fatalf("status %+v", st)
	}
	if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on"}) {
		t.Fatalf("drains %v; want h3 left drained", got)
	}
}

// Which empty hosts may go, and what the decision says when none may.
func TestDownRules(t *testing.T) {
	t.Parallel()
	young := idleHost("h2", 5*time.Minute) // never a candidate: the cases are about h3
	for _, tc := range []struct {
		name   string
		h3     func(*Host)
		queued int
		edit   func(*Config)
		want   Action
		reason string
	}{
		{"may go", nil, 0, nil, ActionDown, "drain h3 idle 1h0m0s"},
		{"static", func(h *Host) { h.Autoscaled = false }, 0, nil, ActionNone, "none may go: h2 age 5m0s < 15m0s, h3 static"},
		{"idle too short", func(h *Host) { h.IdleSince = t0.Add(-9 * time.Minute) }, 0, nil, ActionNone, "h3 idle 9m0s < 10m0s"},
		{"too young", func(h *Host) { h.Registered = t0.Add(-14 * time.Minute) }, 0, nil, ActionNone, "h3 age 14m0s < 15m0s"},
		{"not up", func(h *Host) { h.Up = false }, 0, nil, ActionNone, "1 empty hosts, standby_hosts 1"},
		{"has a container", func(h *Host) { h.Used, h.IdleSince = 1, time.Time{} }, 0, nil, ActionNone, "1 empty hosts, standby_hosts 1"},
		{"load after", nil, 4, nil, ActionNone, "h3: load 0.70 without it"},
		{"load after under", nil, 3, nil, ActionDown, "load 0.43 → 0.65 without it"},
		{"min_hosts", nil, 0, func(c *Config) { c.MinHosts = 3 }, ActionNone, "3 hosts, at least 3 kept"},
		{"standby 2", nil, 0, func(c *Config) { c.StandbyHosts = 2 }, ActionNone, "2 empty hosts, standby_hosts 2"},
		{"no idle time", func(h *Host) { h.IdleSince = t0 }, 0, func(c *Config) { c.ScaleDownIdle = 0 }, ActionDown, "drain h3 idle 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, accept, accept, tc.edit)
			h3 := idleHost("h3", time.Hour)
			if tc.h3 != nil {
				tc.h3(&h3)
			}
			h.fleet.hosts = []Host{busyHost("h1", 10), young, h3}
			h.fleet.queued = tc.queued
			d := h.step()
			wantAction(t, d, tc.want, tc.reason)
			drains := h.fleet.drainLog()
			if tc.want == ActionDown && !slices.Equal(drains, []string{"h3 on"}) || tc.want != ActionDown && len(drains) > 0 {
				t.Fatalf("drains %v", drains)
			}
		})
	}
}

// Static daemons never go, however long they idle.
func TestStaticNeverGoes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, func(c *Config) { c.MinHosts, c.StandbyHosts = 0, 0 })
	for _, name := range []string{"s1", "s2", "s3"} {
		s := idleHost(name, 48*time.Hour)
		s.Autoscaled = false
		h.fleet.hosts = append(h.fleet.hosts, s)
	}
	for range 2 * time.Hour / time.Minute {
		if d := h.step(); d.Action != ActionNone {
			t.Fatalf("decision %+v", d)
		}
		h.clock.Advance(time.Minute)
	}
	if len(h.fleet.drainLog()) != 0 || len(h.calls("down")) != 0 {
		t.Fatalf("drains %v", h.fleet.drainLog())
	}
}

// Work that reaches a host while it drains, at each moment it can, puts
// the host back, and its down hook never runs.
func TestWorkDuringDrain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// onDrain and onBusy make work arrive inside Drain and Busy; after
		// makes it arrive between the two passes.
		onDrain func(f *fakeFleet, host string, on bool)
		onBusy  func(host string, n int) bool
		after   func(h *harness)
		reason  string
	}{
		{
			name: "placed as it was drained",
			onDrain: func(f *fakeFleet, host string, on bool) {
				f.busy[host] = on // a placement decided before the drain lands now
			},
			reason: "h3 put back: busy as it was drained",
		},
		{
			name: "session between the passes",
			after: func(h *harness) {
				s := idleHost("h3", 3*time.Hour)
				s.Used, s.IdleSince = 1, time.Time{}
				h.fleet.set(s)
				h.fleet.setBusy("h3", true)
			},
			reason: "h3 put back: has a Ganger container",
		},
		{
			name:   "instance with time left, no container yet",
			after:  func(h *harness) { h.fleet.setBusy("h3", true) },
			reason: "h3 put back: busy while draining",
		},
		{
			name:   "session just before the hook",
			onBusy: func(host string, n int) bool { return n >= 3 }, // drain, next pass, before the hook
			reason: "h3 put back: busy just before its down hook",
		},
		{
			name:   "load rose",
			after:  func(h *harness) { h.fleet.setQueued(11) },
			reason: "h3 put back: an up is wanted: load 0.70 ≥ 0.70",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, accept, accept, nil)
			down1(h)
			h.fleet.onDrain, h.fleet.onBusy = tc.onDrain, tc.onBusy
			h.step()
			if tc.after != nil {
				tc.after(h)
			}
			if tc.onDrain == nil {
				h.clock.Advance(5 * time.Second)
				h.step()
			}
			if d := h.s.Status().Last; d.Reason != tc.reason || d.Host != "h3" {
				t.Fatalf("last decision %+v; want %q", d, tc.reason)
			}
			if n := len(h.calls("down")); n != 0 {
				t.Fatalf("%d down hooks ran", n)
			}
			if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on", "h3 off"}) {
				t.Fatalf("drains %v; want h3 on, off", got)
			}
			if st := h.s.Status(); st.Removing != nil || st.Totals.PutBack != 1 {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// A down hook that fails puts the host back; the cooldown then holds the
// next attempt.
func TestFailingDownHook(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, refuse, nil)
	down1(h)
	h.step()
	h.clock.Advance(5 * time.Second)
	h.step()
	if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on", "h3 off"}) {
		t.Fatalf("drains %v", got)
	}
	st := h.s.Status()
	if st.Removing != nil || st.Totals.DownFailed != 1 || st.Totals.PutBack != 1 {
		t.Fatalf("status %+v", st)
	}
	if r := st.Hooks[0]; r.Action != ActionDown || r.Host != "h3" || r.ExitCode != 3 || r.Stderr != "no quota left\n" {
		t.Fatalf("hook run %+v", r)
	}
	h.clock.Advance(5 * time.Second)
	wantAction(t, h.step(), ActionWait, "h3 may go but cooldown: 1m55s left")
	h.clock.Advance(2 * time.Minute)
	wantAction(t, h.step(), ActionDown, "drain h3")
}
