// Package server wires a loaded configuration into a running Ganger node:
// it checks every daemon, makes every image present, sweeps what an earlier
// run of this node left behind, listens for every service, watches the
// daemons' health, and shuts all of it down in order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/docker"
	"github.com/ganger-dev/ganger/internal/sched"
	"github.com/ganger-dev/ganger/internal/session"
)

// Daemon is what the server needs from a Docker daemon beyond sessions.
type Daemon interface {
	session.Backend
	Ping(ctx context.Context) (apiVersion string, err error)
	EnsureImage(ctx context.Context, ref, policy string) error
	ListManaged(ctx context.Context, owner string) ([]ganger.Managed, error)
	Close() error
}

var _ Daemon = (*docker.Daemon)(nil)

// SetupTimeout bounds start-up (pings, image pulls, sweep).
const SetupTimeout = 10 * time.Minute

// CleanupTimeout bounds container removal at shutdown.
const CleanupTimeout = time.Minute

// Server is one Ganger node.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	members  []*member
	sched    *sched.Scheduler
	cluster  *session.Cluster
	mu       sync.Mutex
	running  []*running         // config order
	retiring []*session.Service // removed by a reload, draining
	serving  bool               // Serve has started the services
	wg       sync.WaitGroup     // every service's Serve, and every retirement
	errc     chan error         // a service's listener failed

	imageMu   sync.Mutex
	imageErrs map[string][]error // by service: why daemons could not get its image
}

// running is one service and its listener.
type running struct {
	svc *session.Service
	ln  net.Listener
}

// member is one daemon and what the server knows of its health.
type member struct {
	d    Daemon
	name string

	mu         sync.Mutex
	up         bool
	fails      int // failed pings in a row
	apiVersion string

	unowned map[string]bool // seen unowned by the last reconcile pass (its goroutine only)
}

func (m *member) isUp() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up
}

// New connects nothing yet: Start does.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	creds, err := docker.LoadCredentials(cfg.Registries)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, sched: sched.New(cfg.Limits.MaxSessions), imageErrs: map[string][]error{}, errc: make(chan error, 1)}
	var backends []session.Backend
	for _, dc := range cfg.Daemons {
		d, err := docker.New(dc, creds, log)
		if err != nil {
			s.closeDaemons()
			return nil, err
		}
		s.members = append(s.members, &member{d: d, name: dc.Name})
		s.sched.AddDaemon(dc.Name, dc.MaxContainers)
		backends = append(backends, d)
	}
	s.cluster = session.NewCluster(s.sched, backends...)
	s.cluster.Suspect = s.suspect
	s.cluster.Metrics.Registry.MustRegister(gauges{s})
	return s, nil
}

// Start readies the node: daemons that answer are swept of this node's
// leftovers and given every image; every service listens. It fails if no
// daemon answers, or a service's image is on none that does. On error
// nothing is left listening.
func (s *Server) Start(ctx context.Context) error {
	var errs []error
	for _, m := range s.members {
		if err := s.join(ctx, m, "start-up"); err != nil {
			s.log.Warn("daemon not used for now; health checks will retry", "daemon", m.name, "err", err)
			errs = append(errs, err)
		}
	}
	if len(errs) == len(s.members) {
		return fmt.Errorf("no daemon answers: %w", errors.Join(errs...))
	}
	for _, svc := range s.cfg.Services {
		if !s.imageSomewhere(svc.Name) {
			s.imageMu.Lock()
			why := errors.Join(s.imageErrs[svc.Name]...)
			s.imageMu.Unlock()
			return fmt.Errorf("service %s: image %s is on no daemon that answers: %w", svc.Name, svc.Image, why)
		}
	}
	return s.listen()
}

func (s *Server) listen() error {
	for _, sc := range s.cfg.Services {
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
	return &running{svc: session.New(sc, s.cfg.Node, s.cluster, s.log), ln: ln}, nil
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

// Serve runs every service, the health checks and the reconciler until ctx
// is done, then shuts down: stop accepting; let sessions drain up to each
// service's drain timeout (or until force is done); end the rest; remove
// every container; sweep.
func (s *Server) Serve(ctx, force context.Context) error {
	s.mu.Lock()
	s.serving = true
	for _, r := range s.running {
		s.serve(r)
	}
	s.mu.Unlock()
	var bg sync.WaitGroup
	bgctx, stopBG := context.WithCancel(context.Background())
	for _, m := range s.members {
		bg.Go(func() { s.watch(bgctx, m) })
	}
	if every := s.cfg.Reconcile.D(); every > 0 {
		bg.Go(func() { s.reconcileEvery(bgctx, every) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errc:
	}
	stopBG()
	bg.Wait()
	s.shutdown(force)
	return err
}

func (s *Server) shutdown(force context.Context) {
	s.log.Info("shutting down: no new sessions; draining")
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
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	for _, svc := range svcs {
		if err := svc.WaitCleanup(ctx); err != nil {
			s.log.Error("container removal did not finish", "service", svc.Name(), "err", err)
		}
	}
	s.wg.Wait()
	for _, m := range s.members {
		if !m.isUp() {
			s.log.Warn("daemon down at shutdown: its leftovers are swept at the next start", "daemon", m.name)
			continue
		}
		if _, err := s.sweep(ctx, m, "shutdown"); err != nil {
			s.log.Error("final sweep failed", "daemon", m.name, "err", err)
		}
	}
	s.closeDaemons()
	s.log.Info("stopped")
}

func (s *Server) closeListeners() {
	for _, r := range s.running {
		r.ln.Close()
	}
	s.running = nil
}

func (s *Server) closeDaemons() {
	for _, m := range s.members {
		m.d.Close()
	}
}

// Close releases what Start acquired when Serve is never called.
func (s *Server) Close() {
	s.closeListeners()
	s.closeDaemons()
}
