package server_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/ganger-dev/ganger/internal/dockertest"
)

// perDaemon counts the node's containers on each extra daemon, in order.
func perDaemon(t *testing.T, h *harness) string {
	t.Helper()
	out := ""
	for _, e := range extraDaemons(t) {
		out += fmt.Sprint(ownedOn(t, e, h.node))
	}
	return out
}

// openSessions opens n sessions and waits for each banner: all are placed.
func openSessions(t *testing.T, h *harness, service string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c := h.dial(service)
		readLine(t, c, bufio.NewReader(c))
		conns = append(conns, c)
	}
	return conns
}

func TestSpreadOverThreeDaemons(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`), opts{daemons: onExtras(t, 3, 3)})
	openSessions(t, h, "echo", 9)
	if got := perDaemon(t, h); got != "333" {
		t.Fatalf("containers per daemon %s; want 333", got)
	}
}

func TestBinpack(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`, "placement: binpack"), opts{daemons: onExtras(t, 3, 3)})
	openSessions(t, h, "echo", 4)
	if got := perDaemon(t, h); got != "310" {
		t.Fatalf("containers per daemon %s; want 310 (fill the first, then the next)", got)
	}
}

// With no room a client waits its turn, and is served when a container is
// removed; one that waits past queue.timeout is told and closed.
func TestQueueAndQueueTimeout(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`, "queue: {max: 5, timeout: 1500ms, reject_message: busy}"), opts{daemons: onExtras(t, 1, 1)})
	a := openSessions(t, h, "echo", 1)[0]
	b := h.dial("echo")
	dockertest.Eventually(t, 30*time.Second, "b not queued", func() bool {
		return len(h.logs.Lines("session start")) == 2
	})
	a.Close()
	if got := readLine(t, b, bufio.NewReader(b)); got != "hi" {
		t.Fatalf("queued client got %q; want served once a slot freed", got)
	}
	c := h.dial("echo")
	if got := expectClosed(t, c); string(got) != "busy\n" {
		t.Fatalf("got %q; want the reject message, then closed", got)
	}
	h.waitLog("session end", "outcome=queue_timeout")
}

// Past queue.max a client is refused at once; a queued client that leaves
// frees its place.
func TestQueueLengthLimit(t *testing.T) {
	h := start(t, svc("echo", `["-banner", "hi"]`, "queue: {max: 1, timeout: 1m, reject_message: full}"), opts{daemons: onExtras(t, 1, 1)})
	openSessions(t, h, "echo", 1)
	queued := h.dial("echo")
	dockertest.Eventually(t, 30*time.Second, "not queued", func() bool { return len(h.logs.Lines("session start")) == 2 })
	over := h.dial("echo")
	if got := expectClosed(t, over); string(got) != "full\n" {
		t.Fatalf("got %q; want refused at once with the reject message", got)
	}
	h.waitLog("session end", "outcome=queue_full")
	queued.Close()
	h.waitLog("session end", "outcome=client_gone")
	again := h.dial("echo") // the place is free again: this one waits, not refused
	again.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := again.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v; want the client waiting in the queue", err)
	}
}

func dialFrom(t *testing.T, h *harness, service, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", h.srv.Addr(service).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPerIPLimits(t *testing.T) {
	h := start(t, svc("capped", `["-banner", "hi"]`, "per_ip: 2")+svc("rated", `["-banner", "hi"]`, "per_ip_rate: {rate: 0.1, burst: 1}"))
	openSessions(t, h, "capped", 2)
	if got := expectClosed(t, h.dial("capped")); len(got) != 0 {
		t.Fatalf("third session from one address got %q; want refused", got)
	}
	h.waitLog("session end", "outcome=refused_per_ip")
	other := dialFrom(t, h, "capped", "127.0.0.2")
	if got := readLine(t, other, bufio.NewReader(other)); got != "hi" {
		t.Fatalf("another address got %q; want served", got)
	}
	openSessions(t, h, "rated", 1)
	if got := expectClosed(t, h.dial("rated")); len(got) != 0 {
		t.Fatalf("second new session within the rate got %q; want refused", got)
	}
	h.waitLog("session end", "outcome=refused_rate")
}

func TestProxyProtocol(t *testing.T) {
	h := start(t, svc("pp", `["-banner", "hi"]`, "proxy_protocol: true", "trusted_proxies: [127.0.0.1/32]"))
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40001}
	dst := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5454}
	for _, version := range []byte{1, 2} {
		c := h.dial("pp")
		hdr, err := proxyproto.HeaderProxyFromAddrs(version, src, dst).Format()
		if err != nil {
			t.Fatal(err)
		}
		c.Write(append(hdr, "ping\n"...)) // data right behind the header is kept
		r := bufio.NewReader(c)
		if got := readLine(t, c, r); got != "hi" {
			t.Fatalf("v%d: got %q", version, got)
		}
		if got := readLine(t, c, r); got != "ping" {
			t.Fatalf("v%d: got %q; want the bytes sent with the header", version, got)
		}
		c.Close()
		src.Port++
	}
	if n := len(h.logs.Lines("session start", "client=203.0.113.7:")); n != 2 {
		t.Fatalf("%d start lines with the real client; want 2", n)
	}
	untrusted := dialFrom(t, h, "pp", "127.0.0.2")
	untrusted.Write([]byte("PROXY TCP4 198.51.100.1 127.0.0.1 1 2\r\n"))
	if got := expectClosed(t, untrusted); len(got) != 0 {
		t.Fatalf("untrusted peer got %q; want refused", got)
	}
	bad := h.dial("pp")
	bad.Write([]byte("PROXY TCP4 not-an-address\r\n"))
	if got := expectClosed(t, bad); len(got) != 0 {
		t.Fatalf("malformed header got %q; want refused", got)
	}
	none := h.dial("pp")
	none.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	if got := expectClosed(t, none); len(got) != 0 {
		t.Fatalf("no header got %q; want refused", got)
	}
	dockertest.Eventually(t, 30*time.Second, "refusals not logged", func() bool {
		return len(h.logs.Lines("session end", "outcome=refused_proxy")) == 3
	})
	if len(h.logs.Lines("not a trusted proxy")) != 1 {
		t.Fatal("the untrusted refusal does not say why")
	}
}
