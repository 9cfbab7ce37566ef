package bench

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
)

const burst = 20

// BenchmarkBurst20: 20 clients connect at once, cold; the time until all
// have their first byte. Through Ganger over one daemon, through Ganger
// over three (the local one and two extra dockerd on this machine), and a
// minimal loop creating and starting 20 containers in parallel on one
// daemon. The three alternate; removals are never timed.
func BenchmarkBurst20(b *testing.B) {
	var extras []*dockertest.Extra
	for i := 7; i <= 8; i++ { // numbers no test package uses
		e, err := dockertest.StartExtra(i, false)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(e.Stop)
		extras = append(extras, e)
	}
	three := "  - {name: local, host: unix:///var/run/docker.sock}\n"
	for _, e := range extras {
		three += fmt.Sprintf("  - {name: %s, host: %q}\n", e.Name, e.Host)
	}
	one, owner1, d := node(b, `["-banner", "hi"]`)
	multi, owner3, _ := node(b, `["-banner", "hi"]`, three)
	extraHandles := []*docker.Daemon{dockertest.DaemonAt(b, extras[0].Host), dockertest.DaemonAt(b, extras[1].Host)}
	base := direct(b, "container")
	var viaOne, viaThree, viaLoop []time.Duration
	b.ResetTimer()
	for i := range b.N {
		viaOne = append(viaOne, clients(b, one))
		b.StopTimer()
		waitGone(b, d, owner1)
		b.StartTimer()

		viaThree = append(viaThree, clients(b, multi))
		b.StopTimer()
		waitGone(b, d, owner3)
		for _, x := range extraHandles {
			waitGone(b, x, owner3)
		}
		b.StartTimer()

		viaLoop = append(viaLoop, parallelLoop(b, base, owner1, i))
		b.StopTimer()
		waitGone(b, d, owner1)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(median(viaOne).Milliseconds()), "ganger1-ms")
	b.ReportMetric(float64(median(viaThree).Milliseconds()), "ganger3-ms")
	b.ReportMetric(float64(median(viaLoop).Milliseconds()), "loop-ms")
	if b.N == 1 {
		return
	}
	fmt.Printf("burst of %d (n=%d): ganger over 1 daemon p50 %s p90 %s; over 3 daemons p50 %s p90 %s; parallel create+start loop p50 %s p90 %s; ratios of medians 1-daemon/loop %.3f, 3-daemons/loop %.3f\n",
		burst, b.N, ms(median(viaOne)), ms(pct(viaOne, 90)), ms(median(viaThree)), ms(pct(viaThree, 90)),
		ms(median(viaLoop)), ms(pct(viaLoop, 90)),
		float64(median(viaOne))/float64(median(viaLoop)), float64(median(viaThree))/float64(median(viaLoop)))
}

// clients connects 20 clients at once to addr and returns how long until
// the last has its first byte. Every client stays connected until then, so
// no removal runs during the timed part (as in the loop).
func clients(b *testing.B, addr string) time.Duration {
	conns := make([]net.Conn, burst)
	took := together(b, func(i int) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns[i] = c
		return firstByte(c)
	})
	closeAll(conns)
	return took
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// parallelLoop creates, starts and dials 20 containers at once on d, and
// removes them afterwards (untimed).
func parallelLoop(b *testing.B, d *docker.Daemon, owner string, round int) time.Duration {
	ids := make([]string, burst)
	conns := make([]net.Conn, burst)
	took := together(b, func(i int) error {
		ctx := context.Background()
		id, err := d.Create(ctx, baselineSpec(owner, round*burst+i, "-banner", "hi"))
		if err != nil {
			return err
		}
		ids[i] = id
		addr, err := d.Start(ctx, id, 7777)
		if err != nil {
			return err
		}
		c, err := dialReady(addr)
		if err != nil {
			return err
		}
		conns[i] = c
		return firstByte(c)
	})
	closeAll(conns)
	for _, id := range ids {
		if id != "" {
			d.Remove(context.Background(), id)
		}
	}
	return took
}

// together runs f for 0..burst-1 at once and times the slowest.
func together(b *testing.B, f func(i int) error) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	start := make(chan struct{})
	for i := range burst {
		wg.Go(func() {
			<-start
			if err := f(i); err != nil {
				errs <- err
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(t0)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}
