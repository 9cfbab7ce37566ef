package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/clocktest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// fakeFleet is a Fleet whose hosts a test sets. Drain and Busy follow its
// own records: what a test marks busy, and the drains asked for.
type fakeFleet struct {
	mu      sync.Mutex
	hosts   []Host
	queued  int
	drained map[string]bool
	busy    map[string]bool
	drains  []string // "h3 on", "h3 off", in the order asked
	busyN   map[string]int
	// onDrain runs as Drain is asked, before it answers: a session that
	// lands as the host is drained.
	onDrain func(f *fakeFleet, host string, on bool)
	// onBusy, if set, answers Busy's nth call for host (from 1).
	onBusy func(host string, n int) bool
	snaps  chan struct{} // if set, receives after each Snapshot
	clock  *clocktest.Clock
}

var _ Fleet = (*fakeFleet)(nil)

func (f *fakeFleet) Snapshot() Snapshot {
	f.mu.Lock()
	snap := Snapshot{Queued: f.queued, At: f.clock.Now()}
	for _, h := range f.hosts {
		h.Draining = h.Draining || f.drained[h.Name]
		snap.Hosts = append(snap.Hosts, h)
	}
	f.mu.Unlock()
	if f.snaps != nil {
		f.snaps <- struct{}{}
	}
	return snap
}

func (f *fakeFleet) Drain(host string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.ContainsFunc(f.hosts, func(h Host) bool { return h.Name == host }) {
		return errors.New("no such host")
	}
	if on {
		f.drains = append(f.drains, host+" on")
	} else {
		f.drains = append(f.drains, host+" off")
	}
	f.drained[host] = on
	if f.onDrain != nil {
		f.onDrain(f, host, on)
	}
	return nil
}

func (f *fakeFleet) Busy(host string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busyN[host]++
	if f.onBusy != nil {
		return f.onBusy(host, f.busyN[host])
	}
	return f.busy[host]
}

// set replaces the host named h.Name, or adds h.
func (f *fakeFleet) set(h Host) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.IndexFunc(f.hosts, func(x Host) bool { return x.Name == h.Name }); i >= 0 {
		f.hosts[i] = h
		return
	}
	f.hosts = append(f.hosts, h)
}

func (f *fakeFleet) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts = slices.DeleteFunc(f.hosts, func(h Host) bool { return h.Name == name })
}

func (f *fakeFleet) setBusy(host string, busy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy[host] = busy
}

func (f *fakeFleet) setQueued(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = n
}

func (f *fakeFleet) drainLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.drains)
}

// leaderFunc is a Leader a test switches.
type leaderFunc func() bool

func (l leaderFunc) Leading() bool { return l() }

// busyHost is a static host with used containers of 10 places.
func busyHost(name string, used int) Host {
	return Host{Name: name, Up: true, Used: used, Capacity: 10, Registered: t0.Add(-24 * time.Hour)}
}

// idleHost is a discovered host, empty for an hour, registered age ago.
func idleHost(name string, age time.Duration) Host {
	return Host{Name: name, Up: true, Capacity: 10, Registered: t0.Add(-age), IdleSince: t0.Add(-time.Hour), Autoscaled: true}
}

// harness is a Scaler on a fake fleet and a manual clock, with real hook
// scripts that record each run under dir/up and dir/down.
type harness struct {
	t       *testing.T
	s       *Scaler
	fleet   *fakeFleet
	clock   *clocktest.Clock
	leading atomic.Bool
	dir     string
	ctx     context.Context
}

// The hook scripts' endings.
const (
	accept = "exit 0"
	refuse = "echo 'no quota left' >&2; exit 3"
	block  = "exec sleep 1000"
)

func newHarness(t *testing.T, up, down string, edit func(*Config)) *harness {
	t.Helper()
	clock := clocktest.New(t0)
	h := &harness{t: t, clock: clock, dir: t.TempDir(), ctx: t.Context(),
		fleet: &fakeFleet{drained: map[string]bool{}, busy: map[string]bool{}, busyN: map[string]int{}, clock: clock}}
	h.leading.Store(true)
	cfg := Defaults()
	cfg.Up.Command = []string{h.script("up", up)}
	cfg.Down.Command = []string{h.script("down", down)}
	if edit != nil {
		edit(&cfg)
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("test config: %v", ps)
	}
	h.s = New(cfg, h.fleet, leaderFunc(h.leading.Load), clock, nil)
	return h
}

// script writes a hook that records its stdin and GANGER_ environment
// under dir/action, named by request id, then runs end.
func (h *harness) script(action, end string) string {
	h.t.Helper()
	rec := filepath.Join(h.dir, action)
	if err := os.Mkdir(rec, 0o755); err != nil {
		h.t.Fatal(err)
	}
	path := filepath.Join(h.dir, action+".sh")
	body := "#!/bin/sh\n" +
		"cat > '" + rec + "'/\"$GANGER_REQUEST_ID.json\"\n" +
		"env | grep '^GANGER_' | sort > '" + rec + "'/\"$GANGER_REQUEST_ID.env\"\n" +
		end + "\n"
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// step is one pass, with the hooks it started run to their end.
func (h *harness) step() Decision {
	h.s.tick(h.ctx)
	h.s.hooks.Wait()
	return h.s.Status().Last
}

// call is one recorded hook run.
type call struct {
	in  hookInput
	env []string
}

// calls returns the recorded runs of action's hook, by request id.
func (h *harness) calls(action string) map[string]call {
	h.t.Helper()
	rec := filepath.Join(h.dir, action)
	names, err := filepath.Glob(filepath.Join(rec, "*.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]call{}
	for _, name := range names {
		id := strings.TrimSuffix(filepath.Base(name), ".json")
		var c call
		b, err := os.ReadFile(name)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := json.Unmarshal(b, &c.in); err != nil {
			h.t.Fatalf("hook stdin %s: %v", b, err)
		}
		env, err := os.ReadFile(filepath.Join(rec, id+".env"))
		if err != nil {
			h.t.Fatal(err)
		}
		c.env = strings.Fields(string(env))
		out[id] = c
	}
	return out
}

func wantAction(t *testing.T, d Decision, action Action, reason string) {
	t.Helper()
	if d.Action != action || !strings.Contains(d.Reason, reason) {
		t.Fatalf("decision %s %q; want %s with %q", d.Action, d.Reason, action, reason)
	}
}
