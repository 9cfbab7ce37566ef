package discovery_test

import (
	"context"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/discovery"
	"github.com/ganger-dev/ganger/internal/dockertest"
	"github.com/ganger-dev/ganger/internal/etcdtest"
)

// Of two front-ends campaigning, exactly one leads; when it stops, the
// other takes over.
func TestElection(t *testing.T) {
	e := etcdtest.New(t)
	connect := func() *discovery.Client {
		c, err := discovery.Connect(context.Background(), discovery.Options{Endpoints: []string{e.Endpoint()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctxA, stopA := context.WithCancel(context.Background())
	defer stopA()
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	a := connect().Elect(ctxA, "autoscale", "a", 2*time.Second)
	b := connect().Elect(ctxB, "autoscale", "b", 2*time.Second)
	dockertest.Eventually(t, 30*time.Second, "nobody leads", func() bool { return a.Leading() || b.Leading() })
	for range 20 {
		if a.Leading() && b.Leading() {
			t.Fatal("both lead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	leader, other, stop := a, b, stopA
	if b.Leading() {
		leader, other, stop = b, a, stopB
	}
	stop()
	dockertest.Eventually(t, 30*time.Second, "the other never took over", func() bool { return other.Leading() && !leader.Leading() })
}
