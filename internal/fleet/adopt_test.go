package fleet_test

import (
	"context"
	"io"
	"testing"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
)

// A container launched to be kept outlives its fleet's Close; the next
// run's sweeps leave it while Keep says so, Adopt takes it back (it
// answers, counts against capacity, its exit is seen), and Destroy removes
// it. A run that does not keep it sweeps it away.
func TestKeepAndAdopt(t *testing.T) {
	fake := fleettest.New(t, "img")
	first := startFleet(t, 0, fake)
	r := request("svc")
	r.Keep = true
	r.Spec.Labels[ganger.LabelInstance] = "i1"
	c, err := first.Launch(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	short := request("svc") // an ordinary one goes at Close
	if _, err := first.Launch(context.Background(), short); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	first.Close(ctx)
	if fake.Live() != 1 {
		t.Fatalf("%d containers after Close; want the kept one only", fake.Live())
	}

	keep := func(m ganger.Managed) bool { return m.Labels[ganger.LabelInstance] == "i1" }
	second, err := newFleet(t, fleet.Options{Keep: keep}, 0, fake)
	if err != nil {
		t.Fatal(err)
	}
	if fake.Live() != 1 {
		t.Fatal("the start-up sweep removed a container that Keep keeps")
	}
	list, err := fake.ListManaged(context.Background(), "n")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	adopted, err := second.Adopt(context.Background(), "d0", "svc", list[0], 7777)
	if err != nil {
		t.Fatal(err)
	}
	if adopted.ID() != c.ID() || adopted.Addr() == "" {
		t.Fatalf("adopted %s at %q; want %s with an address", adopted.ID(), adopted.Addr(), c.ID())
	}
	conn, err := adopted.Dial()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "hi")
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	conn.Close()
	if used := second.Sched().Daemons()[0].Used; used != 1 {
		t.Fatalf("daemon holds %d leases; want the adopted container counted", used)
	}
	if _, err := second.Adopt(context.Background(), "d0", "svc", list[0], 7777); err == nil {
		t.Fatal("adopted twice")
	}
	fake.Exit(adopted.ID(), 3)
	select {
	case <-adopted.Exited():
	case <-ctx.Done():
		t.Fatal("the adopted container's exit was not seen")
	}
	adopted.Destroy()
	fleettest.WaitRemovals(t, second)
	if fake.Live() != 0 || second.Sched().Daemons()[0].Used != 0 {
		t.Fatalf("after Destroy: %d live, %d leases", fake.Live(), second.Sched().Daemons()[0].Used)
	}

	// Kept, then a run with no Keep: swept at start-up.
	if _, err := second.Launch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	second.Close(ctx)
	startFleet(t, 0, fake)
	if fake.Live() != 0 {
		t.Fatal("a kept container that no one keeps survived the start-up sweep")
	}
}
