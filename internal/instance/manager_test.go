package instance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/clocktest"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/sched"
	"github.com/ganger-dev/ganger/internal/store/sqlite"
)

const bound = 10 * time.Second

func eventually(t *testing.T, msg string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(bound); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", bound, msg)
		}
	}
}

// rig is a manager of service "redis" over a fake daemon and a SQLite
// store, on a test clock.
type rig struct {
	fake  *fleettest.Fake
	fleet *fleet.Fleet
	store instance.Store
	clock *clocktest.Clock
	m     *instance.Manager
	svc   instance.Service
}

func service() instance.Service {
	connect, _ := instance.ParseTemplate("connect", "redis://:{{.Secrets.password}}@{{.Host}}:{{.Port 7777}}")
	return instance.Service{
		Name: "redis",
		Spec: ganger.Spec{Image: "img", Cmd: []string{"--requirepass", "{{.Secrets.password}}"},
			Labels: map[string]string{ganger.LabelManaged: "true", ganger.LabelService: "redis", ganger.LabelOwner: "n"}},
		Ports:    []int{7777},
		Life:     instance.Lifetime{TTL: time.Hour, MaxTTL: 3 * time.Hour, By: 30 * time.Minute, Max: 2},
		PerOwner: 2,
		Secrets:  map[string]int{"password": 24},
		Connect:  connect,
		Queue:    bound, Ready: bound, Backoff: time.Millisecond, BackoffMax: 10 * time.Millisecond,
	}
}

// newRig starts a fleet and a manager; dbPath and clock carry over a
// restart when given.
func newRig(t *testing.T, fake *fleettest.Fake, dbPath string, c *clocktest.Clock, svc instance.Service, others ...*fleettest.Fake) *rig {
	t.Helper()
	st, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{fake: fake, store: st, clock: c, svc: svc}
	var m *instance.Manager
	f := fleet.New(fleet.Options{Node: "n", Keep: func(c ganger.Managed) bool { return m.Keep(c) }})
	m = instance.NewManager("n", instance.Env{Fleet: f, Store: st, Clock: c}, []instance.Service{svc})
	r.fleet, r.m = f, m
	for i, b := range append([]*fleettest.Fake{fake}, others...) {
		if err := f.Add(fleet.Daemon{Name: fmt.Sprint("d", i), Backend: b, MaxContainers: 100}); err != nil {
			t.Fatal(err)
		}
	}
	f.SetImages([]fleet.Image{{Service: "redis", Ref: "img", Pull: ganger.PullMissing}})
	f.Sched().AddService("redis", sched.ServiceLimits{QueueMax: 100})
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "event stream opened", func() bool { return fake.Calls("Events") > 0 })
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// stop stops the manager and the fleet, leaving instances running.
func (r *rig) stop() {
	if r.m == nil {
		return
	}
	r.m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	r.fleet.Close(ctx)
	r.store.Close()
	r.m = nil
}

func (r *rig) state(t *testing.T, id string) instance.State {
	t.Helper()
	rec, err := r.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec.State
}

// echo dials the instance's published port and checks it echoes.
func echo(t *testing.T, rec instance.Record) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(rec.Host, strconv.Itoa(rec.Ports[7777])), bound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(bound))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
}

func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
}

// An instance: made with its secrets in its command, reachable at its
// published port, its owner token checked, extended within its caps, and
// removed at its expiry, its record saying so once the container is gone.
func TestInstanceLife(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	c := newClock()
	r := newRig(t, fake, filepath.Join(t.TempDir(), "g.db"), c, service())
	ctx := context.Background()
	rec, token, existing, err := r.m.Create(ctx, "redis", "10.0.0.1", 0)
	if err != nil || existing {
		t.Fatalf("create: %v (existing %v)", err, existing)
	}
	if rec.State != instance.Running || rec.Host != "127.0.0.1" || rec.Ports[7777] == 0 || len(rec.Secrets["password"]) != 24 {
		t.Fatalf("record %+v", rec)
	}
	if !rec.ExpiresAt.Equal(c.Now().Add(time.Hour)) || !rec.MaxExpiresAt.Equal(c.Now().Add(3*time.Hour)) {
		t.Fatalf("expires %s, cap %s; want 1h and 3h from now", rec.ExpiresAt, rec.MaxExpiresAt)
	}
	echo(t, rec)
	spec, ok := fake.Spec(rec.Container)
	if !ok || spec.Cmd[1] != rec.Secrets["password"] || spec.Labels[ganger.LabelInstance] != rec.ID {
		t.Fatalf("container spec %+v; want the password in its command and the instance label", spec)
	}
	if want := fmt.Sprintf("redis://:%s@127.0.0.1:%d", rec.Secrets["password"], rec.Ports[7777]); r.m.Connect(rec) != want {
		t.Fatalf("connect %q; want %q", r.m.Connect(rec), want)
	}
	if !instance.Owns(rec, token) || instance.Owns(rec, token+"x") || instance.Owns(rec, "") {
		t.Fatal("owner token check is wrong")
	}
	if red := instance.Redacted(rec); red.Secrets["password"] == rec.Secrets["password"] || red.TokenHash != nil {
		t.Fatalf("redacted record shows %+v", red)
	}

	re, err := r.m.Restart(ctx, rec.ID)
	if err != nil || re.Container == rec.Container || re.Ports[7777] != rec.Ports[7777] || !re.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Fatalf("restart: %+v, %v; want a new container on the same port, same expiry", re, err)
	}
	if fake.Live() != 1 || r.state(t, rec.ID) != instance.Running {
		t.Fatalf("after restart: %d containers, state %s", fake.Live(), r.state(t, rec.ID))
	}
	echo(t, re)
	for i := range 2 {
		got, err := r.m.Extend(ctx, rec.ID)
		if want := rec.ExpiresAt.Add(time.Duration(i+1) * 30 * time.Minute); err != nil || !got.ExpiresAt.Equal(want) {
			t.Fatalf("extension %d: %s, %v; want %s", i+1, got.ExpiresAt, err, want)
		}
	}
	if _, err := r.m.Extend(ctx, rec.ID); !errors.Is(err, instance.ErrNoExtensions) {
		t.Fatalf("third extension of two: %v", err)
	}

	c.Advance(time.Hour + 59*time.Minute) // a minute before its expiry, extended to 2h
	if r.state(t, rec.ID) != instance.Running || fake.Live() != 1 {
		t.Fatal("expired early")
	}
	c.Advance(time.Minute)
	eventually(t, "not expired at its time", func() bool { return r.state(t, rec.ID) == instance.Expired })
	if fake.Live() != 0 {
		t.Fatal("record says expired while its container is there")
	}
	if _, err := r.m.Extend(ctx, rec.ID); !errors.Is(err, instance.ErrNotLive) {
		t.Fatalf("extending an expired instance: %v", err)
	}
}

// Twenty concurrent creates by one owner give exactly per_owner
// instances; another owner is not affected; a deleted one frees a place.
func TestInstanceQuota(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	r := newRig(t, fake, filepath.Join(t.TempDir(), "g.db"), newClock(), service())
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var made []instance.Record
	quota := 0
	for range 20 {
		wg.Go(func() {
			rec, _, _, err := r.m.Create(ctx, "redis", "owner", 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made = append(made, rec)
			case errors.Is(err, instance.ErrQuota):
				quota++
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	if len(made) != 2 || quota != 18 || fake.Live() != 2 {
		t.Fatalf("%d made, %d refused, %d containers; want 2, 18 and 2", len(made), quota, fake.Live())
	}
	if _, _, _, err := r.m.Create(ctx, "redis", "someone else", 0); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	if got, err := r.m.Delete(ctx, made[0].ID); err != nil || got.State != instance.Deleted {
		t.Fatalf("delete: %+v, %v", got, err)
	}
	if _, _, _, err := r.m.Create(ctx, "redis", "owner", 0); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	if _, _, _, err := r.m.Create(ctx, "nope", "owner", 0); !errors.Is(err, instance.ErrUnknownService) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, _, _, err := r.m.Create(ctx, "redis", "x", 2*time.Hour); !errors.Is(err, instance.ErrBadTTL) {
		t.Fatalf("ttl past the service's: %v", err)
	}
	if rec, _, _, err := r.m.Create(ctx, "redis", "y", 10*time.Minute); err != nil || !rec.ExpiresAt.Equal(rec.ReadyAt.Add(10*time.Minute)) {
		t.Fatalf("a shorter ttl: %+v, %v", rec, err)
	}
}

// on_existing: return gives an owner at its quota its newest instance;
// create_rate refuses with when to come back.
func TestInstanceReturnAndRate(t *testing.T) {
	t.Parallel()
	svc := service()
	svc.PerOwner, svc.Return, svc.Rate, svc.Burst = 1, true, 0.5, 2
	r := newRig(t, fleettest.New(t, "img"), filepath.Join(t.TempDir(), "g.db"), newClock(), svc)
	ctx := context.Background()
	first, _, _, err := r.m.Create(ctx, "redis", "o", 0)
	if err != nil {
		t.Fatal(err)
	}
	again, token, existing, err := r.m.Create(ctx, "redis", "o", 0)
	if err != nil || !existing || again.ID != first.ID || token != "" {
		t.Fatalf("second create: %s existing %v token %q, %v; want the first back, no token", again.ID, existing, token, err)
	}
	_, _, _, err = r.m.Create(ctx, "redis", "p", 0)
	if err != nil {
		t.Fatal(err)
	}
	r.m.Delete(ctx, first.ID)
	second, _, _, err := r.m.Create(ctx, "redis", "o", 0) // the second of a burst of 2 (a returned one costs none)
	if err != nil {
		t.Fatal(err)
	}
	r.m.Delete(ctx, second.ID)
	_, _, _, err = r.m.Create(ctx, "redis", "o", 0) // the third
	var rate *instance.RateError
	if !errors.As(err, &rate) || rate.RetryAfter != 2*time.Second {
		t.Fatalf("past the rate: %v; want a RateError of 2s", err)
	}
	r.clock.Advance(2 * time.Second)
	if _, _, _, err := r.m.Create(ctx, "redis", "o", 0); err != nil {
		t.Fatalf("after waiting: %v", err)
	}
}

// Ganger restarts: live instances keep running, the next run takes them
// back (they answer, expire at their time); one whose container vanished
// meanwhile is marked lost; one whose container exits is lost too.
func TestInstanceRestart(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	db := filepath.Join(t.TempDir(), "g.db")
	c := newClock()
	first := newRig(t, fake, db, c, service())
	ctx := context.Background()
	keep, _, _, err := first.m.Create(ctx, "redis", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	vanish, _, _, err := first.m.Create(ctx, "redis", "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()
	if fake.Live() != 2 {
		t.Fatalf("%d containers after Ganger stopped; want both instances running", fake.Live())
	}
	fake.Remove(ctx, vanish.Container) // gone while Ganger was down

	second := newRig(t, fake, db, c, service())
	if second.state(t, vanish.ID) != instance.Lost || second.state(t, keep.ID) != instance.Running {
		t.Fatalf("after restart: vanished %s, kept %s; want lost and running", second.state(t, vanish.ID), second.state(t, keep.ID))
	}
	echo(t, keep)
	c.Advance(time.Hour)
	eventually(t, "taken-back instance not expired at its time", func() bool { return second.state(t, keep.ID) == instance.Expired })
	if fake.Live() != 0 {
		t.Fatalf("%d containers left", fake.Live())
	}

	crash, _, _, err := second.m.Create(ctx, "redis", "c", 0)
	if err != nil {
		t.Fatal(err)
	}
	fake.Exit(crash.Container, 1)
	eventually(t, "an instance whose container exited is not lost", func() bool { return second.state(t, crash.ID) == instance.Lost })
	eventually(t, "its container not removed", func() bool { return fake.Live() == 0 })
}

// A labelled instance container that no live record owns (its record
// ended while Ganger was down, say) is removed by the next start's sweep.
func TestInstanceOrphanSwept(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	db := filepath.Join(t.TempDir(), "g.db")
	c := newClock()
	first := newRig(t, fake, db, c, service())
	rec, _, _, err := first.m.Create(context.Background(), "redis", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(context.Background(), rec.ID, func(r *instance.Record) error { r.State = instance.Deleted; return nil }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fake.Live() != 1 {
		t.Fatal("the instance's container should still run before the restart")
	}
	newRig(t, fake, db, c, service())
	if fake.Live() != 0 {
		t.Fatal("an instance container with no live record survived the start-up sweep")
	}
}

// Ganger starts while the daemon of a live instance does not answer: the
// instance is kept (its record stays running, its container untouched),
// and at its expiry its removal is tried, retried while the daemon still
// fails, and done once it answers; only then is the record expired.
func TestInstanceDaemonDownAtStart(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	db := filepath.Join(t.TempDir(), "g.db")
	c := newClock()
	first := newRig(t, fake, db, c, service())
	ctx := context.Background()
	rec, _, _, err := first.m.Create(ctx, "redis", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()

	var down atomic.Bool
	down.Store(true)
	fail := errors.New("Cannot connect to the Docker daemon")
	fake.ListHook = func() error {
		if down.Load() {
			return fail
		}
		return nil
	}
	fake.RemoveHook = func(string) error {
		if down.Load() {
			return fail
		}
		return nil
	}
	second := newRig(t, fake, db, c, service(), fleettest.New(t, "img")) // d1 answers
	if second.state(t, rec.ID) != instance.Running || fake.Live() != 1 {
		t.Fatalf("daemon down at start: state %s, %d containers; want the instance kept", second.state(t, rec.ID), fake.Live())
	}
	removes := fake.Calls("Remove")
	c.Advance(time.Hour)
	eventually(t, "no removal tried at its expiry", func() bool { return fake.Calls("Remove") > removes })
	if second.state(t, rec.ID) != instance.Running || fake.Live() != 1 {
		t.Fatalf("removal failed, yet state %s, %d containers", second.state(t, rec.ID), fake.Live())
	}
	down.Store(false)
	c.Advance(10 * time.Second) // the retry
	eventually(t, "not expired once the daemon answered", func() bool { return second.state(t, rec.ID) == instance.Expired })
	if fake.Live() != 0 {
		t.Fatal("expired, but its container is there")
	}
}

// create_rate counts creations: an owner at its quota that tries again
// is refused for its quota, and its refusals take nothing of its rate.
func TestQuotaRefusalsTakeNoRate(t *testing.T) {
	t.Parallel()
	svc := service()
	svc.PerOwner, svc.Rate, svc.Burst = 1, 0.001, 2 // two creations, then one per 1000s
	r := newRig(t, fleettest.New(t, "img"), filepath.Join(t.TempDir(), "g.db"), newClock(), svc)
	ctx := context.Background()
	first, _, _, err := r.m.Create(ctx, "redis", "owner", 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, _, _, err := r.m.Create(ctx, "redis", "owner", 0); !errors.Is(err, instance.ErrQuota) {
			t.Fatalf("at the quota: %v; want ErrQuota", err)
		}
	}
	if _, err := r.m.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.m.Create(ctx, "redis", "owner", 0); err != nil {
		t.Fatalf("the second creation of the burst after five refusals: %v", err)
	}
	if _, _, _, err := r.m.Create(ctx, "redis", "other", 0); err != nil {
		t.Fatalf("another owner: %v", err)
	}
}
