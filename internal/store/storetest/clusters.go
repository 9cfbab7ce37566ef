package storetest

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/clusterd"
)

// RunClusters runs the suite of clusterd.Store, one subtest at a time. open
// must return a new, empty store each call; if it is an io.Closer, the suite
// closes it at the end of the subtest.
func RunClusters(t *testing.T, open func(t *testing.T) clusterd.Store) {
	tests := []struct {
		name string
		f    func(*testing.T, clusterd.Store)
	}{
		{"RoundTrip", testClusterRoundTrip},
		{"EmptyValues", testClusterEmptyValues},
		{"Upsert", testClusterUpsert},
		{"Nodes", testClusterNodes},
		{"Order", testClusterOrder},
		{"Delete", testClusterDelete},
		{"EmptyName", testClusterEmptyName},
		{"Concurrent", testClusterConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if c, ok := s.(io.Closer); ok {
				t.Cleanup(func() {
					if err := c.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
			tc.f(t, s)
		})
	}
}

// cluster has every field set, its members in every state.
func cluster(node, name string) clusterd.Record {
	return clusterd.Record{
		Node:    node,
		Name:    name,
		Size:    3,
		LastInc: 7,
		Epoch:   12,
		Secret:  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Members: []clusterd.MemberRecord{
			{
				Ordinal: 0, Incarnation: 5, State: "running",
				Daemon: "unix:///var/run/docker.sock", Container: "4f1c2b3a9d8e",
				IP: "172.17.0.2", Host: "redis-0.example.test",
				Ports: map[string]int{"6379/tcp": 40001, "16379/tcp": 40002},
				Pin:   "node-a", Ready: true, Healthy: true, Acked: 12,
			},
			{
				Ordinal: 1, Incarnation: 6, State: "leaving",
				Daemon: "tcp://10.0.0.2:2376", Container: "a1b2c3d4e5f6",
				IP: "172.17.0.3", Ports: map[string]int{"6379/tcp": 40003},
				Ready: true, Acked: 11, LeaveEpoch: 12,
			},
			{Ordinal: 2, Incarnation: 7, State: "pending"},
		},
		UpdatedAt: t0,
	}
}

// wantCluster is r as a store gives it back: UpdatedAt to the microsecond
// in UTC, no members and empty Ports nil.
func wantCluster(r clusterd.Record) clusterd.Record {
	if !r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.UpdatedAt.Truncate(time.Microsecond).UTC()
	}
	if len(r.Members) == 0 {
		r.Members = nil
	} else {
		r.Members = slices.Clone(r.Members)
		for i := range r.Members {
			if len(r.Members[i].Ports) == 0 {
				r.Members[i].Ports = nil
			}
		}
	}
	return r
}

// checkCluster fails t unless got is exactly want: UpdatedAt the same
// instant in UTC, nil and empty told apart.
func checkCluster(t *testing.T, what string, want, got clusterd.Record) {
	t.Helper()
	if !got.UpdatedAt.Equal(want.UpdatedAt) || got.UpdatedAt.IsZero() != want.UpdatedAt.IsZero() {
		t.Errorf("%s: UpdatedAt: got %s, want %s", what,
			got.UpdatedAt.Format(time.RFC3339Nano), want.UpdatedAt.Format(time.RFC3339Nano))
	}
	if !got.UpdatedAt.IsZero() && got.UpdatedAt.Location() != time.UTC {
		t.Errorf("%s: UpdatedAt in %s, want UTC", what, got.UpdatedAt.Location())
	}
	got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\ngot  %#v\nwant %#v", what, got, want)
	}
}

func mustSave(t *testing.T, s clusterd.Store, r clusterd.Record) {
	t.Helper()
	if err := s.SaveCluster(t.Context(), r); err != nil {
		t.Fatalf("SaveCluster %s/%s: %v", r.Node, r.Name, err)
	}
}

func mustClusters(t *testing.T, s clusterd.Store, node string) []clusterd.Record {
	t.Helper()
	rs, err := s.Clusters(t.Context(), node)
	if err != nil {
		t.Fatalf("Clusters %s: %v", node, err)
	}
	return rs
}

// checkClusters fails t unless node's records are exactly want, in order.
func checkClusters(t *testing.T, s clusterd.Store, node string, want ...clusterd.Record) {
	t.Helper()
	got := mustClusters(t, s, node)
	if len(got) != len(want) {
		t.Fatalf("Clusters %s: %d records %v, want %d %v", node, len(got), clusterNames(got), len(want), clusterNames(want))
	}
	for i := range want {
		checkCluster(t, fmt.Sprintf("Clusters %s [%d]", node, i), wantCluster(want[i]), got[i])
	}
}

func clusterNames(rs []clusterd.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

func testClusterRoundTrip(t *testing.T, s clusterd.Store) {
	r := cluster("node-a", "redis")
	mustSave(t, s, r)
	checkClusters(t, s, "node-a", r)

	// What is kept is a copy: changing the caller's record later changes nothing.
	r.Members[0].Ports["6379/tcp"] = 1
	r.Members[1].State = "running"
	got := mustClusters(t, s, "node-a")
	if got[0].Members[0].Ports["6379/tcp"] != 40001 || got[0].Members[1].State != "leaving" {
		t.Errorf("the stored record shares the caller's members: %+v", got[0].Members)
	}

	// Extreme values and times before 1970 survive.
	r2 := cluster("node-a", "big")
	r2.Size, r2.LastInc, r2.Epoch = 1<<31-1, 1<<63-1, -1
	r2.Members[0].Acked, r2.Members[0].Incarnation = 1<<63-1, 1<<53+1
	r2.Members[0].Host = "ünïcødé \"quoted\"\n"
	r2.UpdatedAt = time.Date(1969, 7, 20, 20, 17, 40, 999999999, loc)
	mustSave(t, s, r2)
	checkClusters(t, s, "node-a", r2, cluster("node-a", "redis"))
}

func testClusterEmptyValues(t *testing.T, s clusterd.Store) {
	// No members (nil or empty) and a zero time come back nil and zero; so
	// does a member's empty Ports.
	a := clusterd.Record{Node: "node-a", Name: "a"}
	b := clusterd.Record{Node: "node-a", Name: "b", Members: []clusterd.MemberRecord{}}
	c := clusterd.Record{Node: "node-a", Name: "c", Members: []clusterd.MemberRecord{
		{Ordinal: 0, State: "pending", Ports: map[string]int{}},
	}}
	mustSave(t, s, a)
	mustSave(t, s, b)
	mustSave(t, s, c)
	checkClusters(t, s, "node-a", a, b, c)
	got := mustClusters(t, s, "node-a")
	if got[0].Members != nil || got[1].Members != nil || got[2].Members[0].Ports != nil {
		t.Errorf("empty Members/Ports came back %#v, %#v, %#v; want nil", got[0].Members, got[1].Members, got[2].Members[0].Ports)
	}
	if !got[0].UpdatedAt.IsZero() {
		t.Errorf("a zero UpdatedAt came back %v", got[0].UpdatedAt)
	}
	// The empty node is a node like any other.
	d := clusterd.Record{Name: "d", Size: 1}
	mustSave(t, s, d)
	checkClusters(t, s, "", d)
	if rs := mustClusters(t, s, "nobody"); len(rs) != 0 {
		t.Errorf("Clusters of a node with none: %v", clusterNames(rs))
	}
}

func testClusterUpsert(t *testing.T, s clusterd.Store) {
	r := cluster("node-a", "redis")
	mustSave(t, s, r)

	// A scale down: fewer members, every field changed; nothing of the old
	// record is left.
	r2 := clusterd.Record{
		Node: "node-a", Name: "redis", Size: 1, LastInc: 9, Epoch: 13, Secret: "00ff",
		Members: []clusterd.MemberRecord{
			{Ordinal: 0, Incarnation: 9, State: "running", Ports: map[string]int{"6379/tcp": 40100}, Ready: true},
		},
		UpdatedAt: t0.Add(time.Minute),
	}
	mustSave(t, s, r2)
	checkClusters(t, s, "node-a", r2)

	// Down to none, zero time: the old values do not come back.
	r3 := clusterd.Record{Node: "node-a", Name: "redis"}
	mustSave(t, s, r3)
	checkClusters(t, s, "node-a", r3)

	// And up again.
	mustSave(t, s, r)
	checkClusters(t, s, "node-a", r)
}

func testClusterNodes(t *testing.T, s clusterd.Store) {
	a, b := cluster("node-a", "redis"), cluster("node-b", "redis")
	b.Epoch, b.Secret = 99, "bb"
	b.Members = b.Members[:1]
	mustSave(t, s, a)
	mustSave(t, s, b)
	onlyB := cluster("node-b", "etcd")
	mustSave(t, s, onlyB)
	checkClusters(t, s, "node-a", a)
	checkClusters(t, s, "node-b", onlyB, b)

	// Deleting one node's record leaves the other node's of the same name.
	if err := s.DeleteCluster(t.Context(), "node-a", "redis"); err != nil {
		t.Fatal(err)
	}
	checkClusters(t, s, "node-a")
	checkClusters(t, s, "node-b", onlyB, b)
	// A node name is matched exactly, not as a prefix or a pattern.
	checkClusters(t, s, "node-")
	checkClusters(t, s, "node-%")
}

func testClusterOrder(t *testing.T, s clusterd.Store) {
	// Saved out of order; given back in byte order of the name (upper case
	// before lower, "a-b" before "a_b" before "ab").
	names := []string{"zookeeper", "redis", "a_b", "Redis", "ab", "a-b", "etcd", "redis-2", "redis10", "redis2"}
	for i, n := range names {
		r := cluster("node-a", n)
		r.Epoch = int64(i)
		mustSave(t, s, r)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if got := clusterNames(mustClusters(t, s, "node-a")); !slices.Equal(got, want) {
		t.Errorf("Clusters: %q, want %q", got, want)
	}
}

func testClusterDelete(t *testing.T, s clusterd.Store) {
	ctx := t.Context()
	a, b, c := cluster("node-a", "a"), cluster("node-a", "b"), cluster("node-a", "c")
	mustSave(t, s, a)
	mustSave(t, s, b)
	mustSave(t, s, c)
	if err := s.DeleteCluster(ctx, "node-a", "b"); err != nil {
		t.Fatalf("DeleteCluster: %v", err)
	}
	checkClusters(t, s, "node-a", a, c)
	// Deleting it again, or one that never was, is no error.
	for _, k := range [][2]string{{"node-a", "b"}, {"node-a", "never"}, {"node-z", "a"}, {"", ""}} {
		if err := s.DeleteCluster(ctx, k[0], k[1]); err != nil {
			t.Errorf("DeleteCluster %s/%s of none: %v", k[0], k[1], err)
		}
	}
	checkClusters(t, s, "node-a", a, c)
	// A deleted record can be saved again.
	b.Epoch = 100
	mustSave(t, s, b)
	checkClusters(t, s, "node-a", a, b, c)
}

func testClusterEmptyName(t *testing.T, s clusterd.Store) {
	if err := s.SaveCluster(t.Context(), clusterd.Record{Node: "node-a", Size: 1}); err == nil {
		t.Error("SaveCluster of a record without a name succeeded")
	}
	checkClusters(t, s, "node-a")
}

func testClusterConcurrent(t *testing.T, s clusterd.Store) {
	// Eight goroutines each save their own cluster several times, the last
	// save the highest epoch: every cluster is there, at its last save.
	ctx := t.Context()
	const n, saves = 8, 5
	errs := make(chan error, n*saves)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			for e := range saves {
				r := cluster("node-a", fmt.Sprintf("c%d", i))
				r.Epoch = int64(e)
				r.Members = r.Members[:1+e%3]
				errs <- s.SaveCluster(ctx, r)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var want []clusterd.Record
	for i := range n {
		r := cluster("node-a", fmt.Sprintf("c%d", i))
		r.Epoch = saves - 1
		r.Members = r.Members[:1+(saves-1)%3]
		want = append(want, r)
	}
	checkClusters(t, s, "node-a", want...)
}
