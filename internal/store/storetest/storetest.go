// Package storetest is the conformance suite every instance.Store passes:
// the SQLite and the PostgreSQL stores run the same tests.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/instance"
)

// Run runs the suite, one subtest at a time. open must return a new, empty
// store each call; the suite closes it at the end of the subtest.
func Run(t *testing.T, open func(t *testing.T) instance.Store) {
	tests := []struct {
		name string
		f    func(*testing.T, instance.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyValues", testEmptyValues},
		{"NotFound", testNotFound},
		{"DuplicateID", testDuplicateID},
		{"Update", testUpdate},
		{"UpdateAbort", testUpdateAbort},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"List", testList},
		{"Live", testLive},
		{"Quota", testQuota},
		{"QuotaConcurrent", func(t *testing.T, s instance.Store) { QuotaRace(t, s) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.f(t, s)
		})
	}
}

// QuotaRace has twenty goroutines create a record each for one owner with
// perOwner 2, spread round-robin over stores (which must all share one
// database: several stores are several front-ends), and checks that exactly
// two succeed and eighteen get ErrQuota.
func QuotaRace(t *testing.T, stores ...instance.Store) {
	t.Helper()
	ctx := t.Context()
	const n, perOwner = 20, 2
	base := time.Now()
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := record(fmt.Sprintf("race-%02d", i), "redis", "racer", instance.Starting, base.Add(time.Duration(i)*time.Millisecond))
			<-start
			errs[i] = stores[i%len(stores)].Create(ctx, r, perOwner)
		})
	}
	close(start)
	wg.Wait()
	ok, quota := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, instance.ErrQuota):
			quota++
		default:
			t.Errorf("create %d: %v (want nil or ErrQuota)", i, err)
		}
	}
	if ok != perOwner || quota != n-perOwner {
		t.Fatalf("%d concurrent creates with perOwner %d over %d store(s): %d succeeded, %d got ErrQuota; want %d and %d",
			n, perOwner, len(stores), ok, quota, perOwner, n-perOwner)
	}
	for i, s := range stores {
		rs, err := s.List(ctx, instance.Filter{Owner: "racer"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != perOwner {
			t.Fatalf("store %d lists %d records of the owner, want %d", i, len(rs), perOwner)
		}
	}
}

var (
	// loc makes sure times come back in UTC whatever zone they went in with.
	loc = time.FixedZone("UTC+5:30", 5*3600+1800)
	// t0 has nanoseconds: the store keeps microseconds.
	t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, loc)
)

// record is a minimal valid record.
func record(id, service, owner string, state instance.State, created time.Time) instance.Record {
	return instance.Record{
		ID:        id,
		Service:   service,
		Owner:     owner,
		State:     state,
		Node:      "node-a",
		CreatedAt: created,
		ExpiresAt: created.Add(time.Hour),
	}
}

// full has every field set.
func full(id string) instance.Record {
	h := sha256.Sum256([]byte("token of " + id))
	return instance.Record{
		ID:           id,
		Service:      "redis",
		Owner:        "203.0.113.7",
		TokenHash:    h[:],
		State:        instance.Running,
		Node:         "node-a",
		Daemon:       "unix:///var/run/docker.sock",
		Container:    "4f1c2b3a9d8e",
		Host:         "redis.example.test",
		Ports:        map[int]int{6379: 40001, 8080: 40002},
		Secrets:      map[string]string{"password": "s3cr3t", "user": "ünïcødé \"quoted\"\n"},
		CreatedAt:    t0,
		ExpiresAt:    t0.Add(30*time.Minute + 123*time.Nanosecond),
		MaxExpiresAt: t0.Add(2 * time.Hour),
		ReadyAt:      t0.Add(1500 * time.Millisecond),
		EndedAt:      t0.Add(45 * time.Minute),
		Extensions:   3,
		BytesIn:      1 << 40,
		BytesOut:     -1, // any int64
		Reason:       "none, it's fine",
		Version:      42, // ignored: the store sets it
	}
}

// want is r as a store gives it back (see instance.Record).
func want(r instance.Record, version int64) instance.Record {
	if len(r.TokenHash) == 0 {
		r.TokenHash = nil
	}
	if len(r.Ports) == 0 {
		r.Ports = nil
	}
	if len(r.Secrets) == 0 {
		r.Secrets = nil
	}
	for _, p := range []*time.Time{&r.CreatedAt, &r.ExpiresAt, &r.MaxExpiresAt, &r.ReadyAt, &r.EndedAt} {
		if !p.IsZero() {
			*p = p.Truncate(time.Microsecond).UTC()
		}
	}
	r.Version = version
	return r
}

// check fails t unless got is exactly want (times: the same instant, in UTC;
// nil and empty are told apart).
func check(t *testing.T, what string, want, got instance.Record) {
	t.Helper()
	var d []string
	diff := func(field string, w, g any) { d = append(d, fmt.Sprintf("%s: got %#v, want %#v", field, g, w)) }
	if got.ID != want.ID {
		diff("ID", want.ID, got.ID)
	}
	if got.Service != want.Service {
		diff("Service", want.Service, got.Service)
	}
	if got.Owner != want.Owner {
		diff("Owner", want.Owner, got.Owner)
	}
	if !bytes.Equal(got.TokenHash, want.TokenHash) || (got.TokenHash == nil) != (want.TokenHash == nil) {
		diff("TokenHash", want.TokenHash, got.TokenHash)
	}
	if got.State != want.State {
		diff("State", want.State, got.State)
	}
	if got.Node != want.Node {
		diff("Node", want.Node, got.Node)
	}
	if got.Daemon != want.Daemon {
		diff("Daemon", want.Daemon, got.Daemon)
	}
	if got.Container != want.Container {
		diff("Container", want.Container, got.Container)
	}
	if got.Host != want.Host {
		diff("Host", want.Host, got.Host)
	}
	if !maps.Equal(got.Ports, want.Ports) || (got.Ports == nil) != (want.Ports == nil) {
		diff("Ports", want.Ports, got.Ports)
	}
	if !maps.Equal(got.Secrets, want.Secrets) || (got.Secrets == nil) != (want.Secrets == nil) {
		diff("Secrets", want.Secrets, got.Secrets)
	}
	times := []struct {
		name      string
		want, got time.Time
	}{
		{"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"ExpiresAt", want.ExpiresAt, got.ExpiresAt},
		{"MaxExpiresAt", want.MaxExpiresAt, got.MaxExpiresAt},
		{"ReadyAt", want.ReadyAt, got.ReadyAt},
		{"EndedAt", want.EndedAt, got.EndedAt},
	}
	for _, tm := range times {
		if !tm.got.Equal(tm.want) || tm.got.IsZero() != tm.want.IsZero() {
			diff(tm.name, tm.want.Format(time.RFC3339Nano), tm.got.Format(time.RFC3339Nano))
		}
		if !tm.got.IsZero() && tm.got.Location() != time.UTC {
			diff(tm.name+".Location", "UTC", tm.got.Location().String())
		}
	}
	if got.Extensions != want.Extensions {
		diff("Extensions", want.Extensions, got.Extensions)
	}
	if got.BytesIn != want.BytesIn {
		diff("BytesIn", want.BytesIn, got.BytesIn)
	}
	if got.BytesOut != want.BytesOut {
		diff("BytesOut", want.BytesOut, got.BytesOut)
	}
	if got.Reason != want.Reason {
		diff("Reason", want.Reason, got.Reason)
	}
	if got.Version != want.Version {
		diff("Version", want.Version, got.Version)
	}
	for _, line := range d {
		t.Errorf("%s: %s", what, line)
	}
}

func mustCreate(t *testing.T, s instance.Store, r instance.Record) {
	t.Helper()
	if err := s.Create(t.Context(), r, 0); err != nil {
		t.Fatalf("Create %s: %v", r.ID, err)
	}
}

func mustGet(t *testing.T, s instance.Store, id string) instance.Record {
	t.Helper()
	r, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return r
}

func testRoundTrip(t *testing.T, s instance.Store) {
	r := full("a1b2c3")
	mustCreate(t, s, r)
	check(t, "Get", want(r, 1), mustGet(t, s, r.ID))

	// Times before 1970 and far in the future survive too.
	r2 := full("old")
	r2.CreatedAt = time.Date(1969, 7, 20, 20, 17, 40, 999999999, loc)
	r2.EndedAt = time.Date(2200, 1, 1, 0, 0, 0, 1000, time.UTC)
	mustCreate(t, s, r2)
	check(t, "Get (old)", want(r2, 1), mustGet(t, s, r2.ID))

	// What is kept is a copy: changing the caller's maps later changes nothing.
	r.Ports[1] = 2
	r.Secrets["x"] = "y"
	r.TokenHash[0] ^= 0xff
	got := mustGet(t, s, r.ID)
	if _, ok := got.Ports[1]; ok {
		t.Error("the stored record shares the caller's Ports")
	}
	if got.TokenHash[0] == r.TokenHash[0] {
		t.Error("the stored record shares the caller's TokenHash")
	}
}

func testEmptyValues(t *testing.T, s instance.Store) {
	// Zero times stay zero, empty maps and token come back nil.
	r := instance.Record{
		ID: "e1", Service: "redis", Owner: "o", State: instance.Starting,
		Ports: map[int]int{}, Secrets: map[string]string{}, TokenHash: []byte{},
	}
	mustCreate(t, s, r)
	got := mustGet(t, s, r.ID)
	check(t, "Get", want(r, 1), got)
	if got.Ports != nil || got.Secrets != nil || got.TokenHash != nil {
		t.Errorf("empty Ports/Secrets/TokenHash came back %#v, %#v, %#v; want nil", got.Ports, got.Secrets, got.TokenHash)
	}
	for _, tm := range []time.Time{got.CreatedAt, got.ExpiresAt, got.MaxExpiresAt, got.ReadyAt, got.EndedAt} {
		if !tm.IsZero() {
			t.Errorf("a zero time came back %v", tm)
		}
	}

	r2 := instance.Record{ID: "e2", Service: "redis", Owner: "o", State: instance.Starting, CreatedAt: t0}
	mustCreate(t, s, r2)
	check(t, "Get (nil maps)", want(r2, 1), mustGet(t, s, r2.ID))
}

func testNotFound(t *testing.T, s instance.Store) {
	ctx := t.Context()
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, instance.ErrNotFound) {
		t.Errorf("Get of a missing id: %v, want ErrNotFound", err)
	}
	called := false
	_, err := s.Update(ctx, "nope", func(*instance.Record) error { called = true; return nil })
	if !errors.Is(err, instance.ErrNotFound) {
		t.Errorf("Update of a missing id: %v, want ErrNotFound", err)
	}
	if called {
		t.Error("Update of a missing id called f")
	}
	rs, err := s.List(ctx, instance.Filter{})
	if err != nil || len(rs) != 0 {
		t.Errorf("List of an empty store: %v, %v", rs, err)
	}
	rs, err = s.Live(ctx, "")
	if err != nil || len(rs) != 0 {
		t.Errorf("Live of an empty store: %v, %v", rs, err)
	}
}

func testDuplicateID(t *testing.T, s instance.Store) {
	r := full("dup")
	mustCreate(t, s, r)
	other := record("dup", "postgres", "someone else", instance.Starting, t0.Add(time.Hour))
	err := s.Create(t.Context(), other, 0)
	if err == nil {
		t.Fatal("a second Create with the same id succeeded")
	}
	if errors.Is(err, instance.ErrQuota) || errors.Is(err, instance.ErrNotFound) {
		t.Errorf("duplicate id: %v; want an error that is neither ErrQuota nor ErrNotFound", err)
	}
	// Even when the quota check runs first.
	if err := s.Create(t.Context(), other, 5); err == nil || errors.Is(err, instance.ErrQuota) {
		t.Errorf("duplicate id with a quota: %v", err)
	}
	check(t, "Get after the duplicate", want(r, 1), mustGet(t, s, r.ID))
}

func testUpdate(t *testing.T, s instance.Store) {
	ctx := t.Context()
	r := record("u1", "redis", "o", instance.Starting, t0)
	r.Version = 99 // ignored
	mustCreate(t, s, r)
	exp := want(r, 1)
	check(t, "after Create", exp, mustGet(t, s, r.ID))

	ready := t0.Add(2*time.Second + 7)
	got, err := s.Update(ctx, r.ID, func(r *instance.Record) error {
		if r.Version != 1 {
			t.Errorf("f sees Version %d, want 1", r.Version)
		}
		r.State = instance.Running
		r.Container = "c0ffee"
		r.Daemon = "tcp://10.0.0.2:2376"
		r.Host = "h.example.test"
		r.Ports = map[int]int{80: 41000}
		r.Secrets = map[string]string{"password": "p"}
		r.TokenHash = []byte{1, 2, 3}
		r.ReadyAt = ready
		r.ExpiresAt = ready.Add(time.Hour)
		r.MaxExpiresAt = ready.Add(3 * time.Hour)
		r.BytesIn, r.BytesOut = 10, 20
		r.Version = 1000 // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exp.State = instance.Running
	exp.Container = "c0ffee"
	exp.Daemon = "tcp://10.0.0.2:2376"
	exp.Host = "h.example.test"
	exp.Ports = map[int]int{80: 41000}
	exp.Secrets = map[string]string{"password": "p"}
	exp.TokenHash = []byte{1, 2, 3}
	exp.ReadyAt = ready.Truncate(time.Microsecond).UTC()
	exp.ExpiresAt = ready.Add(time.Hour).Truncate(time.Microsecond).UTC()
	exp.MaxExpiresAt = ready.Add(3 * time.Hour).Truncate(time.Microsecond).UTC()
	exp.BytesIn, exp.BytesOut = 10, 20
	exp.Version = 2
	check(t, "Update's result", exp, got)
	check(t, "Get after Update", exp, mustGet(t, s, r.ID))

	// Back to empty values, and a third version.
	got, err = s.Update(ctx, r.ID, func(r *instance.Record) error {
		r.State = instance.Expired
		r.Ports = map[int]int{}
		r.Secrets = nil
		r.TokenHash = nil
		r.ReadyAt = time.Time{}
		r.EndedAt = t0.Add(time.Hour)
		r.Extensions++
		r.Reason = "expired"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exp.State = instance.Expired
	exp.Ports, exp.Secrets, exp.TokenHash = nil, nil, nil
	exp.ReadyAt = time.Time{}
	exp.EndedAt = t0.Add(time.Hour).Truncate(time.Microsecond).UTC()
	exp.Extensions = 1
	exp.Reason = "expired"
	exp.Version = 3
	check(t, "second Update's result", exp, got)
	check(t, "Get after the second Update", exp, mustGet(t, s, r.ID))
}

func testUpdateAbort(t *testing.T, s instance.Store) {
	ctx := t.Context()
	r := full("abort")
	mustCreate(t, s, r)
	sentinel := errors.New("changed my mind")
	_, err := s.Update(ctx, r.ID, func(r *instance.Record) error {
		r.State = instance.Failed
		r.Ports[1] = 1
		r.Reason = "should not be written"
		return sentinel
	})
	if err != sentinel {
		t.Errorf("Update returned %v, want f's error unchanged", err)
	}
	check(t, "Get after an aborted Update", want(r, 1), mustGet(t, s, r.ID))

	// Changing the id is refused, and changes nothing.
	_, err = s.Update(ctx, r.ID, func(r *instance.Record) error { r.ID = "other"; return nil })
	if err == nil {
		t.Error("an Update that changes the id succeeded")
	}
	check(t, "Get after an Update that changed the id", want(r, 1), mustGet(t, s, r.ID))
	if _, err := s.Get(ctx, "other"); !errors.Is(err, instance.ErrNotFound) {
		t.Errorf("Get of the changed id: %v, want ErrNotFound", err)
	}

	// The store still works (no transaction or lock left behind).
	if _, err := s.Update(ctx, r.ID, func(r *instance.Record) error { r.Extensions = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, r.ID); got.Extensions != 7 || got.Version != 2 {
		t.Errorf("after aborts then an Update: Extensions %d, Version %d; want 7, 2", got.Extensions, got.Version)
	}
}

func testUpdateConcurrent(t *testing.T, s instance.Store) {
	// Read-modify-write is atomic: no increment is lost.
	ctx := t.Context()
	r := record("counter", "redis", "o", instance.Running, t0)
	mustCreate(t, s, r)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.Update(ctx, r.ID, func(r *instance.Record) error {
				r.BytesIn++
				r.Extensions++
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := mustGet(t, s, r.ID)
	if got.BytesIn != n || got.Extensions != n || got.Version != n+1 {
		t.Errorf("after %d concurrent Updates: BytesIn %d, Extensions %d, Version %d; want %d, %d, %d",
			n, got.BytesIn, got.Extensions, got.Version, n, n, n+1)
	}
}

func ids(rs []instance.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func testList(t *testing.T, s instance.Store) {
	ctx := t.Context()
	// Created one minute apart in this order; c and c2 at the same instant.
	recs := []instance.Record{
		record("a", "redis", "alice", instance.Running, t0.Add(1*time.Minute)),
		record("b", "redis", "bob", instance.Expired, t0.Add(2*time.Minute)),
		record("c2", "postgres", "alice", instance.Starting, t0.Add(3*time.Minute)),
		record("c", "postgres", "alice", instance.Failed, t0.Add(3*time.Minute)),
		record("d", "redis", "alice", instance.Deleted, t0.Add(4*time.Minute)),
		record("e", "redis", "alice", instance.Starting, t0.Add(5*time.Minute)),
		record("f", "postgres", "bob", instance.Lost, t0.Add(6*time.Minute)),
		// Sub-microsecond differences are gone: g sorts by id with a.
		record("g", "redis", "carol", instance.Running, t0.Add(1*time.Minute+50*time.Nanosecond)),
	}
	for _, r := range recs {
		mustCreate(t, s, r)
	}
	byID := map[string]instance.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	cases := []struct {
		f    instance.Filter
		want []string
	}{
		{instance.Filter{}, []string{"f", "e", "d", "c", "c2", "b", "a", "g"}},
		{instance.Filter{Service: "redis"}, []string{"e", "d", "b", "a", "g"}},
		{instance.Filter{Owner: "alice"}, []string{"e", "d", "c", "c2", "a"}},
		{instance.Filter{Service: "postgres", Owner: "alice"}, []string{"c", "c2"}},
		{instance.Filter{LiveOnly: true}, []string{"e", "c2", "a", "g"}},
		{instance.Filter{LiveOnly: true, Owner: "alice", Service: "redis"}, []string{"e", "a"}},
		{instance.Filter{Limit: 3}, []string{"f", "e", "d"}},
		{instance.Filter{Limit: 100}, []string{"f", "e", "d", "c", "c2", "b", "a", "g"}},
		{instance.Filter{LiveOnly: true, Limit: 1}, []string{"e"}},
		{instance.Filter{Owner: "nobody"}, nil},
		{instance.Filter{Service: "mysql"}, nil},
	}
	for _, c := range cases {
		rs, err := s.List(ctx, c.f)
		if err != nil {
			t.Fatalf("List(%+v): %v", c.f, err)
		}
		if got := ids(rs); !slices.Equal(got, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.f, got, c.want)
		}
		for _, r := range rs {
			check(t, "List("+r.ID+")", want(byID[r.ID], 1), r)
		}
	}
}

func testLive(t *testing.T, s instance.Store) {
	ctx := t.Context()
	recs := []instance.Record{
		record("a1", "redis", "o1", instance.Running, t0.Add(1*time.Second)),
		record("a2", "redis", "o2", instance.Starting, t0.Add(2*time.Second)),
		record("a3", "redis", "o3", instance.Expired, t0.Add(3*time.Second)),
		record("a4", "redis", "o4", instance.Failed, t0.Add(4*time.Second)),
		record("b1", "redis", "o1", instance.Running, t0.Add(5*time.Second)),
		record("b2", "redis", "o1", instance.Lost, t0.Add(6*time.Second)),
		record("b3", "redis", "o1", instance.Deleted, t0.Add(7*time.Second)),
	}
	for i := range recs {
		if recs[i].ID[0] == 'b' {
			recs[i].Node = "node-b"
		}
		mustCreate(t, s, recs[i])
	}
	live := func(node string) []string {
		t.Helper()
		rs, err := s.Live(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if !r.State.Live() {
				t.Errorf("Live(%q) gave %s in state %s", node, r.ID, r.State)
			}
			if node != "" && r.Node != node {
				t.Errorf("Live(%q) gave %s of node %s", node, r.ID, r.Node)
			}
		}
		got := ids(rs)
		slices.Sort(got)
		return got
	}
	if got, w := live("node-a"), []string{"a1", "a2"}; !slices.Equal(got, w) {
		t.Errorf("Live(node-a) = %v, want %v", got, w)
	}
	if got, w := live("node-b"), []string{"b1"}; !slices.Equal(got, w) {
		t.Errorf("Live(node-b) = %v, want %v", got, w)
	}
	if got, w := live(""), []string{"a1", "a2", "b1"}; !slices.Equal(got, w) {
		t.Errorf("Live(\"\") = %v, want %v", got, w)
	}
	if got := live("node-c"); len(got) != 0 {
		t.Errorf("Live(node-c) = %v, want none", got)
	}
	// An instance that ends leaves Live.
	if _, err := s.Update(ctx, "a2", func(r *instance.Record) error { r.State = instance.Expired; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, w := live("node-a"), []string{"a1"}; !slices.Equal(got, w) {
		t.Errorf("Live(node-a) after a2 expired = %v, want %v", got, w)
	}
}

func testQuota(t *testing.T, s instance.Store) {
	ctx := t.Context()
	create := func(id, service, owner string, state instance.State, perOwner int) error {
		return s.Create(ctx, record(id, service, owner, state, t0), perOwner)
	}
	// Records that are not live do not count.
	for i, st := range []instance.State{instance.Expired, instance.Deleted, instance.Lost, instance.Failed} {
		if err := create(fmt.Sprintf("dead%d", i), "redis", "o", st, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := create("q1", "redis", "o", instance.Starting, 2); err != nil {
		t.Fatalf("first create under a quota of 2 (with four dead records): %v", err)
	}
	if err := create("q2", "redis", "o", instance.Running, 2); err != nil {
		t.Fatalf("second create under a quota of 2: %v", err)
	}
	err := create("q3", "redis", "o", instance.Starting, 2)
	if !errors.Is(err, instance.ErrQuota) {
		t.Fatalf("third create under a quota of 2: %v, want ErrQuota", err)
	}
	if _, err := s.Get(ctx, "q3"); !errors.Is(err, instance.ErrNotFound) {
		t.Errorf("the refused record was stored: %v", err)
	}
	// A quota of 3 lets it in; perOwner 0 is no limit.
	if err := create("q3", "redis", "o", instance.Starting, 3); err != nil {
		t.Fatalf("create under a quota of 3: %v", err)
	}
	for i := range 5 {
		if err := create(fmt.Sprintf("nolimit%d", i), "redis", "o", instance.Starting, 0); err != nil {
			t.Fatalf("create with no limit: %v", err)
		}
	}
	if err := create("q9", "redis", "o", instance.Starting, 8); !errors.Is(err, instance.ErrQuota) {
		t.Errorf("create with 8 live and a quota of 8: %v, want ErrQuota", err)
	}
	// Another owner, and the same owner for another service, are not affected.
	if err := create("p1", "redis", "other", instance.Starting, 1); err != nil {
		t.Errorf("another owner: %v", err)
	}
	if err := create("p2", "postgres", "o", instance.Starting, 1); err != nil {
		t.Errorf("the same owner, another service: %v", err)
	}
	// An instance that expires frees its place.
	if err := create("r1", "redis", "other", instance.Starting, 1); !errors.Is(err, instance.ErrQuota) {
		t.Fatalf("second for a quota of 1: %v, want ErrQuota", err)
	}
	if _, err := s.Update(ctx, "p1", func(r *instance.Record) error { r.State = instance.Expired; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := create("r1", "redis", "other", instance.Starting, 1); err != nil {
		t.Errorf("create after the only live instance expired: %v", err)
	}

	// After the concurrent race, another owner still gets its own quota.
	QuotaRace(t, s)
	for i := range 2 {
		if err := create(fmt.Sprintf("after%d", i), "redis", "bystander", instance.Starting, 2); err != nil {
			t.Errorf("another owner after the race: %v", err)
		}
	}
}
