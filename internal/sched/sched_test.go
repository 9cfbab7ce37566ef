package sched

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// cluster is a scheduler with daemons d0..dn-1, each up with the image of
// service "s" and room for max.
func cluster(n, max int, lim ServiceLimits) *Scheduler {
	s := New(0)
	s.AddService("s", lim)
	for i := range n {
		name := fmt.Sprintf("d%d", i)
		s.AddDaemon(name, max)
		s.SetUp(name, true)
		s.SetImage(name, "s", true)
	}
	return s
}

func acquire(t *testing.T, s *Scheduler, svc string) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l, err := s.Acquire(ctx, svc)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return l
}

func counts(s *Scheduler, n int) string {
	out := ""
	for i := range n {
		out += fmt.Sprint(s.Used(fmt.Sprintf("d%d", i)))
	}
	return out
}

func TestSpreadFillsEvenly(t *testing.T) {
	s := cluster(3, 3, ServiceLimits{Policy: Spread})
	for range 9 {
		acquire(t, s, "s")
	}
	if got := counts(s, 3); got != "333" {
		t.Fatalf("got %s; want 333", got)
	}
}

func TestSpreadRotatesAmongEquals(t *testing.T) {
	s := cluster(3, 10, ServiceLimits{Policy: Spread})
	seen := map[string]bool{}
	for range 3 {
		l := acquire(t, s, "s")
		seen[l.Daemon()] = true
		l.Release() // back to all-equal: without rotation d0 would win every time
	}
	if len(seen) != 3 {
		t.Fatalf("got %v; want each daemon used once", seen)
	}
}

func TestSpreadIsRelativeToMax(t *testing.T) {
	s := New(0)
	s.AddService("s", ServiceLimits{})
	for name, max := range map[string]int{"small": 2, "big": 10} {
		s.AddDaemon(name, max)
		s.SetUp(name, true)
		s.SetImage(name, "s", true)
	}
	for range 6 {
		acquire(t, s, "s")
	}
	if s.Used("small") != 1 || s.Used("big") != 5 {
		t.Fatalf("small %d big %d; want 1 and 5 (half full each)", s.Used("small"), s.Used("big"))
	}
}

func TestBinpackFillsOneFirst(t *testing.T) {
	s := cluster(3, 3, ServiceLimits{Policy: Binpack})
	for range 4 {
		acquire(t, s, "s")
	}
	if got := counts(s, 3); got != "310" {
		t.Fatalf("got %s; want 310", got)
	}
}

func TestSkipsDownAndImageless(t *testing.T) {
	s := cluster(3, 3, ServiceLimits{})
	s.SetUp("d0", false)
	s.SetImage("d1", "s", false)
	for range 3 {
		if l := acquire(t, s, "s"); l.Daemon() != "d2" {
			t.Fatalf("placed on %s; want d2, the only one up with the image", l.Daemon())
		}
	}
}

func TestOthersShareTheDaemon(t *testing.T) {
	s := cluster(2, 3, ServiceLimits{})
	s.SetOthers("d0", 3)
	for range 3 {
		if l := acquire(t, s, "s"); l.Daemon() != "d1" {
			t.Fatalf("placed on %s; d0 is full of other nodes' containers", l.Daemon())
		}
	}
}

func TestCaps(t *testing.T) {
	s := cluster(2, 10, ServiceLimits{MaxContainers: 2})
	acquire(t, s, "s")
	acquire(t, s, "s")
	if _, err := s.Acquire(context.Background(), "s"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("got %v; want ErrQueueFull past the service cap with no queue", err)
	}
	g := New(1)
	g.AddService("a", ServiceLimits{})
	g.AddService("b", ServiceLimits{})
	g.AddDaemon("d", 10)
	g.SetUp("d", true)
	g.SetImage("d", "a", true)
	g.SetImage("d", "b", true)
	acquire(t, g, "a")
	if _, err := g.Acquire(context.Background(), "b"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("got %v; want ErrQueueFull past max_sessions", err)
	}
}

func TestQueueIsFIFOAndWokenByRelease(t *testing.T) {
	s := cluster(1, 1, ServiceLimits{QueueMax: 3})
	held := acquire(t, s, "s")
	got := make(chan int, 3)
	for i := range 3 {
		go func() {
			l, err := s.Acquire(context.Background(), "s")
			if err == nil {
				got <- i
				l.Release()
			}
		}()
		waitQueued(t, s, i+1) // enqueue in order 0, 1, 2
	}
	if _, err := s.Acquire(context.Background(), "s"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("got %v; want ErrQueueFull with 3 waiting", err)
	}
	held.Release()
	for want := range 3 {
		if i := <-got; i != want {
			t.Fatalf("granted %d; want %d (first come, first served)", i, want)
		}
	}
}

func TestQueueTimeoutLeavesTheQueue(t *testing.T) {
	s := cluster(1, 1, ServiceLimits{QueueMax: 5})
	held := acquire(t, s, "s")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx, "s"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want the deadline", err)
	}
	if n := s.Queued("s"); n != 0 {
		t.Fatalf("%d still queued after the timeout", n)
	}
	held.Release()
	if s.Used("d0") != 0 {
		t.Fatal("a slot leaked to a waiter that left")
	}
}

func TestDaemonUpWakesTheQueue(t *testing.T) {
	s := cluster(1, 1, ServiceLimits{QueueMax: 1})
	s.SetUp("d0", false)
	done := make(chan *Lease)
	go func() {
		l, _ := s.Acquire(context.Background(), "s")
		done <- l
	}()
	waitQueued(t, s, 1)
	s.SetUp("d0", true)
	if l := <-done; l == nil || l.Daemon() != "d0" {
		t.Fatalf("got %v; want a lease on d0 once it is up", l)
	}
}

// A waiter of a service at its cap does not block another service.
func TestNoHeadOfLineBlockingAcrossServices(t *testing.T) {
	s := New(0)
	s.AddService("a", ServiceLimits{MaxContainers: 1, QueueMax: 1})
	s.AddService("b", ServiceLimits{QueueMax: 1})
	s.AddDaemon("d", 1)
	s.SetUp("d", true)
	s.SetImage("d", "a", true)
	s.SetImage("d", "b", true)
	la := acquire(t, s, "a")
	go s.Acquire(context.Background(), "a") // waits: a is at its cap
	waitQueued(t, s, 1)
	bDone := make(chan *Lease)
	go func() { l, _ := s.Acquire(context.Background(), "b"); bDone <- l }()
	for s.Queued("b") == 0 {
		time.Sleep(time.Millisecond)
	}
	s.AddDaemon("d2", 1) // room for b only: a is still at its cap
	s.SetImage("d2", "b", true)
	s.SetUp("d2", true)
	if l := <-bDone; l.Daemon() != "d2" {
		t.Fatalf("b placed on %s", l.Daemon())
	}
	la.Release()
}

func waitQueued(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Queued("s") != n && s.Queued("a") != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue never reached %d", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReleaseTwiceIsHarmless(t *testing.T) {
	s := cluster(1, 2, ServiceLimits{})
	l := acquire(t, s, "s")
	acquire(t, s, "s")
	l.Release()
	l.Release()
	if s.Used("d0") != 1 {
		t.Fatalf("used %d; want 1", s.Used("d0"))
	}
}

func TestDrainedDaemonTakesNothingNew(t *testing.T) {
	s := cluster(2, 3, ServiceLimits{})
	held := acquire(t, s, "s")
	s.SetDrained(held.Daemon(), true)
	for range 3 {
		if l := acquire(t, s, "s"); l.Daemon() == held.Daemon() {
			t.Fatal("placed on a drained daemon")
		}
	}
	s.SetDrained(held.Daemon(), false)
	if l := acquire(t, s, "s"); l.Daemon() != held.Daemon() {
		t.Fatalf("undrained daemon not used: got %s", l.Daemon())
	}
}

// A request that waits for room another service's container could give
// is starvation: listeners hear of it and Starved says so. One waiting at
// its own service's cap is not: no other container's end helps it.
func TestStarved(t *testing.T) {
	s := cluster(1, 2, ServiceLimits{QueueMax: 10})
	s.AddService("capped", ServiceLimits{QueueMax: 10, MaxContainers: 1})
	s.SetImage("d0", "capped", true)
	heard := make(chan struct{}, 10)
	cancel := s.OnStarved("other", func() { heard <- struct{}{} }) // a pool of a third service
	own := make(chan struct{}, 10)
	cancelOwn := s.OnStarved("capped", func() { own <- struct{}{} }) // capped's own pool
	defer cancelOwn()
	defer cancel()

	held := acquire(t, s, "capped")
	ctx, stop := context.WithCancel(context.Background())
	capped := make(chan error, 1)
	go func() { _, err := s.Acquire(ctx, "capped"); capped <- err }() // waits at its own cap
	for s.Queued("capped") == 0 {
		time.Sleep(time.Millisecond)
	}
	if s.Starved("other") {
		t.Fatal("starved with only a request at its own cap waiting")
	}
	// ... but its own pool's containers count against that cap: giving
	// one back helps it.
	if !s.Starved("capped") {
		t.Fatal("a request waiting at its own cap does not starve its own pool")
	}
	select {
	case <-own:
	case <-time.After(10 * time.Second):
		t.Fatal("capped's own pool did not hear its request wait")
	}
	other := acquire(t, s, "s") // the daemon is now full
	got := make(chan *Lease, 1)
	go func() { l, _ := s.Acquire(context.Background(), "s"); got <- l }()
	select {
	case <-heard:
	case <-time.After(10 * time.Second):
		t.Fatal("no starvation heard")
	}
	if !s.Starved("other") {
		t.Fatal("not starved with a request waiting for room")
	}
	other.Release() // what a pool giving a container back does
	if l := <-got; l == nil {
		t.Fatal("no lease after room was given back")
	}
	if s.Starved("other") {
		t.Fatal("still starved once served")
	}
	stop()
	<-capped
	held.Release()
	if len(heard) != 0 {
		t.Fatalf("%d more starvations heard; want one", len(heard))
	}

	// A request no daemon could take even with room (its image is
	// nowhere) is not starvation either: pools must not give up their
	// containers, nor stop refilling, for it.
	s.AddService("imageless", ServiceLimits{QueueMax: 10})
	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	go s.Acquire(ctx, "imageless")
	for s.Queued("imageless") == 0 {
		time.Sleep(time.Millisecond)
	}
	if s.Starved("other") || len(heard) != 0 {
		t.Fatal("starved by a request that room could not serve")
	}
}
