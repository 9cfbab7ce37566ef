package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
	"github.com/ganger-dev/ganger/internal/sched"
)

// bound caps every wait for something asynchronous; no claim about speed.
const bound = 10 * time.Second

// newFleet starts a fleet of node "n" over fakes (daemons d0, d1, ...),
// with service "svc" (queue 100) and "one" (at most one container).
func newFleet(t *testing.T, opt fleet.Options, maxStarts int, fakes ...*fleettest.Fake) (*fleet.Fleet, error) {
	t.Helper()
	opt.Node = "n"
	f := fleet.New(opt)
	for i, b := range fakes {
		if err := f.Add(fleet.Daemon{Name: fmt.Sprint("d", i), Backend: b, MaxContainers: 100, MaxStarts: maxStarts}); err != nil {
			t.Fatal(err)
		}
	}
	f.SetImages([]fleet.Image{{Service: "svc", Ref: "img", Pull: ganger.PullMissing}, {Service: "one", Ref: "img", Pull: ganger.PullMissing}})
	f.Sched().AddService("svc", sched.ServiceLimits{QueueMax: 100})
	f.Sched().AddService("one", sched.ServiceLimits{MaxContainers: 1, QueueMax: 10})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		f.Close(ctx)
	})
	if err := f.Start(context.Background()); err != nil {
		return f, err
	}
	for _, b := range fakes { // the event streams are open: no exit is caught up late
		eventually(t, "event stream opened", func() bool { return b.Calls("Events") > 0 })
	}
	return f, nil
}

func startFleet(t *testing.T, maxStarts int, fakes ...*fleettest.Fake) *fleet.Fleet {
	t.Helper()
	f, err := newFleet(t, fleet.Options{}, maxStarts, fakes...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var serial atomic.Int64

func request(service string) fleet.Request {
	name := fmt.Sprint("c", serial.Add(1))
	return fleet.Request{
		Service: service, QueueTimeout: bound, ReadyTimeout: bound, Backoff: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		Spec: ganger.Spec{Name: name, Image: "img", Port: 7777, Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: "n"}},
	}
}

func eventually(t *testing.T, msg string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(bound); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", bound, msg)
		}
	}
}

// blocker is a CreateHook that holds the creates of the names given until
// released, and records the order of every create.
type blocker struct {
	mu      sync.Mutex
	names   map[string]bool
	order   []string
	entered chan struct{}
	release chan struct{}
	left    chan error // the create's ctx.Err() as a held create ends
}

func newBlocker(names ...string) *blocker {
	b := &blocker{names: map[string]bool{}, entered: make(chan struct{}, 10), release: make(chan struct{}), left: make(chan error, 10)}
	for _, n := range names {
		b.names[n] = true
	}
	return b
}

func (b *blocker) hook(ctx context.Context, spec ganger.Spec) error {
	b.mu.Lock()
	b.order = append(b.order, spec.Name)
	held := b.names[spec.Name]
	b.mu.Unlock()
	if held {
		b.entered <- struct{}{}
		<-b.release
		b.left <- ctx.Err()
	}
	return nil
}

func (b *blocker) created() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.order...)
}

type result struct {
	c   *fleet.Container
	err error
}

func launch(ctx context.Context, f *fleet.Fleet, r fleet.Request) chan result {
	ch := make(chan result, 1)
	go func() { c, err := f.Launch(ctx, r); ch <- result{c, err} }()
	return ch
}

func await(t *testing.T, ch chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(bound):
		t.Fatalf("launch still running after %s", bound)
		return result{}
	}
}

// (a) A client leaving during create does not cut the create short: the
// container is made, removed, never started, and its slot freed.
func TestClientLeavesDuringCreate(t *testing.T) {
	fake, blk := fleettest.New(t, "img"), newBlocker()
	fake.CreateHook = blk.hook
	f := startFleet(t, 0, fake)
	r := request("svc")
	blk.names[r.Spec.Name] = true
	ctx, cancel := context.WithCancel(context.Background())
	res := launch(ctx, f, r)
	<-blk.entered
	cancel()
	got := await(t, res) // returns while the create goes on
	close(blk.release)
	if !errors.Is(got.err, context.Canceled) {
		t.Fatalf("launch: %v; want canceled", got.err)
	}
	fleettest.WaitRemovals(t, f)
	if err := <-blk.left; err != nil {
		t.Errorf("the create's ctx ended with the client's: %v", err)
	}
	if fake.Calls("Create") != 1 || fake.Calls("Start") != 0 || fake.Live() != 0 || len(fake.Removed()) != 1 {
		t.Errorf("creates %d starts %d live %d removed %v; want 1 0 0 and one", fake.Calls("Create"), fake.Calls("Start"), fake.Live(), fake.Removed())
	}
	if n := f.Sched().Used("d0"); n != 0 {
		t.Errorf("slots used %d; want 0", n)
	}
}

// (b) A launch that gives up while it waits for its turn costs no call.
// (c) Turns come in arrival order.
func TestGate(t *testing.T) {
	fake, blk := fleettest.New(t, "img"), newBlocker()
	fake.CreateHook = blk.hook
	f := startFleet(t, 1, fake)
	first := request("svc")
	blk.names[first.Spec.Name] = true
	held := launch(context.Background(), f, first)
	<-blk.entered
	ctx, cancel := context.WithCancel(context.Background())
	quitter := launch(ctx, f, request("svc"))
	eventually(t, "no waiter at the gate", func() bool { return f.Daemons()[0].Waiting == 1 })
	cancel()
	if r := await(t, quitter); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("launch: %v; want canceled", r.err)
	}
	eventually(t, "the launch that gave up is still at the gate", func() bool { return f.Daemons()[0].Waiting == 0 })
	want := []string{first.Spec.Name}
	var rest []chan result
	for i := range 5 {
		r := request("svc")
		want = append(want, r.Spec.Name)
		rest = append(rest, launch(context.Background(), f, r))
		eventually(t, "launch not at the gate", func() bool { return f.Daemons()[0].Waiting == i+1 })
	}
	close(blk.release)
	for _, ch := range append(rest, held) {
		if r := await(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if got := blk.created(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("creates %v; want %v (the quitter none, the rest in arrival order)", got, want)
	}
}

// (d) Destroy from many goroutines removes once.
func TestDestroyOnce(t *testing.T) {
	fake := fleettest.New(t, "img")
	f := startFleet(t, 0, fake)
	c, err := f.Launch(context.Background(), request("svc"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(c.Destroy)
	}
	wg.Wait()
	fleettest.WaitRemovals(t, f)
	if n := fake.Calls("Remove"); n != 1 || fake.Live() != 0 {
		t.Fatalf("remove calls %d, live %d; want 1, 0", n, fake.Live())
	}
}

// (e) Removal is retried until the daemon confirms; only then is the slot
// freed.
func TestRemoveRetried(t *testing.T) {
	fake := fleettest.New(t, "img")
	var tries, usedAtSuccess atomic.Int64
	var f *fleet.Fleet
	fake.RemoveHook = func(string) error {
		if tries.Add(1) <= 3 {
			return errors.New("daemon busy")
		}
		usedAtSuccess.Store(int64(f.Sched().Used("d0")))
		return nil
	}
	f = startFleet(t, 0, fake)
	c, err := f.Launch(context.Background(), request("svc"))
	if err != nil {
		t.Fatal(err)
	}
	c.Destroy()
	fleettest.WaitRemovals(t, f)
	if tries.Load() != 4 || usedAtSuccess.Load() != 1 || f.Sched().Used("d0") != 0 || fake.Live() != 0 {
		t.Fatalf("tries %d, slots used at success %d and after %d, live %d; want 4 1 0 0", tries.Load(), usedAtSuccess.Load(), f.Sched().Used("d0"), fake.Live())
	}
}

// (f) An exit after readiness closes Exited; one before fails the launch.
func TestExit(t *testing.T) {
	fake := fleettest.New(t, "img")
	f := startFleet(t, 0, fake)
	c, err := f.Launch(context.Background(), request("svc"))
	if err != nil {
		t.Fatal(err)
	}
	fake.Exit(c.ID(), 3)
	select {
	case <-c.Exited():
	case <-time.After(bound):
		t.Fatal("exit not reported")
	}
	if c.Exit().Code != 3 {
		t.Fatalf("exit %+v; want code 3", c.Exit())
	}

	early := fleettest.New(t, "img")
	early.Unready, early.LogText = true, "boom"
	f = startFleet(t, 0, early)
	res := launch(context.Background(), f, request("svc"))
	var id string
	eventually(t, "container not started", func() bool {
		l, _ := early.ListManaged(context.Background(), "n")
		if len(l) == 1 && l[0].State == "running" {
			id = l[0].ID
		}
		return id != ""
	})
	early.Exit(id, 3)
	r := await(t, res)
	var xe *fleet.ExitError
	if ganger.OutcomeOf(r.err, "") != ganger.Exited || !errors.As(r.err, &xe) || xe.Exit.Code != 3 || xe.Output() != "boom" {
		t.Fatalf("launch: %v; want outcome exited, code 3, logs", r.err)
	}
}

// (g) A client waits at most QueueTimeout for room, then ReadyTimeout.
func TestTimeouts(t *testing.T) {
	fake, blk := fleettest.New(t, "img"), newBlocker()
	fake.CreateHook = blk.hook
	f := startFleet(t, 0, fake)
	if _, err := f.Launch(context.Background(), request("one")); err != nil {
		t.Fatal(err)
	}
	r := request("one")
	r.QueueTimeout = 200 * time.Millisecond
	if _, err := f.Launch(context.Background(), r); ganger.OutcomeOf(err, "") != ganger.QueueTimeout {
		t.Fatalf("launch with no room: %v; want queue timeout", err)
	}
	r = request("svc")
	r.ReadyTimeout = 300 * time.Millisecond
	blk.mu.Lock()
	blk.names[r.Spec.Name] = true
	blk.mu.Unlock()
	got := await(t, launch(context.Background(), f, r)) // the hook still holds the create
	close(blk.release)
	if ganger.OutcomeOf(got.err, "") != ganger.NotReady {
		t.Fatalf("launch with a stuck create: %v; want not ready", got.err)
	}
}

// (h) Two daemons that are one engine are refused, both named.
func TestSameEngine(t *testing.T) {
	a, b := fleettest.New(t, "img"), fleettest.New(t, "img")
	a.EngineID, b.EngineID = "same", "same"
	_, err := newFleet(t, fleet.Options{}, 0, a, b)
	if err == nil || !strings.Contains(err.Error(), "d0") || !strings.Contains(err.Error(), "d1") {
		t.Fatalf("start: %v; want an error naming d0 and d1", err)
	}
}

// (i) Running out of file descriptors never marks a daemon down.
// (j) A daemon marked down keeps the containers it has.
func TestHealth(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{{"out of files", fmt.Errorf("ping: %w", syscall.EMFILE)}, {"daemon gone", errors.New("connection refused")}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := fleettest.New(t, "img")
			var failing atomic.Bool
			fake.PingHook = func() error {
				if failing.Load() {
					return tc.err
				}
				return nil
			}
			f, err := newFleet(t, fleet.Options{Health: fleet.Health{Interval: 20 * time.Millisecond, Failures: 1}}, 0, fake)
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.Launch(context.Background(), request("svc"))
			if err != nil {
				t.Fatal(err)
			}
			failing.Store(true)
			down := !errors.Is(tc.err, syscall.EMFILE)
			pings := fake.Calls("Ping") + fake.Calls("Engine")
			eventually(t, "daemon state not as expected over 10 more pings", func() bool {
				up := f.Daemons()[0].Up
				if !down && !up {
					t.Fatal("out of files marked the daemon down")
				}
				return up != down && fake.Calls("Ping")+fake.Calls("Engine") >= pings+10
			})
			select {
			case <-c.Exited():
				t.Fatalf("container ended with its daemon's health: %+v", c.Exit())
			default:
			}
			if fake.Calls("Remove") != 0 || fake.Live() != 1 {
				t.Fatalf("remove calls %d, live %d; want 0, 1", fake.Calls("Remove"), fake.Live())
			}
		})
	}
}

// A daemon removed before Start is just forgotten (it has no loops yet).
func TestRemoveBeforeStart(t *testing.T) {
	f := fleet.New(fleet.Options{Node: "n"})
	f.Add(fleet.Daemon{Name: "d0", Backend: fleettest.New(t, "img"), MaxContainers: 1})
	if err := f.Remove("d0"); err != nil || len(f.Daemons()) != 0 {
		t.Fatalf("remove: %v; daemons left %v", err, f.Daemons())
	}
}

// Daemons come and go while the fleet runs: one added after Start joins
// (its health loop finds it answering) and takes containers; one removed
// takes no more, and its name is free again.
func TestDaemonsAddedAndRemovedAtRunTime(t *testing.T) {
	d0, d1 := fleettest.New(t, "img"), fleettest.New(t, "img")
	f, err := newFleet(t, fleet.Options{Health: fleet.Health{Interval: 20 * time.Millisecond}}, 0, d0)
	if err != nil {
		t.Fatal(err)
	}
	f.Drain("d0", true) // nothing more goes to d0
	if err := f.Add(fleet.Daemon{Name: "d1", Backend: d1, MaxContainers: 10}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "d1 never joined", func() bool {
		ds := f.Daemons()
		return len(ds) == 2 && ds[1].Name == "d1" && ds[1].Up
	})
	c, err := f.Launch(context.Background(), request("svc"))
	if err != nil || c.Daemon() != "d1" {
		t.Fatalf("launch after adding d1: %v on %v; want d1", err, c)
	}
	c.Destroy()
	fleettest.WaitRemovals(t, f)
	if err := f.Remove("d1"); err != nil {
		t.Fatal(err)
	}
	if ds := f.Daemons(); len(ds) != 1 || ds[0].Name != "d0" {
		t.Fatalf("daemons after removing d1: %+v", ds)
	}
	r := request("svc")
	r.QueueTimeout = 50 * time.Millisecond
	if _, err := f.Launch(context.Background(), r); ganger.OutcomeOf(err, "") != ganger.QueueTimeout {
		t.Fatalf("launch with d0 drained and d1 removed: %v; want a queue timeout", err)
	}
	if err := f.Add(fleet.Daemon{Name: "d1", Backend: fleettest.New(t, "img"), MaxContainers: 10}); err != nil {
		t.Fatalf("adding d1 again: %v", err)
	}
}
