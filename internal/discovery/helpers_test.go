package discovery

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/etcdtest"
)

// fastTiming makes a test's clients notice and retry within a second.
var fastTiming = timing{request: time.Second, probe: 200 * time.Millisecond,
	backoffMin: 20 * time.Millisecond, backoffMax: 300 * time.Millisecond}

// testLog collects a client's log lines.
type testLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// connect makes a client of endpoint with fast timing, closed at t's end;
// its log is shown if t fails.
func connect(t *testing.T, endpoint string) (*Client, *testLog) {
	t.Helper()
	logs := &testLog{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{Endpoints: []string{endpoint}, Prefix: "/t",
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	c.timing = fastTiming
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("client log:\n%s", logs)
		}
	})
	return c, logs
}

// hostValue is an agent's value for name and id.
func hostValue(name, id string, draining *bool) func() []byte {
	return func() []byte {
		h := Host{Name: name, ID: id, Docker: "unix:///var/run/docker.sock", Advertise: "127.0.0.1",
			MaxContainers: 7, Labels: map[string]string{"zone": "a"}, RegisteredAt: time.Now().UTC()}
		if draining != nil {
			h.Draining = *draining
		}
		b, _ := json.Marshal(h)
		return b
	}
}

func register(t *testing.T, c *Client, name, id string, ttl time.Duration) *Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Register(ctx, KindHosts, name, id, hostValue(name, id, nil), ttl, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventually polls cond until it holds, failing t after a bound that is
// not a claim about speed.
func eventually(t *testing.T, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watcher records what WatchHosts reports.
type watcher struct {
	mu        sync.Mutex
	hosts     map[string]Host
	connected bool
	calls     int
	offline   map[string]Host // the set reported with connected=false, if any
}

// watch runs WatchHosts on c until t ends.
func watch(t *testing.T, c *Client) *watcher {
	w := &watcher{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.WatchHosts(ctx, w.update) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("WatchHosts returned %v; want context.Canceled", err)
		}
	})
	return w
}

func (w *watcher) update(hosts map[string]Host, connected bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hosts, w.connected = hosts, connected
	w.calls++
	if !connected {
		w.offline = hosts
	}
}

// names are the hosts last reported, sorted and joined, and whether
// connected.
func (w *watcher) names() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return joinNames(w.hosts), w.connected
}

func (w *watcher) host(name string) (Host, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.hosts[name]
	return h, ok
}

// waitFor waits until the last report is want (names joined by ",") and
// connected.
func (w *watcher) waitFor(t *testing.T, want string) {
	t.Helper()
	eventually(t, "the watcher never reported "+want, func() bool {
		got, connected := w.names()
		return connected && got == want
	})
}

func joinNames[V any](m map[string]V) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// etcd starts a server for t.
func etcd(t *testing.T) *etcdtest.Etcd {
	t.Parallel()
	return etcdtest.New(t)
}

// proxy forwards TCP connections to an address until cut: a partition
// between a client and etcd that the test controls.
type proxy struct {
	t      *testing.T
	addr   string // where it listens
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

func (p *proxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, u) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) { io.Copy(dst, src); dst.Close(); src.Close(); done <- struct{}{} }
	go pipe(u, c)
	go pipe(c, u)
	<-done
	<-done
}

// track records a connection pair, or closes it if the proxy is cut.
func (p *proxy) track(c, u net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		u.Close()
		return false
	}
	p.conns[c], p.conns[u] = true, true
	return true
}

// cut closes every connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore accepts connections again, on the same address.
func (p *proxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}
