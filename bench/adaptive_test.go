package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/server"
	"github.com/ganger-dev/ganger/internal/view"
)

// BenchmarkAdaptivePool: Poisson arrivals of 1 s Redis sessions at half
// and at 80% of the rate this daemon sustains for a raw create + start +
// ready + remove loop (measured first, in the same run), 60 s per rate and
// service, against an adaptive pool (min 1, max 10) and a fixed one (2).
// It prints, per run, the fraction of sessions served from the pool, TTFB
// p50/p99, and how many containers the pool kept on average. Goal: the
// adaptive pool serves >= 99% of sessions from the pool at both rates.
//
// It takes about five minutes and is meant to run once:
//
//	go test -count=1 -run '^$' -bench AdaptivePool -benchtime 1x ./bench/
//
// so, unlike the other benchmarks, it prints its summary with b.N == 1:
// that single run is the measurement, not a calibration (a first run this
// long also stops the framework from asking for a second). It ignores
// b.N. BENCH_ADAPTIVE_SECONDS shortens the 60 s runs while developing.
func BenchmarkAdaptivePool(b *testing.B) {
	runFor := 60 * time.Second
	if s := os.Getenv("BENCH_ADAPTIVE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_ADAPTIVE_SECONDS=%q: want a positive number of seconds", s)
		}
		runFor = time.Duration(n) * time.Second
	}
	const (
		session    = time.Second // each session holds its connection this long after connect
		sample     = 250 * time.Millisecond
		rawWorkers = 8
		rawWindow  = 20 * time.Second
	)
	logs := &dockertest.Logs{}
	redis := "image: " + RedisImage + ", port: 6379"
	svcs := []string{"adaptive", "fixed"}
	srv, owner := services(b, logs,
		"{name: adaptive, listen: 127.0.0.1:0, "+redis+", pool: {min: 1, max: 10, adaptive: true}}",
		"{name: fixed, listen: 127.0.0.1:0, "+redis+", pool: {min: 2, max: 2}}",
	)
	d := dockertest.Daemon(b)
	for _, name := range svcs {
		addr := srv.Addr(name).String()
		dockertest.Eventually(b, time.Minute, name+" does not answer", func() bool { _, err := ping(addr); return err == nil })
	}
	settle(b, srv, svcs)
	b.ResetTimer()

	// Step 1: the rate the daemon sustains, raw.
	raw := rawStarts(b, owner, rawWorkers, rawWindow)
	baselineGone(b, d, owner)
	settle(b, srv, svcs)

	// Step 2: Poisson arrivals, one run after another.
	var runs []poissonRun
	for ri, frac := range []float64{0.5, 0.8} {
		rate := frac * raw.rate
		for _, name := range svcs {
			r := poissonLoad(b, srv, logs, name, rate, runFor, session, sample, uint64(ri+1))
			r.frac = frac
			runs = append(runs, r)
			settle(b, srv, svcs)
		}
	}
	b.StopTimer()

	b.ReportMetric(raw.rate, "raw-ready/s")
	for _, r := range runs {
		key := fmt.Sprintf("%s%.0f", r.svc, r.frac*100)
		b.ReportMetric(r.poolFrac(), key+"-pool-frac")
		b.ReportMetric(float64(pct(r.ttfb, 99).Microseconds())/1000, key+"-p99-ms")
		b.ReportMetric(r.kept, key+"-kept")
	}

	fmt.Printf("adaptive pool (%s, %d cores shared; sessions of %s, Poisson arrivals, %s per run, runs one after another):\n",
		RedisImage, runtime.NumCPU(), session, runFor)
	fmt.Printf("  raw loop, %d workers for %s: create + start + ready (dial, then PING answered) + remove, each container removed before the worker's next: %d in %s = R %.2f/s; create-to-ready p50 %s p99 %s, remove p50 %s\n",
		rawWorkers, rawWindow, raw.n, ms(raw.took), raw.rate, ms(median(raw.ready)), ms(pct(raw.ready, 99)), ms(median(raw.remove)))
	for _, r := range runs {
		fmt.Printf("  %-8s at %.0f%% R (%.2f/s): %4d arrivals; from the pool %6.2f%% (%d hits, %d misses; after the first %s %6.2f%%, %d misses; session-end lines from=pool %d, from=new %d); TTFB p50 %s p90 %s p99 %s max %s; kept (ready + starting) avg %.2f, max %d; target avg %.2f, max %d; at the end: measured start %s, arrival rate %.2f/s\n",
			r.svc, r.frac*100, r.rate, r.arrivals, 100*r.poolFrac(), r.hits, r.misses, r.warm, 100*r.steadyFrac(), r.steadyMisses,
			r.logPool, r.logNew, us(median(r.ttfb)), us(pct(r.ttfb, 90)), us(pct(r.ttfb, 99)), us(pct(r.ttfb, 100)),
			r.kept, r.keptMax, r.target, r.targetMax, r.startTime, r.arrivalRate)
		fmt.Printf("           per %s of the run: misses %v; as the pool measured it, averages:", r.bucket, r.missBuckets)
		for i, k := range r.buckets {
			if k.n > 0 {
				fmt.Printf(" [%d] %s;", i, k)
			}
		}
		fmt.Println()
	}
	var adaptive, fixed [2]poissonRun
	for _, r := range runs {
		i := 0
		if r.frac > 0.6 {
			i = 1
		}
		if r.svc == "adaptive" {
			adaptive[i] = r
		} else {
			fixed[i] = r
		}
	}
	met := func(r poissonRun) string {
		if r.poolFrac() >= 0.99 {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("  goal >= 99%% from the pool with the adaptive pool: at 50%% R %.2f%% (%s), at 80%% R %.2f%% (%s); it kept %.2f and %.2f containers on average, the fixed pool of 2 served %.2f%% and %.2f%%\n",
		100*adaptive[0].poolFrac(), met(adaptive[0]), 100*adaptive[1].poolFrac(), met(adaptive[1]),
		adaptive[0].kept, adaptive[1].kept, 100*fixed[0].poolFrac(), 100*fixed[1].poolFrac())
	fmt.Printf("  TTFB p99 adaptive/fixed: at 50%% R %.3f, at 80%% R %.3f\n",
		float64(pct(adaptive[0].ttfb, 99))/float64(pct(fixed[0].ttfb, 99)), float64(pct(adaptive[1].ttfb, 99))/float64(pct(fixed[1].ttfb, 99)))
}

type rawResult struct {
	n             int
	took          time.Duration
	rate          float64
	ready, remove []time.Duration
}

// rawStarts runs workers loops of create, start, ready (a PING answered)
// and remove of Redis containers on the node's isolated network, for
// window (a cycle begun within it is finished), and returns the containers
// made ready per second.
func rawStarts(b *testing.B, owner string, workers int, window time.Duration) rawResult {
	base := direct(b, "container")
	ctx := context.Background()
	var (
		mu       sync.Mutex
		res      rawResult
		firstErr error
		seq      atomic.Int64
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	deadline := t0.Add(window)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				spec := baselineSpec(owner, int(seq.Add(1)))
				spec.Image, spec.Port, spec.Cmd = RedisImage, 6379, nil
				c0 := time.Now()
				id, err := base.Create(ctx, spec)
				var addr string
				if err == nil {
					addr, err = base.Start(ctx, id, 6379)
					if err == nil {
						err = redisReady(addr)
					}
				}
				ready := time.Since(c0)
				r0 := time.Now()
				if id != "" {
					if rerr := base.Remove(ctx, id); err == nil {
						err = rerr
					}
				}
				removed := time.Since(r0)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				res.n++
				res.ready = append(res.ready, ready)
				res.remove = append(res.remove, removed)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("raw loop: %v", firstErr)
	}
	res.took = time.Since(t0)
	res.rate = float64(res.n) / res.took.Seconds()
	return res
}

// redisReady dials addr as Ganger's readiness does, then sends PING until
// it is answered.
func redisReady(addr string) error {
	c, err := dialReady(addr)
	if err != nil {
		return err
	}
	c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		if _, err = ping(addr); err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
	}
}

// poolBucket sums the pool's samples over one stretch of a run.
type poolBucket struct {
	n, target      int
	start, arrival float64 // T (the slowest daemon's, seconds) and λ as the pool measures them
}

func (k poolBucket) String() string {
	n := float64(max(k.n, 1))
	return fmt.Sprintf("target %.1f, T %.0fms, λ %.1f/s", float64(k.target)/n, 1000*k.start/n, k.arrival/n)
}

// poissonRun is one service's run at one rate.
type poissonRun struct {
	svc                string
	frac, rate         float64
	arrivals           int
	hits, misses       int64
	warm               time.Duration // the start of the run left out of the steady figures
	steadyHits         int64
	steadyMisses       int64
	logPool, logNew    int
	ttfb               []time.Duration
	kept, target       float64 // averages of the 250 ms samples
	keptMax, targetMax int
	startTime          string
	arrivalRate        float64
	bucket             time.Duration
	missBuckets        []int64
	buckets            []poolBucket
}

func (r poissonRun) poolFrac() float64 {
	return float64(r.hits) / float64(max(r.hits+r.misses, 1))
}

func (r poissonRun) steadyFrac() float64 {
	return float64(r.steadyHits) / float64(max(r.steadyHits+r.steadyMisses, 1))
}

// poissonLoad sends Poisson arrivals at rate to service name for runFor:
// each connects, sends PING, reads +PONG (its TTFB), holds the connection
// until hold after it connected, and closes. It samples the pool every
// sample meanwhile, and returns once every session has ended.
func poissonLoad(b *testing.B, srv *server.Server, logs *dockertest.Logs, name string, rate float64, runFor, hold, sample time.Duration, seed uint64) poissonRun {
	addr := srv.Addr(name).String()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	r := poissonRun{svc: name, rate: rate, warm: min(10*time.Second, runFor/4), bucket: max(runFor/6, time.Second)}
	poolPlain := func() view.Pool { return *poolOf(b, srv, name) }
	before := poolPlain()
	endsBefore := len(logs.Lines("session end", "service="+name))
	poolBefore := len(logs.Lines("session end", "service="+name, "from=pool"))
	newBefore := len(logs.Lines("session end", "service="+name, "from=new"))

	var (
		mu       sync.Mutex
		firstErr error
		errs     int
		wg       sync.WaitGroup
	)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	var steady view.Pool
	var kept, target, samples int
	go func() {
		defer close(sampled)
		t := time.NewTicker(sample)
		defer t.Stop()
		start := time.Now()
		tookSteady := false
		nb := int(runFor/r.bucket) + 1
		r.missBuckets = make([]int64, nb)
		r.buckets = make([]poolBucket, nb)
		last := before.Misses
		for {
			select {
			case <-stopSampling:
				return
			case now := <-t.C:
				p := poolPlain()
				k := p.Ready + p.Starting
				kept, target, samples = kept+k, target+p.Target, samples+1
				r.keptMax, r.targetMax = max(r.keptMax, k), max(r.targetMax, p.Target)
				if !tookSteady && now.Sub(start) >= r.warm {
					steady, tookSteady = p, true
				}
				if i := int(now.Sub(start) / r.bucket); i < nb {
					r.missBuckets[i] += p.Misses - last
					k := &r.buckets[i]
					k.n, k.target, k.arrival = k.n+1, k.target+p.Target, k.arrival+p.ArrivalRate
					var t float64
					for _, s := range p.StartSeconds {
						t = max(t, s)
					}
					k.start += t
				}
				last = p.Misses
			}
		}
	}()

	t0 := time.Now()
	var at time.Duration
	for {
		at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if at >= runFor {
			break
		}
		time.Sleep(time.Until(t0.Add(at)))
		r.arrivals++
		wg.Go(func() {
			d, err := holdPing(addr, hold)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			r.ttfb = append(r.ttfb, d)
		})
	}
	time.Sleep(time.Until(t0.Add(runFor)))
	close(stopSampling)
	<-sampled
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("%s: %d of %d sessions failed; first: %v", name, errs, r.arrivals, firstErr)
	}
	dockertest.Eventually(b, time.Minute, name+": sessions did not end", func() bool {
		return len(logs.Lines("session end", "service="+name))-endsBefore >= r.arrivals
	})
	after := poolPlain()
	r.hits, r.misses = after.Hits-before.Hits, after.Misses-before.Misses
	if steady.Max == 0 { // a run shorter than its warm-up
		steady = before
	}
	r.steadyHits, r.steadyMisses = after.Hits-steady.Hits, after.Misses-steady.Misses
	r.logPool = len(logs.Lines("session end", "service="+name, "from=pool")) - poolBefore
	r.logNew = len(logs.Lines("session end", "service="+name, "from=new")) - newBefore
	r.kept, r.target = float64(kept)/float64(max(samples, 1)), float64(target)/float64(max(samples, 1))
	var starts []string
	for daemon, s := range after.StartSeconds {
		starts = append(starts, fmt.Sprintf("%s %.0fms", daemon, s*1000))
	}
	r.startTime, r.arrivalRate = strings.Join(starts, ", "), after.ArrivalRate
	return r
}

// poolOf is service name's pool as Ganger reports it.
func poolOf(b *testing.B, srv *server.Server, name string) *view.Pool {
	for _, s := range srv.Services() {
		if s.Name == name {
			if s.Pool == nil {
				b.Fatalf("service %s reports no pool", name)
			}
			return s.Pool
		}
	}
	b.Fatalf("no service %s", name)
	return nil
}

// settle waits until no session of names is live, every pool is full and
// nothing starts, then a few seconds more.
func settle(b *testing.B, srv *server.Server, names []string) {
	dockertest.Eventually(b, 2*time.Minute, "services did not settle", func() bool {
		for _, s := range srv.Services() {
			for _, n := range names {
				if s.Name == n && (s.Live > 0 || s.Pool == nil || s.Pool.Starting > 0 || s.Pool.Ready < s.Pool.Target) {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(3 * time.Second)
}

// baselineGone checks that the raw loop left none of its containers (it
// removes each before its next).
func baselineGone(b *testing.B, d *docker.Daemon, owner string) {
	for _, m := range dockertest.Owned(b, d, owner) {
		if m.Labels[ganger.LabelService] == "bench" {
			b.Fatalf("raw loop left container %s (%s)", m.Name, m.State)
		}
	}
}
