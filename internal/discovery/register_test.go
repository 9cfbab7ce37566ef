package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// keyLease is the lease a key is on now; 0 if the key is absent.
func keyLease(t *testing.T, c *Client, key string) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.etcd.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

func (r *Registration) currentLease() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// Register, Update and Revoke as a watcher sees them; a value that is not
// JSON is skipped.
func TestRegisterWatchUpdateRevoke(t *testing.T) {
	e := etcd(t)
	c, _ := connect(t, e.Endpoint())
	w := watch(t, c)
	w.waitFor(t, "")

	var draining atomic.Bool
	ctx := context.Background()
	r, err := c.Register(ctx, KindHosts, "h1", "id-1", func() []byte {
		d := draining.Load()
		return hostValue("h1", "id-1", &d)()
	}, 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Registered() || r.Key() != "/t/hosts/h1" {
		t.Fatalf("Registered() = %v, Key() = %q", r.Registered(), r.Key())
	}
	w.waitFor(t, "h1")
	h, _ := w.host("h1")
	if h.Name != "h1" || h.ID != "id-1" || h.MaxContainers != 7 || h.Labels["zone"] != "a" || h.Draining {
		t.Fatalf("watcher got %+v", h)
	}
	if _, err := e.Ctl("put", "/t/hosts/garbage", "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl("put", "/t/hosts/h2", `{"id":"x","docker":"tcp://10.0.0.2:2376"}`); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "h1,h2")
	if h, _ := w.host("h2"); h.Name != "h2" {
		t.Fatalf("a host's name is its key's: got %q", h.Name)
	}

	draining.Store(true)
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watcher never saw h1 draining", func() bool {
		h, _ := w.host("h1")
		return h.Draining
	})
	if err := r.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Registered() {
		t.Fatal("Registered() after Revoke")
	}
	w.waitFor(t, "h2")
	if err := r.Revoke(ctx); err != nil {
		t.Fatalf("a second Revoke: %v", err)
	}
}

// A second registration of a name under another id is refused, names the
// key and the holder, and succeeds once the holder has revoked.
func TestTaken(t *testing.T) {
	e := etcd(t)
	a, _ := connect(t, e.Endpoint())
	b, _ := connect(t, e.Endpoint())
	ra := register(t, a, "h1", "id-a", 2*time.Second)

	ctx := context.Background()
	_, err := b.Register(ctx, KindHosts, "h1", "id-b", hostValue("h1", "id-b", nil), 2*time.Second, 0)
	if !errors.Is(err, ErrTaken) {
		t.Fatalf("got %v; want ErrTaken", err)
	}
	for _, want := range []string{"/t/hosts/h1", "id-a"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	// Waiting: it gets the name once the holder revokes.
	got := make(chan error, 1)
	go func() {
		r, err := b.Register(ctx, KindHosts, "h1", "id-b", hostValue("h1", "id-b", nil), 2*time.Second, time.Minute)
		if err == nil && !r.Registered() {
			err = errors.New("not Registered()")
		}
		got <- err
	}()
	if err := ra.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("after the holder revoked: %v", err)
	}
	hosts, err := a.Hosts(ctx)
	if err != nil || hosts["h1"].ID != "id-b" {
		t.Fatalf("hosts: %+v, %v; want h1 held by id-b", hosts, err)
	}
}

// A holder that dies without revoking (kill -9): its key goes when its
// lease expires, and a waiting registration with another id gets it; the
// same id takes the key over at once.
func TestHolderDies(t *testing.T) {
	e := etcd(t)
	ctx := context.Background()

	t.Run("another id waits", func(t *testing.T) {
		a, _ := connect(t, e.Endpoint())
		register(t, a, "n1", "id-a", 2*time.Second)
		a.Close() // no revoke: the key stays until its lease expires
		b, _ := connect(t, e.Endpoint())
		r, err := b.Register(ctx, KindNodes, "n1", "id-b", func() []byte { return []byte(`{"id":"id-b"}`) }, 2*time.Second, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := b.Nodes(ctx)
		if err != nil || nodes["n1"].ID != "id-b" || nodes["n1"].Name != "n1" {
			t.Fatalf("nodes: %+v, %v", nodes, err)
		}
		r.Revoke(ctx)
	})

	t.Run("same id takes over", func(t *testing.T) {
		a, _ := connect(t, e.Endpoint())
		ra := register(t, a, "h1", "id-a", time.Minute)
		old := ra.currentLease()
		a.Close()
		b, _ := connect(t, e.Endpoint())
		rb := register(t, b, "h1", "id-a", 2*time.Second)
		if l := keyLease(t, b, "/t/hosts/h1"); l != rb.currentLease() || l == old {
			t.Fatalf("key on lease %x; want the new %x (old %x)", l, rb.currentLease(), old)
		}
		rb.Revoke(ctx)
	})
}

// Lease lost under a live registration (revoked by an operator, the key
// deleted, etcd down past the TTL): it registers again, same id.
func TestReRegister(t *testing.T) {
	e := etcd(t)
	c, _ := connect(t, e.Endpoint())
	ctx := context.Background()
	r := register(t, c, "h1", "id-1", 2*time.Second)
	again := func(t *testing.T, old clientv3.LeaseID) {
		t.Helper()
		eventually(t, "never registered again", func() bool {
			l := r.currentLease()
			return r.Registered() && l != old && keyLease(t, c, "/t/hosts/h1") == l
		})
		hosts, err := c.Hosts(ctx)
		if err != nil || hosts["h1"].ID != "id-1" {
			t.Fatalf("hosts: %+v, %v", hosts, err)
		}
	}

	t.Run("lease revoked", func(t *testing.T) {
		old := r.currentLease()
		if _, err := e.Ctl("lease", "revoke", fmt.Sprintf("%x", old)); err != nil {
			t.Fatal(err)
		}
		again(t, old)
	})
	t.Run("key deleted", func(t *testing.T) {
		old := r.currentLease()
		if _, err := e.Ctl("del", "/t/hosts/h1"); err != nil {
			t.Fatal(err)
		}
		again(t, old)
	})
	t.Run("etcd restarted", func(t *testing.T) {
		old := r.currentLease()
		if err := e.Restart(); err != nil {
			t.Fatal(err)
		}
		// The lease may survive a quick restart: the key must be there,
		// on the lease the registration holds.
		eventually(t, "not registered after the restart", func() bool {
			return r.Registered() && keyLease(t, c, "/t/hosts/h1") == r.currentLease()
		})
		if r.currentLease() != old {
			t.Logf("the lease did not survive the restart: registered again")
		}
	})
	t.Run("etcd down past the TTL", func(t *testing.T) {
		old := r.currentLease()
		if err := e.Stop(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the loss was never noticed", func() bool { return !r.Registered() })
		if err := r.Update(ctx); err != nil {
			t.Fatalf("Update while lost: %v", err)
		}
		if err := e.Restart(); err != nil {
			t.Fatal(err)
		}
		again(t, old)
	})
	if err := r.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if l := keyLease(t, c, "/t/hosts/h1"); l != 0 {
		t.Fatalf("key still there (lease %x) after Revoke", l)
	}
}

// Register fails when ctx ends while etcd does not answer, and Connect
// fails, without hanging, when no endpoint answers.
func TestUnreachable(t *testing.T) {
	e := etcd(t)
	c, _ := connect(t, e.Endpoint())
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Register(ctx, KindHosts, "h1", "id", hostValue("h1", "id", nil), 2*time.Second, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want a deadline error", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Connect(ctx, Options{Endpoints: []string{e.Endpoint()}}); err == nil {
		t.Fatal("Connect to a stopped etcd succeeded")
	}
}

func TestRegisterArguments(t *testing.T) {
	c := &Client{prefix: DefaultPrefix}
	for _, tc := range []struct{ kind, name, id string }{
		{"daemons", "h", "i"}, {KindHosts, "", "i"}, {KindHosts, "a/b", "i"}, {KindNodes, "n", ""},
	} {
		if _, err := c.Register(context.Background(), tc.kind, tc.name, tc.id, nil, time.Second, 0); err == nil {
			t.Errorf("Register(%q, %q, %q) succeeded", tc.kind, tc.name, tc.id)
		}
	}
}
