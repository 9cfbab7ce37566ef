package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/sched"
)

// fakeBackend is a Backend whose behaviour each test sets; it records the
// removals it is asked for. It tests session logic; the end-to-end tests in
// internal/server run the same paths on the real engine.
type fakeBackend struct {
	create func(ctx context.Context, spec ganger.Spec) (string, error)
	start  func(ctx context.Context, id string) (string, error)
	remove func(id string) error

	mu      sync.Mutex
	removed []string
}

func (f *fakeBackend) Name() string { return "fake" }
func (f *fakeBackend) Create(ctx context.Context, spec ganger.Spec) (string, error) {
	return f.create(ctx, spec)
}
func (f *fakeBackend) Start(ctx context.Context, id string, port int) (string, error) {
	return f.start(ctx, id)
}
func (f *fakeBackend) Wait(ctx context.Context, id string) <-chan ganger.Exit {
	return make(chan ganger.Exit)
}
func (f *fakeBackend) Logs(ctx context.Context, id string, n int) (string, error) { return "", nil }
func (f *fakeBackend) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	f.removed = append(f.removed, id)
	f.mu.Unlock()
	if f.remove != nil {
		return f.remove(id)
	}
	return nil
}

func (f *fakeBackend) removals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

// cluster is a one-daemon cluster over b with room for 10, for service svc.
func cluster(b Backend) *Cluster {
	sc := sched.New(0)
	sc.AddDaemon(b.Name(), 10)
	sc.SetUp(b.Name(), true)
	c := NewCluster(sc, b)
	sc.AddService("svc", sched.ServiceLimits{})
	sc.SetImage(b.Name(), "svc", true)
	return c
}

func testService(t *testing.T, b Backend) (*Service, string) {
	cfg := config.DefaultService()
	cfg.Name, cfg.Image, cfg.Port = "svc", "img", 7777
	c := cluster(b)
	s := New(cfg, "node1", c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.Sched.SetImage(b.Name(), "svc", true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		s.WaitCleanup(context.Background())
	})
	return s, ln.Addr().String()
}

// A client that leaves while Create is in flight: the create may still
// happen on the daemon, so the container is removed by its name.
func TestCreateCutShortRemovesByName(t *testing.T) {
	inCreate := make(chan string, 1)
	fb := &fakeBackend{create: func(ctx context.Context, spec ganger.Spec) (string, error) {
		inCreate <- spec.Name
		<-ctx.Done()
		return "", ctx.Err()
	}}
	s, addr := testService(t, fb)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	name := <-inCreate
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	s.Shutdown(context.Background())
	s.WaitCleanup(context.Background())
	if got := fb.removals(); len(got) != 1 || got[0] != name {
		t.Fatalf("removed %v; want [%s]", got, name)
	}
}

// A failing removal is retried; the client was closed long before.
func TestRemoveIsRetried(t *testing.T) {
	fails := 2
	fb := &fakeBackend{
		create: func(ctx context.Context, spec ganger.Spec) (string, error) { return "id1", nil },
		start:  func(ctx context.Context, id string) (string, error) { return "", errors.New("start failed") },
		remove: func(id string) error {
			if fails > 0 {
				fails--
				return errors.New("daemon busy")
			}
			return nil
		},
	}
	s, addr := testService(t, fb)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client not closed after a failed start: %v", err)
	}
	s.Shutdown(context.Background())
	s.WaitCleanup(context.Background())
	if got := fb.removals(); len(got) != 3 || got[2] != "id1" {
		t.Fatalf("removals %v; want id1 three times", got)
	}
}

func TestSessionSpec(t *testing.T) {
	cfg := config.DefaultService()
	cfg.Name, cfg.Image, cfg.Port = "svc", "img", 7777
	cfg.Env = map[string]string{"B": "2", "A": "1"}
	s := New(cfg, "node1", cluster(&fakeBackend{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	spec := s.sessionSpec(s.conf.Load(), "abc")
	want := map[string]string{ganger.LabelManaged: "true", ganger.LabelService: "svc", ganger.LabelOwner: "node1", ganger.LabelSession: "abc"}
	for k, v := range want {
		if spec.Labels[k] != v {
			t.Errorf("label %s = %q; want %q", k, spec.Labels[k], v)
		}
	}
	if spec.Name != "ganger-svc-abc" || len(spec.Env) != 2 || spec.Env[0] != "A=1" {
		t.Errorf("got name %q env %v", spec.Name, spec.Env)
	}
	if !spec.Limits.NoNewPrivileges || spec.Limits.Memory != config.DefaultMemory || spec.Limits.Pids != config.DefaultPids {
		t.Errorf("secure defaults missing: %+v", spec.Limits)
	}
	if _, shared := s.conf.Load().spec.Labels[ganger.LabelSession]; shared {
		t.Error("a session label leaked into the service's template")
	}
}
