package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/discovery"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/view"
)

// discovered is what this node knows of the hosts agents registered in
// etcd, and its own registration there.
type discovered struct {
	s      *Server
	cfg    config.Discovery
	client *discovery.Client
	reg    *discovery.Registration
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events *prometheus.CounterVec
	creds  *docker.Credentials

	// onAdd hears of each host added (the autoscaler settles its
	// requests); called without d.mu held.
	onAdd func(host string, at time.Time)

	mu        sync.Mutex
	stopped   bool
	hosts     map[string]*hostState
	connected bool
	watching  bool // the first listing arrived
}

// hostState is one discovered host.
type hostState struct {
	h          discovery.Host
	seen       time.Time // its key was last there
	goneAt     time.Time // its key went (zero: it is there)
	lost       bool      // gone past lost_grace: no new containers
	removed    bool      // taken out of the fleet (lost and empty)
	agentDrain bool      // its agent's draining, as set in the fleet
	lostDrain  bool      // lost, as set in the fleet
	lostTime   *time.Timer
	gen        int // bumped each time its key goes: an older timer does nothing
}

// startDiscovery connects to etcd, registers this node (refusing to start
// when another node holds its id: the two would sweep each other's
// containers) and starts watching the hosts. Call it before the fleet's
// start-up sweep.
func (s *Server) startDiscovery(ctx context.Context) error {
	if !s.cfg.Discovers() {
		return nil
	}
	e := s.cfg.Discovery.Etcd
	password, err := e.EtcdPassword()
	if err != nil {
		return fmt.Errorf("discovery.etcd.password_file: %w", err)
	}
	opt := discovery.Options{Endpoints: e.Endpoints, Prefix: e.Prefix, Username: e.Username, Password: password, Log: s.log}
	if t := e.TLS; t != nil {
		opt.TLS = &discovery.TLSFiles{CA: t.CA, Cert: t.Cert, Key: t.Key}
	}
	creds, err := credentials(s.cfg)
	if err != nil {
		return err
	}
	c, err := discovery.Connect(ctx, opt)
	if err != nil {
		return fmt.Errorf("discovery: etcd at %v: %w", e.Endpoints, err)
	}
	d := &discovered{s: s, cfg: s.cfg.Discovery, client: c, hosts: map[string]*hostState{}, creds: creds,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ganger_discovery_events_total",
			Help: "Changes to discovered hosts: added, lost, returned, removed, draining, undrained."}, []string{"event"})}
	for _, ev := range []string{"added", "lost", "returned", "removed", "draining", "undrained"} {
		d.events.WithLabelValues(ev)
	}
	s.fleet.Metrics().Registry.MustRegister(d.events)
	node := discovery.Node{Name: s.cfg.Node, ID: randomID(), API: s.cfg.API.Listen, Start: time.Now().UTC()}
	value, _ := json.Marshal(node)
	ttl := e.TTL.D()
	// A node restarted after kill -9 finds its own old key: it waits for
	// that lease to run out rather than refuse.
	reg, err := c.Register(ctx, "nodes", s.cfg.Node, node.ID, func() []byte { return value }, ttl, ttl+2*time.Second)
	if err != nil {
		c.Close()
		if errors.Is(err, discovery.ErrTaken) {
			return fmt.Errorf("node %q is already running (its key %snodes/%s is held by another process): two nodes with one id would sweep each other's containers; give this one another node id: %w",
				s.cfg.Node, e.Prefix, s.cfg.Node, err)
		}
		return fmt.Errorf("discovery: register node %s: %w", s.cfg.Node, err)
	}
	d.reg = reg
	s.disc = d
	s.log.Info("discovery: node registered", "node", s.cfg.Node, "prefix", e.Prefix, "endpoints", e.Endpoints)
	return nil
}

// watch follows the hosts until the node stops. Call it once the fleet
// runs: a host found joins like any daemon added at run time.
func (d *discovered) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Go(func() { d.client.WatchHosts(ctx, d.update) })
}

// waitListed waits (up to limit, or ctx's end) for the first listing of
// the hosts to be applied.
func (d *discovered) waitListed(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		d.mu.Lock()
		listed := d.watching
		d.mu.Unlock()
		if listed {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			d.s.log.Warn("discovery: no listing of the hosts yet; starting without them", "waited", limit)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopWatch ends the watch: no host is added or lost from here on.
func (d *discovered) stopWatch() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	d.mu.Lock()
	d.stopped = true // a lost-host timer firing now does nothing
	for _, h := range d.hosts {
		if h.lostTime != nil {
			h.lostTime.Stop()
		}
	}
	d.mu.Unlock()
}

// stop ends the watch and, last (once this node's containers are gone),
// its registration: until then no other process can start as this node.
func (d *discovered) stop() {
	d.stopWatch()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d.reg != nil {
		d.reg.Revoke(ctx)
	}
	d.client.Close()
}

// update takes the hosts etcd lists now (or, not connected, the last
// known ones, unchanged).
func (d *discovered) update(hosts map[string]discovery.Host, connected bool) {
	added := d.apply(hosts, connected)
	if d.onAdd != nil {
		for _, name := range added {
			at := hosts[name].RegisteredAt // when its agent registered it, not when this node heard
			if at.IsZero() {
				at = time.Now()
			}
			d.onAdd(name, at)
		}
	}
}

// apply is update under d.mu; it returns the hosts added.
func (d *discovered) apply(hosts map[string]discovery.Host, connected bool) (added []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if connected != d.connected {
		if connected {
			d.s.log.Info("discovery: etcd answers", "hosts", len(hosts))
		} else {
			d.s.log.Warn("discovery: etcd does not answer; keeping the last known hosts and serving on")
		}
	}
	d.connected = connected
	if !connected {
		return nil
	}
	d.watching = true
	now := time.Now()
	static := map[string]bool{}
	for _, dc := range d.s.cfg.Daemons {
		static[dc.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(hosts)) {
		h := hosts[name]
		if static[name] {
			d.s.log.Error("discovery: a registered host has the name of a configured daemon; ignored", "host", name)
			continue
		}
		st := d.hosts[name]
		switch {
		case st == nil || st.removed:
			st = &hostState{h: h}
			if err := d.add(h); err != nil {
				d.s.log.Error("discovery: cannot use a registered host", "host", name, "docker", h.Docker, "err", err)
				continue
			}
			d.hosts[name] = st
			added = append(added, name)
			d.events.WithLabelValues("added").Inc()
			d.s.log.Info("discovery: host added", "host", name, "docker", h.Docker, "advertise", h.Advertise, "max_containers", h.MaxContainers)
		case !st.goneAt.IsZero():
			if st.lostTime != nil {
				st.lostTime.Stop()
			}
			d.events.WithLabelValues("returned").Inc()
			d.s.log.Info("discovery: host registered again", "host", name, "was_lost", st.lost)
			st.goneAt, st.lost = time.Time{}, false
		}
		if h.Docker != st.h.Docker && st.h.Docker != "" {
			d.s.log.Warn("discovery: a host now gives another daemon address; the first is kept until it is lost", "host", name, "was", st.h.Docker, "now", h.Docker)
			h.Docker = st.h.Docker
		}
		st.h, st.seen = h, now
		d.setDrain(name, st)
	}
	for name, st := range d.hosts {
		if _, ok := hosts[name]; ok || !st.goneAt.IsZero() || st.removed {
			continue
		}
		st.goneAt = now
		st.gen++
		gen := st.gen
		grace := d.cfg.Etcd.LostGrace.D()
		d.s.log.Warn("discovery: a host's key is gone; it is lost unless it registers again", "host", name, "lost_grace", grace)
		st.lostTime = time.AfterFunc(grace, func() { d.lose(name, st, gen) })
	}
	return added
}

// lose marks a host whose key stayed gone past lost_grace: it takes no new
// containers. Its sessions go on; they end only if Ganger's own health
// checks fail.
func (d *discovered) lose(name string, st *hostState, gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.hosts[name] != st || st.gen != gen || st.goneAt.IsZero() || st.lost {
		return
	}
	st.lost = true
	d.events.WithLabelValues("lost").Inc()
	d.s.log.Warn("discovery: host lost: no new containers there; its sessions go on", "host", name, "gone_since", st.goneAt)
	d.setDrain(name, st)
	d.removeIfEmpty(name, st)
}

// setDrain drains a host the agent says is draining, or that is lost, and
// lifts those reasons when they no longer hold. Each is a reason of its
// own in the fleet: an operator's drain, or the autoscaler's, is theirs
// to lift.
func (d *discovered) setDrain(name string, st *hostState) {
	was := st.agentDrain || st.lostDrain
	if st.h.Draining != st.agentDrain && d.s.fleet.DrainFor(name, fleet.DrainAgent, st.h.Draining) == nil {
		st.agentDrain = st.h.Draining
	}
	if st.lost != st.lostDrain && d.s.fleet.DrainFor(name, fleet.DrainLost, st.lost) == nil {
		st.lostDrain = st.lost
	}
	switch now := st.agentDrain || st.lostDrain; {
	case now && !was:
		d.events.WithLabelValues("draining").Inc()
	case !now && was:
		d.events.WithLabelValues("undrained").Inc()
	}
}

// removeIfEmpty takes a lost host with no container of this node's out of
// the fleet. The caller holds d.mu.
func (d *discovered) removeIfEmpty(name string, st *hostState) {
	if !st.lost || st.removed {
		return
	}
	for _, dv := range d.s.fleet.Daemons() {
		if dv.Name == name && dv.Containers > 0 {
			return
		}
	}
	if err := d.s.fleet.Remove(name); err != nil {
		return
	}
	st.removed = true
	d.events.WithLabelValues("removed").Inc()
	d.s.log.Info("discovery: lost host removed: no container of this node's left there", "host", name)
}

// sweepLost removes lost hosts whose last containers are gone; the trim
// loop calls it.
func (d *discovered) sweepLost() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, st := range d.hosts {
		d.removeIfEmpty(name, st)
		if st.removed {
			delete(d.hosts, name)
		}
	}
}

// add makes a discovered host a daemon of the fleet; it joins as any
// daemon added at run time does (ping, images, sweep of this node's
// leftovers) before it is used.
func (d *discovered) add(h discovery.Host) error {
	dc := config.Daemon{Name: h.Name, Host: h.Docker, Advertise: h.Advertise, Dial: d.cfg.Dial,
		MaxContainers: h.MaxContainers, MaxStarts: d.cfg.MaxStarts}
	if dc.MaxContainers <= 0 {
		dc.MaxContainers = config.DefaultMaxContainers
	}
	if t := d.cfg.DockerTLS; t != nil {
		dc.TLS = &config.TLS{CA: t.CA, Cert: t.Cert, Key: t.Key}
	}
	if err := dc.Resolve(); err != nil {
		return err
	}
	b, err := docker.New(DockerConfig(dc), d.creds, d.s.log)
	if err != nil {
		return err
	}
	if err := d.s.fleet.Add(fleet.Daemon{Name: dc.Name, Backend: b, MaxContainers: dc.MaxContainers, MaxStarts: dc.MaxStarts}); err != nil {
		b.Close()
		return err
	}
	return nil
}

// Hosts are the Docker hosts as GET /v1/hosts shows them: the configured
// daemons and the discovered ones.
func (s *Server) Hosts() []view.Host { return s.hostViews() }

// Degraded says what is not well though the node serves.
func (s *Server) Degraded() []string {
	if why := s.discoveryDegraded(); why != "" {
		return []string{why}
	}
	return nil
}

func (s *Server) hostViews() []view.Host {
	var disc map[string]hostState
	if d := s.disc; d != nil {
		d.mu.Lock()
		disc = map[string]hostState{}
		for n, st := range d.hosts {
			disc[n] = *st
		}
		d.mu.Unlock()
	}
	var out []view.Host
	seen := map[string]bool{}
	for _, dv := range s.fleet.Daemons() {
		h := view.Host{Name: dv.Name, Source: "static", Containers: dv.Containers, Others: dv.Others, Capacity: dv.Max}
		for _, dc := range s.cfg.Daemons {
			if dc.Name == dv.Name {
				h.Docker, h.Advertise = dc.Host, dc.Advertise
			}
		}
		if st, ok := disc[dv.Name]; ok {
			h.Source, h.Docker, h.Advertise, h.Labels = "etcd", st.h.Docker, st.h.Advertise, st.h.Labels
			t := st.seen
			if !st.goneAt.IsZero() {
				t = st.goneAt
			}
			h.LastSeen = &t
		}
		switch st := disc[dv.Name]; {
		case st.lost:
			h.State = "lost"
		case !dv.Up:
			h.State = "down"
		case dv.Drained:
			h.State = "draining"
		default:
			h.State = "up"
		}
		seen[dv.Name] = true
		out = append(out, h)
	}
	return out
}

// discoveryDegraded says why discovery is not well, or "".
func (s *Server) discoveryDegraded() string {
	d := s.disc
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.watching:
		return "discovery: no listing of the hosts from etcd yet"
	case !d.connected:
		return "discovery: etcd does not answer; serving with the last known hosts"
	}
	return ""
}

var descHosts = prometheus.NewDesc("ganger_hosts", "Docker hosts by state (up, draining, lost, down).", []string{"state"}, nil)

func (s *Server) hostGauges(ch chan<- prometheus.Metric) {
	n := map[string]int{"up": 0, "draining": 0, "lost": 0, "down": 0}
	for _, h := range s.hostViews() {
		n[h.State]++
	}
	for st, v := range n {
		ch <- prometheus.MustNewConstMetric(descHosts, prometheus.GaugeValue, float64(v), st)
	}
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
