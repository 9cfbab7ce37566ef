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
	services []*session.Service
	lns      []net.Listener

	imageMu   sync.Mutex
	imageErrs map[string][]error // by service: why daemons could not get its image
}

// member is one daemon and what the server knows of its health.
type member struct {
	d    Daemon
	name string

	mu    sync.Mutex
	up    bool
	fails int // failed pings in a row
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
	s := &Server{cfg: cfg, log: log, sched: sched.New(cfg.Limits.MaxSessions), imageErrs: map[string][]error{}}
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
		ln, err := net.Listen("tcp", sc.Listen)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("service %s: listen on %s: %w", sc.Name, sc.Listen, err)
		}
		s.lns = append(s.lns, ln)
		s.services = append(s.services, session.New(sc, s.cfg.Node, s.cluster, s.log))
		s.log.Info("listening", "service", sc.Name, "addr", ln.Addr().String(), "image", sc.Image, "placement", sc.Placement)
	}
	return nil
}

// Addr returns where the named service listens, or nil.
func (s *Server) Addr(service string) net.Addr {
	for i, svc := range s.services {
		if svc.Name() == service {
			return s.lns[i].Addr()
		}
	}
	return nil
}

// Serve runs every service, the health checks and the reconciler until ctx
// is done, then shuts down: stop accepting; let sessions drain up to each
// service's drain timeout (or until force is done); end the rest; remove
// every container; sweep.
func (s *Server) Serve(ctx, force context.Context) error {
	var wg, bg sync.WaitGroup
	errc := make(chan error, len(s.services))
	for i, svc := range s.services {
		wg.Go(func() {
			if err := svc.Serve(s.lns[i]); err != nil {
				errc <- fmt.Errorf("service %s: %w", svc.Name(), err)
			}
		})
	}
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
	case err = <-errc:
	}
	stopBG()
	bg.Wait()
	s.shutdown(force)
	wg.Wait()
	return err
}

func (s *Server) shutdown(force context.Context) {
	s.log.Info("shutting down: no new sessions; draining")
	var wg sync.WaitGroup
	for i, svc := range s.services {
		drain := s.cfg.Services[i].Timeouts.Drain.D()
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(force, drain)
			defer cancel()
			svc.Shutdown(ctx)
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	for _, svc := range s.services {
		if err := svc.WaitCleanup(ctx); err != nil {
			s.log.Error("container removal did not finish", "service", svc.Name(), "err", err)
		}
	}
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
	for _, ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
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
