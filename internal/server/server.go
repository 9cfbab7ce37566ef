// Package server wires a loaded configuration into a running Ganger node:
// a fleet over the daemons it is given, a service per configured service,
// reloads, and an orderly shutdown.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/clusterd"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/session"
)

// SetupTimeout bounds start-up (pings, image pulls, sweep) and a reload's
// image pulls.
const SetupTimeout = 10 * time.Minute

// CleanupTimeout bounds container removal at shutdown.
const CleanupTimeout = time.Minute

// Server is one Ganger node.
type Server struct {
	cfg   *config.Config
	log   *slog.Logger
	fleet *fleet.Fleet
	env   session.Env

	store     instance.Store    // nil without instance services
	instances *instance.Manager // nil without instance services
	clusters  *clusterd.Manager // nil without cluster services
	disc      *discovered       // nil without discovery
	scale     *scaling          // nil without autoscale

	reloadMu  sync.Mutex // one reload at a time, start to end
	closeOnce sync.Once  // Close releases once, however often called

	mu       sync.Mutex
	running  []*running         // config order
	retiring []*session.Service // removed by a reload, draining
	serving  bool               // Serve has started the services
	wg       sync.WaitGroup     // every service's Serve, and every retirement
	errc     chan error         // a service's listener failed
}

// running is one service and its listener.
type running struct {
	svc *session.Service
	ln  net.Listener
}

// New returns a node for cfg over the given daemons (see Daemons for the
// configured Docker ones). It contacts nothing yet: Start does.
func New(cfg *config.Config, daemons []fleet.Daemon, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, errc: make(chan error, 1)}
	f := fleet.New(fleet.Options{
		Keep:        s.keep,
		Node:        cfg.Node,
		Log:         log,
		MaxSessions: cfg.Limits.MaxSessions,
		Health: fleet.Health{
			Interval: cfg.Health.Interval.D(),
			Timeout:  cfg.Health.Timeout.D(),
			Failures: cfg.Health.Failures,
		},
		Reconcile: cfg.Reconcile.D(),
		Dynamic:   cfg.Discovers(),
	})
	for _, d := range daemons {
		if err := f.Add(d); err != nil {
			return nil, err
		}
	}
	conns := cfg.Limits.MaxConnections
	if conns == 0 {
		conns = DefaultMaxConnections()
	}
	s.fleet = f
	s.env = session.Env{Fleet: f, Recent: session.NewRecent(200), Conns: session.NewSlots(conns)}
	f.SetImages(images(cfg.Services, cfg.Node))
	f.Metrics().Registry.MustRegister(gauges{s})
	log.Info("connection cap", "max_connections", conns)
	return s, nil
}

func images(svcs []config.Service, node string) []fleet.Image {
	out := make([]fleet.Image, 0, len(svcs))
	for _, sc := range svcs {
		out = append(out, fleet.Image{Service: sc.Name, Ref: sc.Image, Pull: sc.Pull, Network: session.NetworkFor(sc, node)})
	}
	return out
}

// Start readies the node: daemons that answer are swept of this node's
// leftovers and given every image; every service listens. It fails if no
// daemon answers, if two daemons are one engine, or if a service's image
// is on none that does. On error nothing is left listening.
func (s *Server) Start(ctx context.Context) error {
	if err := s.openInstances(ctx); err != nil {
		return err
	}
	if err := s.openClusters(ctx); err != nil {
		s.closeStore()
		return err
	}
	if err := s.startDiscovery(ctx); err != nil {
		s.closeStore()
		return err
	}
	if err := s.fleet.Start(ctx); err != nil {
		s.closeStore()
		s.stopDiscovery()
		return err
	}
	if s.disc != nil {
		s.startAutoscale() // before the watch: it hears of every host added
		s.disc.watch()
		// Instances on discovered hosts are taken back from those hosts:
		// the first listing must be in.
		s.disc.waitListed(ctx, 15*time.Second)
	}
	if s.instances != nil {
		if err := s.instances.Start(ctx); err != nil {
			s.Close()
			return err
		}
	}
	if s.clusters != nil {
		if err := s.clusters.Start(ctx); err != nil {
			s.Close()
			return err
		}
	}
	for _, sc := range s.cfg.Services {
		if stateful(sc) {
			continue // no listener: clients reach each instance, or member, at its own ports
		}
		r, err := s.open(sc)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.running = append(s.running, r)
	}
	return nil
}

// open listens for a service and makes it, not yet serving.
func (s *Server) open(sc config.Service) (*running, error) {
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return nil, fmt.Errorf("service %s: listen on %s: %w", sc.Name, sc.Listen, err)
	}
	s.log.Info("listening", "service", sc.Name, "addr", ln.Addr().String(), "image", sc.Image, "mode", sc.Mode, "placement", sc.Placement)
	return &running{svc: session.New(sc, s.env, s.log), ln: ln}, nil
}

// serve runs r's accept loop until it is shut down. The caller holds s.mu.
func (s *Server) serve(r *running) {
	s.wg.Go(func() {
		if err := r.svc.Serve(r.ln); err != nil {
			select {
			case s.errc <- fmt.Errorf("service %s: %w", r.svc.Name(), err):
			default:
			}
		}
	})
}

// Addr returns where the named service listens, or nil.
func (s *Server) Addr(service string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		if r.svc.Name() == service {
			return r.ln.Addr()
		}
	}
	return nil
}

// serviceList returns every service, running or retiring.
func (s *Server) serviceList() []*session.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.retiring)
	for _, r := range s.running {
		out = append(out, r.svc)
	}
	return out
}

// Serve runs every service until ctx is done, then shuts down: stop
// accepting; let sessions drain up to each service's drain timeout (or
// until force is done); end the rest; remove every container; sweep.
func (s *Server) Serve(ctx, force context.Context) error {
	s.mu.Lock()
	s.serving = true
	for _, r := range s.running {
		s.serve(r)
	}
	s.mu.Unlock()
	tctx, stopTrim := context.WithCancel(ctx)
	defer stopTrim()
	s.wg.Go(func() { s.trimWhenIdle(tctx) })
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errc:
	}
	stopTrim()
	s.shutdown(force)
	return err
}

func (s *Server) shutdown(force context.Context) {
	s.log.Info("shutting down: no new sessions; draining")
	s.stopAutoscale() // no decision, no hook, while services drain
	s.reloadMu.Lock() // no reload from here on
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	s.serving = false
	svcs := slices.Clone(s.retiring)
	for _, r := range s.running {
		svcs = append(svcs, r.svc)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, svc := range svcs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(force, svc.Config().Timeouts.Drain.D())
			defer cancel()
			svc.Shutdown(ctx)
		})
	}
	wg.Wait()
	s.wg.Wait()
	if s.instances != nil {
		s.instances.Close() // instances live on: the next start takes them back
	}
	if s.clusters != nil {
		s.clusters.Close() // so do clusters
	}
	s.stopAutoscale()
	if s.disc != nil {
		s.disc.stopWatch()
	}
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	s.fleet.Close(ctx)
	s.closeStore()
	s.stopDiscovery() // last: this node's id stays taken while it sweeps
	s.log.Info("stopped")
}

func (s *Server) closeStore() {
	if s.store != nil {
		s.store.Close()
	}
}

func (s *Server) closeListeners() {
	for _, r := range s.running {
		r.ln.Close()
	}
	s.running = nil
}

// Close releases what Start acquired when Serve is never called.
func (s *Server) Close() {
	s.closeOnce.Do(s.close)
}

func (s *Server) close() {
	s.closeListeners()
	if s.instances != nil {
		s.instances.Close()
	}
	if s.clusters != nil {
		s.clusters.Close()
	}
	s.stopAutoscale()
	if s.disc != nil {
		s.disc.stopWatch()
	}
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	s.fleet.Close(ctx)
	s.closeStore()
	s.stopDiscovery()
}

func (s *Server) stopDiscovery() {
	if s.disc != nil {
		s.disc.stop()
	}
}
