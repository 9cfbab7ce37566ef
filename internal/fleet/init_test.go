package fleet_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

var initA = ganger.Init{Binary: "/ganger-init", Digest: "aaaaaaaaaaaa"}

func underInit(service string) fleet.Request {
	r := request(service)
	r.Spec.Init = initA
	return r
}

// Launches under ganger-init wait for it to be on their daemon, provided
// once however many wait; a launch that gives up waiting costs no call,
// and does not stop the provision.
func TestInitProvidedOnceBeforeCreates(t *testing.T) {
	fake := fleettest.New(t, "img")
	release := make(chan struct{})
	fake.InitHook = func(ctx context.Context, in ganger.Init) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := startFleet(t, 0, fake)
	var waiting []chan result
	for range 5 {
		waiting = append(waiting, launch(context.Background(), f, underInit("svc")))
	}
	ctx, cancel := context.WithCancel(context.Background())
	quitter := launch(ctx, f, underInit("svc"))
	eventually(t, "ganger-init not being provided", func() bool { return fake.Calls("ProvideInit") == 1 })
	cancel()
	if r := await(t, quitter); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("launch that gave up: %v; want canceled", r.err)
	}
	if n := fake.Calls("Create"); n != 0 {
		t.Fatalf("%d creates before ganger-init is on the daemon", n)
	}
	close(release)
	for _, ch := range waiting {
		if r := await(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n, v := fake.Calls("ProvideInit"), fake.InitVolumes(); n != 1 || len(v) != 1 || v[0] != initA.Volume() {
		t.Fatalf("provided %d times, volumes %v; want once, %s", n, v, initA.Volume())
	}
}

// PrepareInit provides on the daemons that are up; one that joins later
// is given it as it joins, before any launch; one that comes back after
// it was away is asked again (its data may have gone with it).
func TestInitOnJoin(t *testing.T) {
	d0, d1 := fleettest.New(t, "img"), fleettest.New(t, "img")
	var down atomic.Bool
	d0.PingHook = func() error {
		if down.Load() {
			return errors.New("connection refused")
		}
		return nil
	}
	f, err := newFleet(t, fleet.Options{Health: fleet.Health{Interval: 20 * time.Millisecond, Failures: 1}}, 0, d0)
	if err != nil {
		t.Fatal(err)
	}
	f.PrepareInit(initA)
	f.PrepareInit(ganger.Init{}) // no init: nothing
	eventually(t, "ganger-init not provided on d0", func() bool { return len(d0.InitVolumes()) == 1 })
	if err := f.Add(fleet.Daemon{Name: "d1", Backend: d1, MaxContainers: 10}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "d1 never joined", func() bool { ds := f.Daemons(); return len(ds) == 2 && ds[1].Up })
	if v := d1.InitVolumes(); len(v) != 1 || d1.Calls("Create") != 0 {
		t.Fatalf("d1 joined with ganger-init volumes %v; want it provided as it joined", v)
	}
	down.Store(true)
	eventually(t, "d0 not marked down", func() bool { return !f.Daemons()[0].Up })
	d0.DropInitVolume(initA.Volume())
	down.Store(false)
	eventually(t, "d0 not back with ganger-init", func() bool { return f.Daemons()[0].Up && len(d0.InitVolumes()) == 1 })
	if n := d0.Calls("ProvideInit"); n != 2 {
		t.Fatalf("d0 provided %d times; want 2 (at first, and after it came back without it)", n)
	}
}

// A provision that fails fails the launches waiting for it (create
// failed); the next launch tries again.
func TestInitFailureTriedAgain(t *testing.T) {
	fake := fleettest.New(t, "img")
	var fail atomic.Bool
	fail.Store(true)
	fake.InitHook = func(context.Context, ganger.Init) error {
		if fail.Load() {
			return errors.New("import refused")
		}
		return nil
	}
	f := startFleet(t, 0, fake)
	if _, err := f.Launch(context.Background(), underInit("svc")); ganger.OutcomeOf(err, "") != ganger.CreateFailed {
		t.Fatalf("launch: %v; want create failed", err)
	}
	fail.Store(false)
	c, err := f.Launch(context.Background(), underInit("svc"))
	if err != nil {
		t.Fatal(err)
	}
	c.Destroy()
	fleettest.WaitRemovals(t, f)
}

// What a provision creates for a while (labelled with the node and the
// digest) is not swept as an orphan while it runs; once it is over, it
// would be.
func TestInitNotSweptWhileProviding(t *testing.T) {
	fake := fleettest.New(t, "img")
	entered, release := make(chan struct{}), make(chan struct{})
	fake.InitHook = func(ctx context.Context, in ganger.Init) error {
		_, err := fake.Create(ctx, ganger.Spec{Name: in.Volume() + "-fill-n", Image: "img",
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelOwner: "n", ganger.LabelInit: in.Digest}})
		close(entered)
		select {
		case <-release:
		case <-ctx.Done(): // the fleet closes
		}
		fake.Remove(context.Background(), in.Volume()+"-fill-n")
		return err
	}
	f, err := newFleet(t, fleet.Options{Reconcile: 10 * time.Millisecond}, 0, fake)
	if err != nil {
		t.Fatal(err)
	}
	f.PrepareInit(initA)
	<-entered
	lists := fake.Calls("ListManaged")
	eventually(t, "no reconcile passes", func() bool { return fake.Calls("ListManaged") >= lists+5 })
	if n := fake.Calls("Remove"); n != 0 {
		t.Fatalf("%d removals while ganger-init was being provided", n)
	}
	close(release)
	eventually(t, "ganger-init not provided", func() bool { return len(fake.InitVolumes()) == 1 })
}

// A container under ganger-init that exits before it is ready makes the
// next launch ask the daemon again: a volume that went is provided anew.
func TestInitAskedAgainAfterEarlyExit(t *testing.T) {
	fake := fleettest.New(t, "img")
	fake.Unready = true // every container exits before it is ready
	f := startFleet(t, 0, fake)
	f.PrepareInit(initA)
	eventually(t, "ganger-init not provided", func() bool { return len(fake.InitVolumes()) == 1 })
	res := launch(context.Background(), f, underInit("svc"))
	var id string
	eventually(t, "container not started", func() bool {
		l, _ := fake.ListManaged(context.Background(), "n")
		if len(l) == 1 && l[0].State == "running" {
			id = l[0].ID
		}
		return id != ""
	})
	fake.DropInitVolume(initA.Volume()) // say, removed by hand
	fake.Exit(id, 127)
	if r := await(t, res); ganger.OutcomeOf(r.err, "") != ganger.Exited {
		t.Fatalf("launch: %v; want exited", r.err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res = launch(ctx, f, underInit("svc"))
	eventually(t, "not provided again, or no create after", func() bool { return fake.Calls("ProvideInit") == 2 && fake.Calls("Create") == 2 })
	cancel()
	await(t, res)
	fleettest.WaitRemovals(t, f)
}
