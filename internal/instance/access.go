package instance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/proxy"
)

// Proxy is access: proxy: Ganger listens for each instance on ports of its
// own, from a range, and proxies to the container, which publishes
// nothing. Ganger sees every connection, so it can count bytes and end an
// instance nobody uses.
type Proxy struct {
	ListenIP  string // where Ganger listens ("0.0.0.0": everywhere)
	Host      string // the address clients are told
	Low, High int    // the port range, inclusive
	// Idle ends an instance with no open connection this long; 0: never.
	Idle time.Duration
}

// ErrNoPort means every port of a proxy range is taken.
var ErrNoPort = errors.New("no free port in the service's port_range")

// gate is the front door of one proxied instance: a listener per port,
// and the connections through them.
type gate struct {
	id   string
	svc  *Service
	lns  map[int]net.Listener // by container port
	keys []string             // the addresses it holds in m.bound
	ctx  context.Context      // ends every connection when the gate closes
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	c      *fleet.Container // nil while the container is being replaced
	addrs  map[int]string   // where c's ports are dialled
	open   int              // connections open now
	closed bool             // no new connection is served
	idleAt time.Time        // when the last connection closed (or the gate opened)
	bytes  [2]atomic.Int64  // in, out not yet written to the record
}

// openGate listens for the instance id on ports (container port → port
// of Ganger's) or, when ports is nil, on free ports of the range, and
// returns the gate; nothing is served until the gate has a container
// (setContainer).
func (m *Manager) openGate(svc *Service, id string, ports map[int]int) (*gate, error) {
	g := &gate{id: id, svc: svc, lns: map[int]net.Listener{}, idleAt: m.clock.Now()}
	g.ctx, g.stop = context.WithCancel(m.ctx)
	fail := func(err error) (*gate, error) {
		m.closeGate(g)
		return nil, err
	}
	for _, p := range svc.Ports {
		var ln net.Listener
		var key string
		var err error
		if hp, ok := ports[p]; ok {
			ln, key, err = m.bind(svc.Proxy, hp)
		} else {
			ln, key, err = m.bindFree(svc.Proxy)
		}
		if err != nil {
			return fail(fmt.Errorf("port %d: %w", p, err))
		}
		g.lns[p], g.keys = ln, append(g.keys, key)
	}
	m.mu.Lock()
	m.gates[id] = g
	m.mu.Unlock()
	for p, ln := range g.lns {
		g.wg.Go(func() { m.accept(g, p, ln) })
	}
	return g, nil
}

// bind listens on port of the proxy's address, unless this node has given
// it to another instance already.
func (m *Manager) bind(px *Proxy, port int) (net.Listener, string, error) {
	addr := net.JoinHostPort(px.ListenIP, strconv.Itoa(port))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bound[addr] {
		return nil, "", fmt.Errorf("listen on %s: taken by another instance", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	m.bound[addr] = true
	return ln, addr, nil
}

// bindFree listens on a free port of the range, starting the search at a
// random one (a port just freed is the last to be given again).
func (m *Manager) bindFree(px *Proxy) (net.Listener, string, error) {
	n := px.High - px.Low + 1
	start := rand.IntN(n)
	for i := range n {
		if ln, key, err := m.bind(px, px.Low+(start+i)%n); err == nil {
			return ln, key, nil
		}
	}
	return nil, "", fmt.Errorf("%w (%d-%d)", ErrNoPort, px.Low, px.High)
}

// closeGate stops listening, ends the gate's connections and waits for
// them, then frees its ports.
func (m *Manager) closeGate(g *gate) {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.stop()
	for _, ln := range g.lns {
		ln.Close()
	}
	g.wg.Wait()
	m.mu.Lock()
	for _, key := range g.keys {
		delete(m.bound, key)
	}
	if m.gates[g.id] == g {
		delete(m.gates, g.id)
	}
	m.mu.Unlock()
	m.idle.Cancel(g.id)
}

// ports are the gate's ports: container port → Ganger's port.
func (g *gate) ports() map[int]int {
	out := make(map[int]int, len(g.lns))
	for p, ln := range g.lns {
		out[p] = ln.Addr().(*net.TCPAddr).Port
	}
	return out
}

// setContainer points the gate at c (nil: refuse connections until the
// next one), and starts counting idleness.
func (m *Manager) setContainer(ctx context.Context, g *gate, c *fleet.Container) error {
	var addrs map[int]string
	if c != nil {
		var err error
		if addrs, err = c.DialAddrs(ctx, g.svc.Ports); err != nil {
			return err
		}
	}
	g.mu.Lock()
	g.c, g.addrs = c, addrs
	idle := g.open == 0 && c != nil
	if idle {
		g.idleAt = m.clock.Now()
	}
	g.mu.Unlock()
	if idle && g.svc.Proxy.Idle > 0 {
		m.idle.Set(g.id, m.clock.Now().Add(g.svc.Proxy.Idle))
	}
	return nil
}

// accept serves one port of the gate until its listener closes.
func (m *Manager) accept(g *gate, port int, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if fleet.OutOfFiles(err) {
				time.Sleep(50 * time.Millisecond) // clients wait in the backlog
				continue
			}
			return
		}
		g.mu.Lock()
		addr, ok := g.addrs[port]
		if g.closed || g.c == nil || !ok {
			g.mu.Unlock()
			conn.Close()
			continue
		}
		g.open++
		g.mu.Unlock()
		m.idle.Cancel(g.id)
		g.wg.Go(func() { m.serve(g, conn.(*net.TCPConn), addr) })
	}
}

// serve proxies one client connection to the container.
func (m *Manager) serve(g *gate, client *net.TCPConn, addr string) {
	var st proxy.Stats
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(g.ctx, "tcp", addr)
	if err != nil {
		client.Close()
		m.log.Warn("instance connection failed: cannot reach its container", "instance", g.id, "err", err)
	} else {
		st = proxy.Pipe(g.ctx, client, up.(*net.TCPConn), proxy.Options{})
		g.bytes[0].Add(st.In)
		g.bytes[1].Add(st.Out)
	}
	g.mu.Lock()
	g.open--
	idle := g.open == 0 && !g.closed
	if idle {
		g.idleAt = m.clock.Now()
	}
	g.mu.Unlock()
	if idle && g.svc.Proxy.Idle > 0 {
		m.idle.Set(g.id, m.clock.Now().Add(g.svc.Proxy.Idle))
	}
	if st.In+st.Out > 0 && g.ctx.Err() == nil {
		m.flushBytes(g)
	}
}

// flushBytes adds what the gate moved since the last flush to the record.
func (m *Manager) flushBytes(g *gate) {
	in, out := g.bytes[0].Swap(0), g.bytes[1].Swap(0)
	if in+out == 0 {
		return
	}
	_, err := m.env.Store.Update(context.Background(), g.id, func(r *Record) error {
		r.BytesIn += in
		r.BytesOut += out
		return nil
	})
	if err != nil {
		g.bytes[0].Add(in) // kept for the next flush
		g.bytes[1].Add(out)
	}
}

// idleEnd is an instance's idle deadline coming: it ends it if no
// connection opened meanwhile.
func (m *Manager) idleEnd(id string) {
	m.mu.Lock()
	g, c := m.gates[id], m.live[id]
	m.mu.Unlock()
	if g == nil || c == nil {
		return
	}
	g.mu.Lock()
	idle := g.open == 0 && g.c == c
	since := g.idleAt
	g.mu.Unlock()
	if !idle {
		return
	}
	if due := since.Add(g.svc.Proxy.Idle); m.clock.Now().Before(due) {
		m.idle.Set(id, due)
		return
	}
	switch _, err := m.finish(id, c, Expired, fmt.Sprintf("idle: no connection for %s", g.svc.Proxy.Idle)); {
	case err == nil:
		m.log.Info("instance expired: idle", "instance", id, "idle_ttl", g.svc.Proxy.Idle)
	case errors.Is(err, ErrRemove):
		m.idle.Set(id, m.clock.Now().Add(retryRemove))
	}
}

// gateOf returns the instance's gate, or nil.
func (m *Manager) gateOf(id string) *gate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gates[id]
}

// proxySpec adapts a container spec to access: proxy: nothing published,
// every port dialled by Ganger.
func proxySpec(svc *Service, ports []int) ([]int, []int) {
	if svc.Proxy == nil {
		return slices.Clone(ports), nil
	}
	return nil, slices.Clone(ports[1:])
}
