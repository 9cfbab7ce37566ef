package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/etcdtest"
)

// registerAndList registers a host through o and lists it back.
func registerAndList(t *testing.T, o Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, o)
	if err != nil {
		return err
	}
	defer c.Close()
	c.timing = fastTiming
	r, err := c.Register(ctx, KindHosts, "h1", "id-1", hostValue("h1", "id-1", nil), 2*time.Second, 0)
	if err != nil {
		return err
	}
	defer r.Revoke(ctx)
	hosts, err := c.Hosts(ctx)
	if err != nil {
		return err
	}
	if hosts["h1"].ID != "id-1" {
		t.Fatalf("listed %+v", hosts)
	}
	return nil
}

// etcd with authentication on: the right user and password work; a wrong
// password is refused at Connect; no credentials cannot register.
func TestAuth(t *testing.T) {
	e := etcd(t)
	if _, err := e.Ctl("user", "add", "root", "--new-user-password", "s3cret", "--interactive=false"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl("auth", "enable"); err != nil {
		t.Fatal(err)
	}
	ep := []string{e.Endpoint()}
	if err := registerAndList(t, Options{Endpoints: ep, Username: "root", Password: "s3cret"}); err != nil {
		t.Fatalf("with the password: %v", err)
	}
	if err := registerAndList(t, Options{Endpoints: ep, Username: "root", Password: "wrong"}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if err := registerAndList(t, Options{Endpoints: ep}); err == nil {
		t.Fatal("registered without credentials")
	}
}

// etcd over TLS with client certificates: the CA and a client certificate
// work; without the client certificate the server refuses.
func TestTLS(t *testing.T) {
	t.Parallel()
	e := etcdtest.NewTLS(t)
	ct := e.ClientTLS()
	ep := []string{e.Endpoint()}
	if err := registerAndList(t, Options{Endpoints: ep, TLS: &TLSFiles{CA: ct.CA, Cert: ct.Cert, Key: ct.Key}}); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	if err := registerAndList(t, Options{Endpoints: ep, TLS: &TLSFiles{CA: ct.CA}}); err == nil {
		t.Fatal("registered without a client certificate")
	}
	if _, err := Connect(context.Background(), Options{Endpoints: ep, TLS: &TLSFiles{CA: "/nonexistent"}}); err == nil {
		t.Fatal("Connect with a missing CA file succeeded")
	}
}
