package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

// BenchmarkGangerInitTTFB: what init: ganger adds to a cold start.
// Connect to first byte (the banner), per-connection, no pool, through one
// node serving the same echo service twice: as the image has it, and
// under ganger-init (its volume made at start-up, before timing). The two
// alternate, first one then the other; removal is never timed, and each
// op waits for the previous container to be gone. Goal: at most +5 ms.
func BenchmarkGangerInitTTFB(b *testing.B) {
	d := dockertest.Daemon(b)
	owner := dockertest.Node(b, d)
	in := fleettest.BuildInit(b, false)
	yml := fmt.Sprintf(`node: %s
init_binary: %q
services:
  - {name: plain, listen: 127.0.0.1:0, image: %s, port: 7777, cmd: [-banner, hi]}
  - {name: init, listen: 127.0.0.1:0, image: %s, port: 7777, cmd: [-banner, hi], init: ganger}
`, owner, in.Binary, dockertest.Image, dockertest.Image)
	srv := serveYAML(b, yml, io.Discard)
	plain, init := srv.Addr("plain").String(), srv.Addr("init").String()
	ttfb := func(addr string) time.Duration {
		t0 := time.Now()
		c, err := net.Dial("tcp", addr)
		if err == nil {
			err = firstByte(c)
		}
		took := time.Since(t0)
		if err != nil {
			b.Fatalf("%s: %v", addr, err)
		}
		b.StopTimer()
		c.Close()
		waitGone(b, d, owner)
		b.StartTimer()
		return took
	}
	ttfb(init) // waits for ganger-init's volume if the start-up has not made it yet
	var withInit, without, diffs []time.Duration
	b.ResetTimer()
	for i := range b.N {
		var p, g time.Duration
		if i%2 == 0 {
			p, g = ttfb(plain), ttfb(init)
		} else {
			g, p = ttfb(init), ttfb(plain)
		}
		without, withInit, diffs = append(without, p), append(withInit, g), append(diffs, g-p)
	}
	b.StopTimer()
	delta := median(withInit) - median(without)
	b.ReportMetric(float64(median(withInit).Microseconds())/1000, "init-ms")
	b.ReportMetric(float64(median(without).Microseconds())/1000, "plain-ms")
	b.ReportMetric(float64(delta.Microseconds())/1000, "delta-ms")
	if b.N == 1 {
		return // the calibration run
	}
	fmt.Printf("cold ttfb under ganger-init (n=%d each, interleaved): init: ganger p50 %s p90 %s; without p50 %s p90 %s; difference of medians %s, median of paired differences %s (goal <= +5 ms)\n",
		b.N, ms(median(withInit)), ms(pct(withInit, 90)), ms(median(without)), ms(pct(without, 90)), signed(delta), signed(median(diffs)))
}

func signed(d time.Duration) string {
	if d < 0 {
		return "-" + ms(-d)
	}
	return "+" + ms(d)
}

// BenchmarkGangerInitReady: where init: ganger's cost lies, measured
// without Ganger's noise around it. Containers made as Ganger makes them
// (same spec, same daemon), with and without ganger-init, interleaved;
// timed from the daemon's start call returning to the banner's first
// byte, dialling every 0.2 ms (the cost itself), and with each service's
// default readiness backoff, doubling from 5 ms, or from 1 ms under
// init: ganger (what a session sees). The start call is timed too.
func BenchmarkGangerInitReady(b *testing.B) {
	d := dockertest.Daemon(b)
	owner := dockertest.Node(b, d)
	in := fleettest.BuildInit(b, false)
	ctx := context.Background()
	if err := d.EnsureInit(ctx, in, owner); err != nil {
		b.Fatal(err)
	}
	if err := d.EnsureNetwork(ctx, ganger.IsolatedNetworks(owner)[0]); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.RemoveNetwork(ctx, ganger.IsolatedNetworks(owner)[0].Name) })
	type run struct{ start, tight, backoff []time.Duration }
	var plain, init run
	n := 0
	one := func(r *run, under bool, dial func(string) (net.Conn, error), into *[]time.Duration) {
		n++
		spec := baselineSpec(owner, n, "-banner", "hi")
		if under {
			spec.Init = in
		}
		id, err := d.Create(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		addr, err := d.Start(ctx, id, 7777)
		t1 := time.Now()
		var c net.Conn
		if err == nil {
			c, err = dial(addr)
		}
		if err == nil {
			err = firstByte(c)
			c.Close()
		}
		*into = append(*into, time.Since(t1))
		r.start = append(r.start, t1.Sub(t0))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d.Remove(ctx, id)
		waitGone(b, d, owner)
		b.StartTimer()
	}
	b.ResetTimer()
	for i := range b.N {
		first, second := &plain, &init
		if i%2 == 1 {
			first, second = second, first
		}
		for _, r := range []*run{first, second} {
			one(r, r == &init, dialTight, &r.tight)
		}
		for _, r := range []*run{second, first} {
			backoff := config.DefaultReadyBackoff
			if r == &init {
				backoff = config.DefaultInitReadyBackoff
			}
			one(r, r == &init, func(addr string) (net.Conn, error) { return dialBackoff(addr, backoff) }, &r.backoff)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((median(init.tight)-median(plain.tight)).Microseconds())/1000, "delta-tight-ms")
	b.ReportMetric(float64((median(init.backoff)-median(plain.backoff)).Microseconds())/1000, "delta-backoff-ms")
	if b.N == 1 {
		return
	}
	var paired []time.Duration
	for k := range init.start {
		paired = append(paired, init.start[k]-plain.start[k])
	}
	fmt.Printf("start call (n=%d each): under ganger-init p50 %s, without %s; median of paired differences %s\n",
		2*b.N, ms(median(init.start)), ms(median(plain.start)), signed(median(paired)))
	fmt.Printf("start to first byte, dialling every 0.2 ms: under ganger-init p50 %s p90 %s, without p50 %s p90 %s: %s\n",
		ms(median(init.tight)), ms(pct(init.tight, 90)), ms(median(plain.tight)), ms(pct(plain.tight, 90)), signed(median(init.tight)-median(plain.tight)))
	fmt.Printf("start to first byte, each with its default readiness backoff (doubling from 1 ms under ganger-init, from 5 ms without): under ganger-init p50 %s p90 %s, without p50 %s p90 %s: %s\n",
		ms(median(init.backoff)), ms(pct(init.backoff, 90)), ms(median(plain.backoff)), ms(pct(plain.backoff, 90)), signed(median(init.backoff)-median(plain.backoff)))
}

// dialTight dials addr every 0.2 ms until it answers: how soon a service
// listens, to within that.
func dialTight(addr string) (net.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// dialBackoff dials addr as Ganger's readiness does: a backoff doubling
// from first up to the default maximum.
func dialBackoff(addr string, first time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for backoff := first; ; backoff = min(backoff*2, config.DefaultBackoffMax) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(backoff)
	}
}
