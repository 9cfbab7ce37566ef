package server

import (
	"context"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/autoscale"
	"github.com/ganger-dev/ganger/internal/fleet"
)

// scaling is the node's autoscaler: the engine of internal/autoscale over
// this node's fleet, deciding only while this node leads the etcd
// election.
type scaling struct {
	scaler *autoscale.Scaler
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startAutoscale starts deciding, once the fleet runs and discovery
// watches (an empty fleet would ask for hosts that exist).
func (s *Server) startAutoscale() {
	if s.cfg.Autoscale == nil || s.disc == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	leader := s.disc.client.Elect(ctx, "autoscale", s.cfg.Node, s.cfg.Discovery.Etcd.TTL.D())
	f := &scaleFleet{s: s, idle: map[string]time.Time{}, first: map[string]time.Time{}}
	sc := &scaling{scaler: autoscale.New(s.cfg.Autoscale.Engine(), f, leader, nil, s.log), cancel: cancel}
	s.disc.onAdd = sc.scaler.Registered
	sc.wg.Go(func() {
		// The first decision waits for the first listing of the hosts.
		for s.discoveryDegraded() != "" && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		sc.scaler.Run(ctx)
	})
	s.scale = sc
}

func (s *Server) stopAutoscale() {
	if s.scale != nil {
		s.scale.cancel()
		s.scale.wg.Wait()
	}
}

// Autoscale is the node's autoscaler, or nil.
func (s *Server) Autoscale() *autoscale.Scaler {
	if s.scale == nil {
		return nil
	}
	return s.scale.scaler
}

// scaleFleet is the fleet as the autoscaler sees it.
type scaleFleet struct {
	s     *Server
	mu    sync.Mutex
	idle  map[string]time.Time // since when a host has had no container
	first map[string]time.Time // when a static host was first seen
}

func (f *scaleFleet) Snapshot() autoscale.Snapshot {
	now := time.Now()
	snap := autoscale.Snapshot{At: now}
	reg := map[string]time.Time{}
	if d := f.s.disc; d != nil {
		d.mu.Lock()
		for n, st := range d.hosts {
			if !st.lost {
				reg[n] = st.h.RegisteredAt
				if reg[n].IsZero() {
					reg[n] = st.seen
				}
			}
		}
		d.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	present := map[string]bool{}
	for _, dv := range f.s.fleet.Daemons() {
		present[dv.Name] = true
		used := dv.Containers + dv.Others
		h := autoscale.Host{Name: dv.Name, Up: dv.Up, Draining: dv.Drained, Used: used, Capacity: dv.Max}
		if t, ok := reg[dv.Name]; ok {
			h.Registered, h.Autoscaled = t, true
		} else {
			if f.first[dv.Name].IsZero() {
				f.first[dv.Name] = now
			}
			h.Registered = f.first[dv.Name]
		}
		since, seen := f.idle[dv.Name]
		switch {
		case used > 0:
			f.idle[dv.Name] = time.Time{} // busy: idle again from when it empties
		case !seen && h.Autoscaled && !h.Registered.IsZero():
			f.idle[dv.Name] = h.Registered // never used: empty since it came
		case since.IsZero():
			f.idle[dv.Name] = now
		}
		h.IdleSince = f.idle[dv.Name]
		snap.Hosts = append(snap.Hosts, h)
	}
	for name := range f.idle { // a host gone: one back under its name starts afresh
		if !present[name] {
			delete(f.idle, name)
			delete(f.first, name)
		}
	}
	for _, sv := range f.s.Services() {
		snap.Queued += sv.Queued
	}
	return snap
}

func (f *scaleFleet) Drain(host string, on bool) error {
	return f.s.fleet.DrainFor(host, fleet.DrainAutoscale, on)
}

// Busy: a container of any node's on the host (a session, a pooled or
// shared container, an instance), asked of the daemon now: other
// front-ends place there too. A daemon that does not answer is busy.
func (f *scaleFleet) Busy(host string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := f.s.fleet.ListAll(ctx, host)
	if err != nil {
		return true
	}
	for _, c := range cs {
		if c.State != "exited" && c.State != "dead" {
			return true
		}
	}
	return false
}
