package autoscale

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Paused, nothing is decided (a host drained to go is put back); resumed,
// decisions come back.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	down1(h)
	wantAction(t, h.step(), ActionDown, "drain h3")
	h.s.Pause()
	h.fleet.setQueued(20)
	for range 10 {
		h.clock.Advance(time.Minute)
		d := h.step()
		if d.Action != ActionNone || !strings.HasPrefix(d.Reason, "paused") {
			t.Fatalf("paused: %+v", d)
		}
	}
	if d := h.s.Status(); !d.Paused {
		t.Fatal("status not paused")
	}
	if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on", "h3 off"}) {
		t.Fatalf("drains %v; want h3 put back at the pause", got)
	}
	if len(h.calls("up"))+len(h.calls("down")) != 0 {
		t.Fatal("a hook ran while paused")
	}
	h.s.Resume()
	wantAction(t, h.step(), ActionUp, "load 0.77 ≥ 0.70")
	if h.s.Status().Paused {
		t.Fatal("status still paused")
	}
}

// A front-end that does not lead decides nothing and runs no hook, even
// one decided while it led.
func TestNotLeading(t *testing.T) {
	t.Parallel()
	t.Run("never", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, accept, accept, nil)
		h.leading.Store(false)
		h.fleet.hosts = []Host{busyHost("h1", 10), idleHost("h2", time.Hour), idleHost("h3", time.Hour)}
		wantAction(t, h.step(), ActionNone, "not leading: another front-end decides")
		if st := h.s.Status(); st.Leading || len(h.calls("up")) != 0 || len(h.fleet.drainLog()) != 0 {
			t.Fatalf("status %+v, drains %v", st, h.fleet.drainLog())
		}
	})
	t.Run("lost after the drain", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, accept, accept, nil)
		down1(h)
		h.step()
		h.leading.Store(false)
		h.clock.Advance(5 * time.Second)
		wantAction(t, h.step(), ActionNone, "not leading: another front-end decides; h3 put back")
		if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on", "h3 off"}) {
			t.Fatalf("drains %v", got)
		}
	})
	t.Run("lost just before the hook", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, accept, accept, nil)
		down1(h)
		var calls atomic.Int32
		h.s.leader = leaderFunc(func() bool { return calls.Add(1) <= 2 }) // the two passes
		h.step()
		h.clock.Advance(5 * time.Second)
		h.step()
		wantAction(t, h.s.Status().Last, ActionDown, "h3 put back: not leading")
		if len(h.calls("down")) != 0 {
			t.Fatal("down hook ran")
		}
	})
	t.Run("lost before an up hook", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, accept, accept, nil)
		h.fleet.hosts = []Host{busyHost("h1", 10)}
		var calls atomic.Int32
		h.s.leader = leaderFunc(func() bool { return calls.Add(1) <= 1 })
		h.step()
		st := h.s.Status()
		if len(h.calls("up")) != 0 || len(st.Pending) != 0 || st.Hooks[0].Error != "not leading: hook not run" {
			t.Fatalf("status %+v", st)
		}
	})
}

// Run decides once per interval, from one interval after it starts; when
// it stops it puts back the host it had drained.
func TestRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	// h3 is old enough at the third pass, h2 not for long.
	h.fleet.hosts = []Host{busyHost("h1", 3), idleHost("h2", 5*time.Minute), idleHost("h3", 15*time.Minute-15*time.Second)}
	h.fleet.snaps = make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- h.s.Run(ctx) }()
	var reasons []string
	for i := range 3 {
		at := t0.Add(time.Duration(i+1) * 5 * time.Second)
		for !h.clock.Waiting(at) {
			runtime.Gosched()
		}
		if i > 0 {
			reasons = append(reasons, h.s.Status().Last.Reason)
		}
		h.clock.Advance(5 * time.Second)
		<-h.fleet.snaps
	}
	for !h.clock.Waiting(t0.Add(20 * time.Second)) {
		runtime.Gosched()
	}
	reasons = append(reasons, h.s.Status().Last.Reason)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{
		"load 0.10 < 0.70; 2 empty hosts > standby_hosts 1, none may go: h2 age 5m5s < 15m0s, h3 age 14m50s < 15m0s",
		"load 0.10 < 0.70; 2 empty hosts > standby_hosts 1, none may go: h2 age 5m10s < 15m0s, h3 age 14m55s < 15m0s",
		"drain h3 idle 1h0m15s, age 15m0s; load 0.10 → 0.15 without it; 2 empty hosts > standby_hosts 1",
	}
	if !slices.Equal(reasons, want) {
		t.Fatalf("reasons\n%q\nwant\n%q", reasons, want)
	}
	if got := h.fleet.drainLog(); !slices.Equal(got, []string{"h3 on", "h3 off"}) {
		t.Fatalf("drains %v; want h3 drained, and put back at the stop", got)
	}
}

// Status is JSON for GET /v1/autoscale.
func TestStatusJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, nil)
	if d := h.s.Status().Last; d.Action != ActionNone || d.Reason != "no decision yet" {
		t.Fatalf("first status %+v", d)
	}
	h.fleet.hosts = []Host{busyHost("h1", 10)}
	d := h.step()
	b, err := json.Marshal(h.s.Status())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	last := got["last_decision"].(map[string]any)
	if last["action"] != "up" || last["request_id"] != d.RequestID || last["reason"] != d.Reason {
		t.Fatalf("last_decision %v", last)
	}
	pending := got["pending"].([]any)
	hooks := got["hooks"].([]any)
	if len(pending) != 1 || len(hooks) != 1 || got["leading"] != true || got["paused"] != false {
		t.Fatalf("status %s", b)
	}
	if hooks[0].(map[string]any)["exit_code"] != 0.0 {
		t.Fatalf("hook %v", hooks[0])
	}
}

// Every method at once, under -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, accept, accept, func(c *Config) { c.Cooldown = 0; c.MaxPending = 3 })
	h.fleet.hosts = []Host{busyHost("h1", 10), idleHost("h2", time.Hour), idleHost("h3", time.Hour)}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch i {
				case 0:
					_ = h.s.Status()
				case 1:
					h.s.Pause()
					h.s.Resume()
				case 2:
					h.s.Registered("h9", h.clock.Now())
				case 3:
					h.fleet.setQueued(int(h.clock.Now().Unix() % 15))
				}
				runtime.Gosched()
			}
		})
	}
	for range 100 {
		h.s.tick(h.ctx)
		h.clock.Advance(5 * time.Second)
	}
	close(stop)
	wg.Wait()
	h.s.hooks.Wait()
}
