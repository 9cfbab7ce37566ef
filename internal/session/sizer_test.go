package session

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/clocktest"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

// The target covers the arrivals expected during one start, with
// headroom; it holds through the quiet period, then falls back to min;
// max caps it; the slowest daemon's start time counts.
func TestSizer(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000_000, 0)
	z := newSizer()
	if got := z.target(t0, 1, 10); got != 1 {
		t.Fatalf("no demand: target %d; want min 1", got)
	}
	z.started("d0", 480*time.Millisecond, t0)
	for i := range 20 { // a burst: 20 sessions within a second
		z.arrive(t0.Add(time.Duration(i) * 50 * time.Millisecond))
	}
	now := t0.Add(time.Second)
	// λ = 20/s; T = 480ms + 20ms hold = 0.5s; λT = 10, plus 3√10 =
	// 19.5: 20.
	if got := z.target(now, 1, 30); got != 20 {
		t.Fatalf("after a burst: target %d; want 20", got)
	}
	if got := z.target(now, 1, 5); got != 5 {
		t.Fatalf("target %d over max 5", got)
	}
	if got := z.target(now.Add(quietPeriod/2), 1, 30); got != 20 {
		t.Fatalf("half a quiet period later: target %d; want the peak, 20, held", got)
	}
	if got := z.target(now.Add(quietPeriod+longWindow+time.Second), 1, 30); got != 1 {
		t.Fatalf("after a quiet period: target %d; want min 1", got)
	}
	if got := z.demand(now.Add(quietPeriod + longWindow)).Rate; got != 0 {
		t.Fatalf("rate %g after a quiet period; want 0", got)
	}

	// Steady arrivals: one every 100ms for 30s (10/s).
	later := now.Add(10 * time.Minute)
	z.started("d0", 180*time.Millisecond, later) // stale d0 forgotten: this is its first sample again
	for i := range 300 {
		z.arrive(later.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	end := later.Add(30 * time.Second)
	// λ = 10/s, T = 0.2s: λT = 2, plus 3√2 = 6.24: 7.
	if got := z.target(end, 0, 20); got != 7 {
		t.Fatalf("10/s with 200ms starts: target %d; want 7", got)
	}
	// A slower daemon: T = 0.98 + 0.02 = 1s, λT = 10, + 3√10 = 19.5: 20.
	z.started("d1", 980*time.Millisecond, end)
	if got := z.target(end, 0, 30); got != 20 {
		t.Fatalf("with a 1s daemon: target %d; want 20", got)
	}
	if d := z.demand(end); d.Rate < 10 || d.Rate > 10.1 || len(d.Starts) != 2 {
		t.Fatalf("demand %+v; want 10/s over two daemons", d)
	}
}

// Chance clumps of Poisson arrivals do not move the rate much; a step up
// in demand moves it within seconds; more arrivals than the ring holds
// still give the right rate.
func TestSizerRate(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000_000, 0)
	z := newSizer()
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	for now.Before(t0.Add(5 * time.Minute)) { // Poisson, 2/s
		now = now.Add(time.Duration(rng.ExpFloat64() / 2 * float64(time.Second)))
		z.arrive(now)
		if now.After(t0.Add(longWindow)) {
			if r := z.demand(now).Rate; r < 1.2 || r > 3.2 {
				t.Fatalf("at %s: rate %.2f at a steady 2/s", now.Sub(t0), r)
			}
		}
	}
	step := now
	for now.Before(step.Add(5 * time.Second)) { // a step to 10/s
		now = now.Add(100 * time.Millisecond)
		z.arrive(now)
	}
	if r := z.demand(now).Rate; r < 7 {
		t.Fatalf("5s after a step from 2/s to 10/s: rate %.2f; want it to have followed", r)
	}
}

// More arrivals than the ring holds still give the right rate.
func TestSizerFastArrivals(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000_000, 0)
	z := newSizer()
	for i := range 2000 { // 1000/s for 2s
		z.arrive(t0.Add(time.Duration(i) * time.Millisecond))
	}
	got := z.demand(t0.Add(2 * time.Second)).Rate
	if got < 900 || got > 1100 {
		t.Fatalf("rate %g; want about 1000/s", got)
	}
}

// An adaptive pool on the fake backend, driven by an injected clock: a
// burst grows the pool from min to max (never past it), a quiet period
// shrinks it back to min, and sessions are served throughout.
func TestAdaptivePool(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(time.Unix(1_000_000_000, 0))
	fake := fleettest.New(t, "img")
	fake.CreateHook = func(context.Context, ganger.Spec) error {
		clk.Advance(400 * time.Millisecond) // a start takes 400ms of the test's time
		return nil
	}
	f := newFleet(t, 0, fake)
	r := serveEnv(t, service(func(c *config.Service) {
		c.Pool = config.Pool{Min: 1, Max: 3, Adaptive: true}
	}), Env{Fleet: f, Now: clk.Now})
	waitPool(t, r, fake, 1, 0)
	p := r.svc.supply.(*pool)

	var over sync.Once
	most := func() { // the pool never holds more than max
		if n := r.svc.Stats().PoolReady; n > 3 {
			over.Do(func() { t.Errorf("%d containers in a pool of max 3", n) })
		}
	}
	var conns []net.Conn
	for i := range 8 { // a burst
		c := dial(t, r.addr)
		roundTrip(t, c, fmt.Sprint("burst ", i))
		conns = append(conns, c)
		most()
	}
	st := r.svc.Stats()
	if st.Pool.Hits+st.Pool.Misses != 8 || st.Pool.Hits == 0 {
		t.Fatalf("hits %d, misses %d; want 8 sessions, some from the pool", st.Pool.Hits, st.Pool.Misses)
	}
	eventually(t, "pool did not grow to max 3", func() bool {
		most()
		st := r.svc.Stats()
		return st.PoolTarget == 3 && st.PoolReady == 3 && fake.Live() == 8+3
	})
	if st := r.svc.Stats(); st.Pool.ArrivalRate <= 0 || st.Pool.StartSeconds["d0"] < 0.4 {
		t.Fatalf("pool view %+v; want the arrivals and a start of at least 400ms measured", *st.Pool)
	}
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "sessions did not end", func() bool { return fake.Live() == 3 })
	clk.Advance(quietPeriod / 2)
	p.poke()
	if got := r.svc.Stats().PoolTarget; got != 3 {
		t.Fatalf("half a quiet period later: target %d; want 3 held", got)
	}
	clk.Advance(quietPeriod)
	p.poke()
	eventually(t, "pool did not shrink back to min 1", func() bool {
		st := r.svc.Stats()
		return st.PoolTarget == 1 && st.PoolReady == 1 && fake.Live() == 1
	})
	roundTrip(t, dial(t, r.addr), "after the quiet")
}

// A pool takes only room no client waits for: when a client of another
// service waits for room that pooled containers hold, the pool gives one
// back, and it starts nothing while the client waits.
func TestPoolGivesRoomBack(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	f := fleet.New(fleet.Options{Node: "n", MaxSessions: 3})
	if err := f.Add(fleet.Daemon{Name: "d0", Backend: fake, MaxContainers: 100}); err != nil {
		t.Fatal(err)
	}
	net := ganger.IsolatedNetwork("n", true)
	f.SetImages([]fleet.Image{{Service: "warm", Ref: "img", Pull: ganger.PullMissing, Network: net}, {Service: "cold", Ref: "img", Pull: ganger.PullMissing, Network: net}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		f.Close(ctx)
	})
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	named := func(name string, edit func(*config.Service)) config.Service {
		return service(func(c *config.Service) {
			c.Name = name
			if edit != nil {
				edit(c)
			}
		})
	}
	warm := serveEnv(t, named("warm", poolOf(3)), Env{Fleet: f})
	eventually(t, "pool not full", func() bool { return warm.svc.Stats().PoolReady == 3 && fake.Live() == 3 })
	cold := serveEnv(t, named("cold", nil), Env{Fleet: f})
	for i := range 2 {
		c := dial(t, cold.addr) // waits for room; the pool gives it some
		roundTrip(t, c, fmt.Sprint("cold ", i))
	}
	if n := fake.Live(); n > 3 {
		t.Fatalf("%d containers under a cap of 3", n)
	}
	if st := warm.svc.Stats(); st.PoolReady > 1 {
		t.Fatalf("pool holds %d with two clients of another service using the room; want at most 1", st.PoolReady)
	}
}

// Pooled containers are placed like any other: spread over the daemons
// by the service's placement, or packed with binpack.
func TestPoolPlacement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		placement ganger.Placement
		want      [2]int
	}{{ganger.Spread, [2]int{2, 2}}, {ganger.Binpack, [2]int{4, 0}}} {
		t.Run(string(tc.placement), func(t *testing.T) {
			a, b := fleettest.New(t, "img"), fleettest.New(t, "img")
			r := serve(t, newFleet(t, 0, a, b), service(func(c *config.Service) {
				c.Pool = config.Pool{Min: 4, Max: 4}
				c.Placement = tc.placement
			}))
			eventually(t, "pool not full", func() bool { return r.svc.Stats().PoolReady == 4 })
			if got := [2]int{a.Live(), b.Live()}; got != tc.want {
				t.Fatalf("containers per daemon %v; want %v", got, tc.want)
			}
		})
	}
}

// An adaptive pool stays within the service's capacity: with
// max_containers 3 and two sessions live, it holds at most one ready,
// however high the demand, and a third client is still served.
func TestAdaptivePoolWithinCapacity(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(time.Unix(1_000_000_000, 0))
	fake := fleettest.New(t, "img")
	fake.CreateHook = func(context.Context, ganger.Spec) error {
		clk.Advance(400 * time.Millisecond)
		return nil
	}
	r := serveEnv(t, service(func(c *config.Service) {
		c.Pool = config.Pool{Min: 1, Max: 6, Adaptive: true}
		c.MaxContainers = 3
	}), Env{Fleet: newFleet(t, 0, fake), Now: clk.Now})
	waitPool(t, r, fake, 1, 0)
	for i := range 2 {
		roundTrip(t, dial(t, r.addr), fmt.Sprint("held ", i))
	}
	eventually(t, "demand not measured", func() bool { return r.svc.Stats().PoolTarget > 1 })
	for range 20 { // the refill runs, and finds no room
		r.svc.supply.(*pool).poke()
		if n := fake.Live(); n > 3 {
			t.Fatalf("%d containers under max_containers 3", n)
		}
	}
	eventually(t, "the one free slot not filled", func() bool { return r.svc.Stats().PoolReady == 1 && fake.Live() == 3 })
	roundTrip(t, dial(t, r.addr), "third")
}
