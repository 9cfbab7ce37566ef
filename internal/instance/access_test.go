package instance_test

import (
	"context"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/fleet/fleettest"
	"github.com/ganger-dev/ganger/internal/instance"
)

// proxied is the test service behind Ganger's proxy, on two ports, with
// an idle_ttl of 10 minutes.
func proxied() instance.Service {
	svc := service()
	svc.Ports = []int{7777, 7778}
	lo := 40000 + rand.IntN(20000)
	svc.Proxy = &instance.Proxy{ListenIP: "127.0.0.1", Host: "127.0.0.1", Low: lo, High: lo + 49, Idle: 10 * time.Minute}
	return svc
}

// dialEcho connects to one of the instance's ports and checks that a line
// goes there and back; the connection is left open for the caller.
func dialEcho(t *testing.T, rec instance.Record, port int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(rec.Host, strconv.Itoa(rec.Ports[port])), bound)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(bound))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through port %d: %q, %v", port, buf, err)
	}
	return c
}

// access: proxy. The container publishes nothing; Ganger listens on a port
// of its range for each of the instance's ports and proxies, counts the
// bytes, keeps the ports over a restart of the instance and of Ganger, and
// ends the instance after idle_ttl without a connection (never while one
// is open).
func TestInstanceProxy(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	db := filepath.Join(t.TempDir(), "g.db")
	c := newClock()
	svc := proxied()
	r := newRig(t, fake, db, c, svc)
	ctx := context.Background()
	rec, _, _, err := r.m.Create(ctx, "redis", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	px := svc.Proxy
	for _, p := range svc.Ports {
		if hp := rec.Ports[p]; hp < px.Low || hp > px.High {
			t.Fatalf("port %d on %d; want one of %d-%d", p, hp, px.Low, px.High)
		}
	}
	if spec, _ := fake.Spec(rec.Container); len(spec.Publish) != 0 || !slices.Equal(spec.Dial, []int{7778}) || rec.Host != "127.0.0.1" {
		t.Fatalf("spec publishes %v, dials %v, host %s; want nothing published, 7778 dialled, Ganger's host", spec.Publish, spec.Dial, rec.Host)
	}
	dialEcho(t, rec, 7777).Close()
	dialEcho(t, rec, 7778).Close()
	eventually(t, "bytes not counted", func() bool {
		got, _ := r.store.Get(ctx, rec.ID)
		return got.BytesIn == 8 && got.BytesOut == 8
	})

	// A restart of the instance keeps its ports; so does one of Ganger.
	re, err := r.m.Restart(ctx, rec.ID)
	if err != nil || !maps.Equal(re.Ports, rec.Ports) {
		t.Fatalf("restart: %v, ports %v; want %v", err, re.Ports, rec.Ports)
	}
	dialEcho(t, re, 7778).Close()
	r.stop()
	if _, err := net.Dial("tcp", net.JoinHostPort(rec.Host, strconv.Itoa(rec.Ports[7777]))); err == nil {
		t.Fatal("Ganger stopped, but its proxy port still answers")
	}
	r = newRig(t, fake, db, c, svc)
	open := dialEcho(t, rec, 7777)

	// Idle: not while a connection is open, then idle_ttl after the last
	// one closed.
	c.Advance(30 * time.Minute)
	if r.state(t, rec.ID) != instance.Running {
		t.Fatal("ended as idle with a connection open")
	}
	closed := c.Now()
	open.Close()
	eventually(t, "no idle deadline after the last connection closed", func() bool { return c.Waiting(closed.Add(px.Idle)) })
	c.Advance(px.Idle - time.Second)
	time.Sleep(20 * time.Millisecond)
	if r.state(t, rec.ID) != instance.Running {
		t.Fatal("ended before idle_ttl")
	}
	c.Advance(time.Second)
	eventually(t, "not ended after idle_ttl", func() bool { return r.state(t, rec.ID) == instance.Expired })
	got, _ := r.store.Get(ctx, rec.ID)
	if !strings.HasPrefix(got.Reason, "idle") || got.BytesIn != 16 || got.BytesOut != 16 || fake.Live() != 0 {
		t.Fatalf("ended: reason %q, bytes %d/%d, %d containers; want idle, 16/16, none", got.Reason, got.BytesIn, got.BytesOut, fake.Live())
	}
	if _, err := net.Dial("tcp", net.JoinHostPort(rec.Host, strconv.Itoa(rec.Ports[7777]))); err == nil {
		t.Fatal("an ended instance's port still answers")
	}
}

// Listening everywhere (0.0.0.0, as by default), an ended instance gives
// its ports back: a range of one instance's worth serves one after
// another; a restart keeps telling clients Ganger's host.
func TestInstanceProxyPortsFreed(t *testing.T) {
	t.Parallel()
	fake := fleettest.New(t, "img")
	svc := proxied()
	svc.Ports = []int{7777}
	svc.Proxy.ListenIP, svc.Proxy.Host = "0.0.0.0", "ganger.example"
	svc.Proxy.High = svc.Proxy.Low + 1
	r := newRig(t, fake, filepath.Join(t.TempDir(), "g.db"), newClock(), svc)
	ctx := context.Background()
	for i := range 5 {
		rec, _, _, err := r.m.Create(ctx, "redis", "a", 0)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		if rec.Host != "ganger.example" {
			t.Fatalf("host %q", rec.Host)
		}
		if i == 0 {
			re, err := r.m.Restart(ctx, rec.ID)
			if err != nil || re.Host != "ganger.example" {
				t.Fatalf("restart: %+v, %v; want Ganger's host kept", re, err)
			}
		}
		if _, err := r.m.Delete(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
	}
}
