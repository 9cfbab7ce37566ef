package clusterd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/cluster"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
	"github.com/ganger-dev/ganger/internal/initproto"
	"github.com/ganger-dev/ganger/internal/sched"
)

// recStore is an in-memory Store (the SQLite and PostgreSQL ones pass
// storetest.RunClusters; this package cannot import them).
type recStore struct {
	mu   sync.Mutex
	recs map[[2]string]Record
	fail bool // SaveCluster fails
}

func (s *recStore) SaveCluster(_ context.Context, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("the store is down")
	}
	r.Members = slices.Clone(r.Members)
	s.recs[[2]string{r.Node, r.Name}] = r
	return nil
}

func (s *recStore) Clusters(_ context.Context, node string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for k, r := range s.recs {
		if k[0] == node {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *recStore) DeleteCluster(_ context.Context, node, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, [2]string{node, name})
	return nil
}

const within = 30 * time.Second

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mrig is a Manager over a fake daemon; the test plays the members'
// ganger-inits through View and Report.
type mrig struct {
	t     *testing.T
	fake  *fleettest.Fake
	store *recStore
	fleet *fleet.Fleet
	m     *Manager
}

func zkService(size int) Service {
	peers := template.Must(template.New("peers").Parse("{{range .Peers}}{{.Ordinal}}@{{.IP}} {{end}}leader={{if .Leader}}{{.Leader.Ordinal}}{{end}}"))
	return Service{
		Name: "zk",
		Spec: ganger.Spec{Image: "img", Network: "bridge",
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelService: "zk", ganger.LabelOwner: "n"}},
		Ports:   []int{2181},
		Cluster: cluster.Spec{Name: "zk", Size: size, MinReady: size, Damper: 20 * time.Millisecond},
		Files:   map[string]*Template{"/conf/peers": peers},
		APIPort: "5480",
		Ready:   10 * time.Second,
	}
}

func startRig(t *testing.T, fake *fleettest.Fake, st *recStore, svc Service) *mrig {
	t.Helper()
	r := &mrig{t: t, fake: fake, store: st}
	var m *Manager
	f := fleet.New(fleet.Options{Node: "n", Keep: func(c ganger.Managed) bool { return m.Keep(c) }})
	m = NewManager("n", Env{Fleet: f, Store: st}, []Service{svc})
	r.fleet, r.m = f, m
	if err := f.Add(fleet.Daemon{Name: "d0", Backend: fake, MaxContainers: 100}); err != nil {
		t.Fatal(err)
	}
	f.SetImages([]fleet.Image{{Service: "zk", Ref: "img", Pull: ganger.PullMissing}})
	f.Sched().AddService("zk", sched.ServiceLimits{QueueMax: 100})
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *mrig) stop() {
	if r.m == nil {
		return
	}
	r.m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	r.fleet.Close(ctx)
	r.m = nil
}

func (r *mrig) members() []cluster.Member { return r.m.runs["zk"].c.Members() }

// token is the member token of the ordinal's current incarnation.
func (r *mrig) token(o int) string {
	run := r.m.runs["zk"]
	return run.token("member", o, r.members()[o].Incarnation)
}

// running waits until n members run.
func (r *mrig) running(n int) {
	r.t.Helper()
	until(r.t, fmt.Sprintf("%d members running", n), func() bool {
		ms := r.members()
		return len(ms) == n && !slices.ContainsFunc(ms, func(m cluster.Member) bool { return m.State != cluster.Running })
	})
}

// poll is a member's poll that must answer at once.
func (r *mrig) poll(o int, after int64, released bool) initproto.View {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	v, err := r.m.View(ctx, "zk", o, r.token(o), after, released)
	if err != nil {
		r.t.Fatalf("view %d: %v", o, err)
	}
	return v
}

func (r *mrig) report(o int, epoch int64, state string) {
	r.t.Helper()
	if err := r.m.Report("zk", o, r.token(o), initproto.Report{Epoch: epoch, State: state}); err != nil {
		r.t.Fatalf("report %d %s: %v", o, state, err)
	}
}

// form plays the members until all are configured; it returns the epoch.
func (r *mrig) form(n int) int64 {
	r.t.Helper()
	r.running(n)
	var e int64
	until(r.t, "epoch published with every member", func() bool {
		v := r.m.runs["zk"].c.View(0)
		e = v.Epoch
		return len(v.Peers) == n
	})
	for o := range n {
		r.report(o, e, cluster.StateWaiting)
	}
	for o := range n {
		v := r.poll(o, e, false)
		if !v.Release || v.Epoch != e {
			r.t.Fatalf("member %d: %+v; want released at %d (the members before it configured)", o, v, e)
		}
		r.report(o, e, cluster.StateConfigured)
	}
	return e
}

// A cluster on a fake daemon, with the test as its members: the view
// waits for Ganger to know each member runs, gives each member its own
// rendered files, releases them one at a time, answers a waiting poll
// when the cluster changes, and refuses wrong tokens, unknown clusters
// and bad reports. The record in the store follows.
func TestManager(t *testing.T) {
	st := &recStore{recs: map[[2]string]Record{}}
	r := startRig(t, fleettest.New(t, "img"), st, zkService(3))
	e := r.form(3)
	v := r.poll(2, 0, false)
	if !v.Release || !strings.HasPrefix(v.Files["/conf/peers"], "0@127.0.0.1 1@127.0.0.1 2@127.0.0.1 ") || v.Self.Ordinal != 2 {
		t.Fatalf("member 2's view: %+v", v)
	}
	for o, m := range r.members() {
		if m.Daemon != "d0" || m.Container == "" || m.Ports["2181"] == 0 || !m.Ready {
			t.Fatalf("member %d: %+v", o, m)
		}
	}

	// The leader's epoch: every member applies it.
	until(t, "the leader's epoch", func() bool { return r.m.runs["zk"].c.Epoch() > e })
	e = r.m.runs["zk"].c.Epoch()
	for o := range 3 {
		if v := r.poll(o, e-1, true); !v.Release || v.Leader == nil || v.Leader.Ordinal != 0 || !strings.HasSuffix(v.Files["/conf/peers"], "leader=0") {
			t.Fatalf("member %d at the leader's epoch: %+v", o, v)
		}
		r.report(o, e, cluster.StateConfigured)
	}

	// A poll that holds the current view waits; a change answers it.
	got := make(chan initproto.View, 1)
	go func() {
		v, _ := r.m.View(context.Background(), "zk", 1, r.token(1), e, true)
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("a poll holding the view answered without a change: %+v", v)
	case <-time.After(100 * time.Millisecond):
	}
	if err := r.m.Scale("zk", 4); err != nil {
		t.Fatal(err)
	}
	select {
	case v = <-got:
	case <-time.After(within):
		t.Fatal("the waiting poll did not answer the change")
	}
	if v.Epoch != e+1 || len(v.Peers) != 4 {
		t.Fatalf("the poll after scaling to 4: %+v", v)
	}

	// Refusals.
	if _, err := r.m.View(context.Background(), "zk", 1, r.token(2), 0, false); !errors.Is(err, ErrToken) {
		t.Fatalf("member 1 with member 2's token: %v", err)
	}
	if err := r.m.Report("zk", 5, "x", initproto.Report{State: "configured"}); !errors.Is(err, ErrNoMember) {
		t.Fatalf("a report of member 5: %v", err)
	}
	if err := r.m.Report("zk", 0, r.token(0), initproto.Report{State: "happy"}); !errors.Is(err, ErrBadReport) {
		t.Fatalf("a report in state happy: %v", err)
	}
	if _, err := r.m.Status("kafka"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("status of an unknown cluster: %v", err)
	}

	// The record.
	until(t, "the record at the current epoch", func() bool {
		recs, _ := st.Clusters(context.Background(), "n")
		return len(recs) == 1 && recs[0].Epoch == r.m.runs["zk"].c.Epoch()
	})
	recs, _ := st.Clusters(context.Background(), "n")
	rec := recs[0]
	if rec.Name != "zk" || rec.Size != 4 || rec.LastInc != 4 || len(rec.Members) != 4 || len(rec.Secret) != 64 || !rec.Members[0].Leader {
		t.Fatalf("record %+v", rec)
	}
	if s, _ := r.m.Status("zk"); s.Ready != 3 || *s.Leader != 0 || len(s.Members) != 4 || s.Size != 4 {
		t.Fatalf("status %+v", s)
	}
}

// A member whose container dies is started again: same ordinal, a new
// incarnation, and the old incarnation's token stops working.
func TestManagerReplacesTheDead(t *testing.T) {
	fake := fleettest.New(t, "img")
	r := startRig(t, fake, &recStore{recs: map[[2]string]Record{}}, zkService(3))
	r.form(3)
	old := r.members()[1]
	oldToken := r.token(1)
	fake.Exit(old.Container, 137)
	until(t, "member 1 replaced and running", func() bool {
		m := r.members()[1]
		return m.Incarnation != old.Incarnation && m.State == cluster.Running
	})
	if m := r.members()[1]; m.Incarnation <= 3 || m.Ordinal != 1 {
		t.Fatalf("replacement %+v", m)
	}
	if _, err := r.m.View(context.Background(), "zk", 1, oldToken, 0, false); !errors.Is(err, ErrToken) {
		t.Fatalf("the dead incarnation's token: %v", err)
	}
	until(t, "the dead container removed", func() bool {
		return slices.Contains(fake.Removed(), old.Container)
	})

	// A member replaced at an operator's request is stopped (TERM, as its
	// processes expect), then removed.
	two := r.members()[2]
	if err := r.m.Replace("zk", 2); err != nil {
		t.Fatal(err)
	}
	until(t, "member 2 replaced and running", func() bool {
		m := r.members()[2]
		return m.Incarnation != two.Incarnation && m.State == cluster.Running
	})
	if fake.Calls("Stop") != 1 || !slices.Contains(fake.Removed(), two.Container) {
		t.Fatalf("stops %d, removed %v; want member 2's container stopped then removed", fake.Calls("Stop"), fake.Removed())
	}
}

// Taken back after a restart over the same store: the same members,
// incarnations, epoch and leader; nothing started again.
func TestManagerRestart(t *testing.T) {
	fake := fleettest.New(t, "img")
	st := &recStore{recs: map[[2]string]Record{}}
	r := startRig(t, fake, st, zkService(3))
	r.form(3)
	until(t, "the leader published", func() bool { _, ok := r.m.runs["zk"].c.Leader(); return ok })
	r.report(0, r.m.runs["zk"].c.Epoch(), cluster.StateConfigured)
	time.Sleep(100 * time.Millisecond) // the last save
	before := r.members()
	epoch := r.m.runs["zk"].c.Epoch()
	creates := fake.Calls("Create")
	r.stop()

	r2 := startRig(t, fake, st, zkService(3))
	after := r2.members()
	if r2.m.runs["zk"].c.Epoch() != epoch || len(after) != 3 {
		t.Fatalf("epoch %d, %d members after the restart; want %d, 3", r2.m.runs["zk"].c.Epoch(), len(after), epoch)
	}
	for i := range after {
		if after[i].Incarnation != before[i].Incarnation || after[i].Container != before[i].Container || !maps.Equal(after[i].Ports, before[i].Ports) {
			t.Fatalf("member %d: %+v; was %+v", i, after[i], before[i])
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := fake.Calls("Create"); n != creates {
		t.Fatalf("%d creates after the restart; want none", n-creates)
	}
	if l, ok := r2.m.runs["zk"].c.Leader(); !ok || l.Ordinal != 0 {
		t.Fatalf("leader %+v, %v after the restart", l, ok)
	}
}

// An epoch that is not in the store is not shown to members: a crash
// then would leave them applying an epoch a restarted Ganger does not
// know. Once saved, it is.
func TestManagerHoldsUnsavedEpochs(t *testing.T) {
	st := &recStore{recs: map[[2]string]Record{}}
	r := startRig(t, fleettest.New(t, "img"), st, zkService(3))
	e := r.form(3)
	until(t, "the leader's epoch saved", func() bool { return r.m.runs["zk"].savedEpoch() > e })
	e = r.m.runs["zk"].savedEpoch()
	for o := range 3 { // every member applies the leader's epoch: the cluster is settled, and may grow
		r.report(o, e, cluster.StateConfigured)
	}
	st.mu.Lock()
	st.fail = true
	st.mu.Unlock()
	got := make(chan initproto.View, 1)
	go func() {
		v, _ := r.m.View(context.Background(), "zk", 0, r.token(0), e, r.m.runs["zk"].c.View(0).Release)
		got <- v
	}()
	if err := r.m.Scale("zk", 4); err != nil {
		t.Fatal(err)
	}
	until(t, "a new epoch published", func() bool { return r.m.runs["zk"].c.Epoch() > e })
	select {
	case v := <-got:
		t.Fatalf("a member saw epoch %d before it was saved", v.Epoch)
	case <-time.After(300 * time.Millisecond):
	}
	st.mu.Lock()
	st.fail = false
	st.mu.Unlock()
	r.m.runs["zk"].poke()
	select {
	case v := <-got:
		if v.Epoch <= e {
			t.Fatalf("epoch %d once saved; want past %d", v.Epoch, e)
		}
	case <-time.After(within):
		t.Fatal("the saved epoch never reached the member")
	}
}
