package session

import (
	"math"
	"sync"
	"time"
)

// An adaptive pool keeps enough containers ready to cover the sessions
// expected to arrive while one container starts, with headroom for the
// randomness of arrivals; it holds its largest recent size through a quiet
// period, then shrinks back to pool.min.
//
// With arrivals at rate λ and a start (refill) taking T, the containers
// being refilled at any moment number about λT, and their count is Poisson
// distributed (M/G/∞). A session misses the pool when more than the target
// are being refilled, so the target is λT plus three standard deviations
// (√λT), rounded up: fewer than one session in a hundred misses at
// steady load, whatever the rate.
//
// λ is the rate over the last minute, counted from the first arrival in it
// (so that it reacts within a second or two when demand begins), or, when
// it is significantly higher, over the last five seconds (a step up in
// demand): the short window counts only beyond one standard deviation of
// its own Poisson noise, so chance clumps do not inflate the pool. T is a
// decaying average of the latest starts on each daemon; the slowest
// daemon counts.
const (
	longWindow  = time.Minute      // arrivals are averaged over this window
	shortWindow = 5 * time.Second  // and over this one, for steps up
	quietPeriod = time.Minute      // a target is held this long after its peak
	startDecay  = 0.1              // weight of the newest start in the average
	startGuess  = time.Second      // T before any start was measured
	startStale  = 10 * time.Minute // a daemon with no start this long is not counted
	arrivalRing = 1024             // arrival times kept
	headroom    = 3.0              // standard deviations above the mean
)

// sizer measures a service's demand and start times and gives its adaptive
// pool's target. Its clock is passed in, so tests drive it without sleeps.
type sizer struct {
	mu       sync.Mutex
	arrivals [arrivalRing]time.Time // newest at arrivals[(next-1) % arrivalRing]
	next     int                    // arrivals recorded, all time
	starts   map[string]startTime   // by daemon
	peaks    []peak                 // the largest need in each second of the quiet period, oldest first
}

type startTime struct {
	avg  time.Duration
	last time.Time
}

type peak struct {
	sec  int64 // unix second
	need float64
}

func newSizer() *sizer { return &sizer{starts: map[string]startTime{}} }

// arrive records a session that wants a container at now.
func (z *sizer) arrive(now time.Time) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.arrivals[z.next%arrivalRing] = now
	z.next++
	z.notePeak(now)
}

// started records how long a start on daemon took, from asking for a
// container until it answered.
func (z *sizer) started(daemon string, took time.Duration, now time.Time) {
	z.mu.Lock()
	defer z.mu.Unlock()
	st, ok := z.starts[daemon]
	if ok && now.Sub(st.last) <= startStale {
		st.avg = time.Duration(startDecay*float64(took) + (1-startDecay)*float64(st.avg))
	} else {
		st.avg = took
	}
	st.last = now
	z.starts[daemon] = st
	z.notePeak(now)
}

// rate returns λ, the arrivals per second (see above). The caller holds
// z.mu.
func (z *sizer) rate(now time.Time) float64 {
	long := z.window(now, longWindow)
	n, span := z.count(now, shortWindow)
	short := (float64(n) - math.Sqrt(float64(n))) / span.Seconds()
	return max(long, short)
}

// window is the rate over the last w, from the first arrival in it.
func (z *sizer) window(now time.Time, w time.Duration) float64 {
	n, span := z.count(now, w)
	return float64(n) / span.Seconds()
}

// count returns the arrivals within the last w and the time from the
// first of them until now, at least a second. If the ring holds fewer
// than w's arrivals, it counts what it holds.
func (z *sizer) count(now time.Time, w time.Duration) (int, time.Duration) {
	n := 0
	var oldest time.Time
	for i := z.next - 1; i >= 0 && i >= z.next-arrivalRing; i-- {
		t := z.arrivals[i%arrivalRing]
		if now.Sub(t) > w {
			break
		}
		n, oldest = n+1, t
	}
	return n, max(now.Sub(oldest), time.Second)
}

// startTime returns T: the slowest daemon's average start plus the hold
// before a refill begins. The caller holds z.mu.
func (z *sizer) startTime(now time.Time) time.Duration {
	var t time.Duration
	for d, st := range z.starts {
		if now.Sub(st.last) > startStale {
			delete(z.starts, d)
			continue
		}
		t = max(t, st.avg)
	}
	if t == 0 {
		t = startGuess
	}
	return t + refillHold
}

// need is the containers to keep ready now. The caller holds z.mu.
func (z *sizer) need(now time.Time) float64 {
	busy := z.rate(now) * z.startTime(now).Seconds()
	if busy == 0 {
		return 0
	}
	return busy + headroom*math.Sqrt(busy)
}

// notePeak folds the need now into the second's peak and forgets peaks
// older than the quiet period. The caller holds z.mu.
func (z *sizer) notePeak(now time.Time) {
	sec := now.Unix()
	need := z.need(now)
	if n := len(z.peaks); n > 0 && z.peaks[n-1].sec == sec {
		z.peaks[n-1].need = max(z.peaks[n-1].need, need)
	} else {
		z.peaks = append(z.peaks, peak{sec, need})
	}
	cut := 0
	for cut < len(z.peaks) && now.Sub(time.Unix(z.peaks[cut].sec, 0)) > quietPeriod {
		cut++
	}
	z.peaks = z.peaks[cut:]
}

// target returns the pool's size now: the largest need of the quiet
// period, rounded up, within [lo, hi].
func (z *sizer) target(now time.Time, lo, hi int) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.notePeak(now)
	var top float64
	for _, p := range z.peaks {
		top = max(top, p.need)
	}
	return min(max(int(math.Ceil(top-1e-9)), lo), hi)
}

// Demand is what a sizer measured, for operators.
type Demand struct {
	Rate   float64                  // arrivals per second
	Starts map[string]time.Duration // average start by daemon
}

func (z *sizer) demand(now time.Time) Demand {
	z.mu.Lock()
	defer z.mu.Unlock()
	d := Demand{Rate: z.rate(now), Starts: map[string]time.Duration{}}
	for name, st := range z.starts {
		d.Starts[name] = st.avg
	}
	return d
}
