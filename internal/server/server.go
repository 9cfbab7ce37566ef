// Package server wires a loaded configuration into a running Ganger node:
// it checks every daemon, makes every image present, sweeps what an earlier
// run of this node left behind, listens for every service, and shuts all of
// it down in order.
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
	"github.com/ganger-dev/ganger/internal/session"
)

// Daemon is what the server needs from a Docker daemon beyond sessions.
type Daemon interface {
	session.Backend
	Ping(ctx context.Context) (apiVersion string, err error)
	EnsureImage(ctx context.Context, ref string) error
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
	daemons  []Daemon
	services []*session.Service
	lns      []net.Listener
}

// New connects nothing yet: Start does.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log}
	for _, dc := range cfg.Daemons {
		d, err := docker.New(dc, log)
		if err != nil {
			s.closeDaemons()
			return nil, err
		}
		s.daemons = append(s.daemons, d)
	}
	return s, nil
}

// Start readies the node: every daemon answers, every image is present,
// orphans of an earlier run are removed, and every service listens. On
// error nothing is left listening.
func (s *Server) Start(ctx context.Context) error {
	for _, d := range s.daemons {
		v, err := d.Ping(ctx)
		if err != nil {
			return err
		}
		s.log.Info("daemon answers", "daemon", d.Name(), "api_version", v)
	}
	for _, d := range s.daemons {
		for _, svc := range s.cfg.Services {
			if err := d.EnsureImage(ctx, svc.Image); err != nil {
				return fmt.Errorf("service %s: %w", svc.Name, err)
			}
		}
	}
	if err := s.sweep(ctx, "start-up"); err != nil {
		return err
	}
	return s.listen()
}

func (s *Server) listen() error {
	// One daemon for now: placement over many is the scheduler's job.
	b := s.daemons[0]
	slots := session.NewSlots(s.cfg.Daemons[0].MaxContainers)
	for _, sc := range s.cfg.Services {
		ln, err := net.Listen("tcp", sc.Listen)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("service %s: listen on %s: %w", sc.Name, sc.Listen, err)
		}
		s.lns = append(s.lns, ln)
		s.services = append(s.services, session.New(sc, s.cfg.Node, b, slots, s.log))
		s.log.Info("listening", "service", sc.Name, "addr", ln.Addr().String(), "image", sc.Image)
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

// Serve runs every service until ctx is done, then shuts down: stop
// accepting; let sessions drain up to each service's drain timeout (or
// until force is done); end the rest; remove every container; sweep.
func (s *Server) Serve(ctx, force context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(s.services))
	for i, svc := range s.services {
		wg.Go(func() {
			if err := svc.Serve(s.lns[i]); err != nil {
				errc <- fmt.Errorf("service %s: %w", svc.Name(), err)
			}
		})
	}
	rctx, stopReconcile := context.WithCancel(context.Background())
	if every := s.cfg.Reconcile.D(); every > 0 {
		wg.Go(func() { s.reconcileEvery(rctx, every) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopReconcile()
	s.shutdown(force)
	wg.Wait()
	return err
}

// reconcileEvery removes, every interval, the containers of this node that
// no live session owns. Missed removals and anything else that slipped
// through end here rather than at the next restart.
func (s *Server) reconcileEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reconcile(ctx)
		}
	}
}

// reconcile removes the containers that were owned neither before they
// were listed nor after: a session that ended in between has had its
// container removed already (it stays owned until then), and one that began
// in between is owned now.
func (s *Server) reconcile(ctx context.Context) {
	for _, d := range s.daemons {
		before := s.liveSessions()
		found, err := d.ListManaged(ctx, s.cfg.Node)
		if err != nil {
			s.log.Warn("reconcile: cannot list containers", "daemon", d.Name(), "err", err)
			continue
		}
		for _, m := range found {
			if before[m.Labels[ganger.LabelService]+"/"+m.Labels[ganger.LabelSession]] || s.owned(m) {
				continue
			}
			if err := d.Remove(ctx, m.ID); err != nil {
				s.log.Warn("reconcile: cannot remove orphan", "daemon", d.Name(), "container", m.Name, "err", err)
				continue
			}
			s.log.Info("reconcile: removed orphan", "daemon", d.Name(), "container", m.Name, "service", m.Labels[ganger.LabelService])
		}
	}
}

// liveSessions returns every service/session pair owned now.
func (s *Server) liveSessions() map[string]bool {
	live := map[string]bool{}
	for _, svc := range s.services {
		for _, id := range svc.Live() {
			live[svc.Name()+"/"+id] = true
		}
	}
	return live
}

// owned reports whether a live session of a running service owns m.
func (s *Server) owned(m ganger.Managed) bool {
	for _, svc := range s.services {
		if svc.Name() == m.Labels[ganger.LabelService] {
			return svc.Owns(m.Labels[ganger.LabelSession])
		}
	}
	return false
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
	if err := s.sweep(ctx, "shutdown"); err != nil {
		s.log.Error("final sweep failed", "err", err)
	}
	s.closeDaemons()
	s.log.Info("stopped")
}

// sweep removes every container of this node on every daemon. At start-up
// they are orphans of an earlier run (a crash, kill -9); at shutdown,
// anything a removal missed.
func (s *Server) sweep(ctx context.Context, when string) error {
	var errs []error
	for _, d := range s.daemons {
		found, err := d.ListManaged(ctx, s.cfg.Node)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed := 0
		for _, m := range found {
			if err := d.Remove(ctx, m.ID); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
		s.log.Info("swept containers of this node", "when", when, "daemon", d.Name(), "owner", s.cfg.Node, "removed", removed)
	}
	return errors.Join(errs...)
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
}

func (s *Server) closeDaemons() {
	for _, d := range s.daemons {
		d.Close()
	}
}

// Close releases what Start acquired when Serve is never called.
func (s *Server) Close() {
	s.closeListeners()
	s.closeDaemons()
}
