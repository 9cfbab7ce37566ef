package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
)

// Reload applies a new, already validated configuration without dropping
// a connection. A service that keeps its name, listen address and mode
// keeps its socket: its new sessions get containers made from the new
// configuration while sessions in flight finish on theirs, and its pool is
// rebuilt. A service that is gone, or whose address or mode changed, stops
// listening and drains; a new one starts. Images are made present first;
// if one cannot be had anywhere, nothing changes. Changes outside the
// services (node, daemons, limits, health, registries, reconcile) need a
// restart and are not applied.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) error {
	if err := s.prepareImages(ctx, s.imageChanges(cfg.Services)); err != nil {
		return err
	}
	s.warnRestartOnly(cfg)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.serving {
		return errors.New("reload: not serving")
	}
	keep := map[string]config.Service{}
	for _, sc := range cfg.Services {
		keep[sc.Name] = sc
	}
	var next []*running
	for _, r := range s.running {
		sc, ok := keep[r.svc.Name()]
		old := r.svc.Config()
		if ok && sc.Listen == old.Listen && sc.Mode == old.Mode {
			if !reflect.DeepEqual(sc, old) {
				r.svc.Update(sc)
				s.log.Info("reload: service updated; new sessions use the new configuration", "service", sc.Name, "image", sc.Image)
			}
			next = append(next, r)
			delete(keep, sc.Name)
			continue
		}
		s.retire(r)
	}
	var errs []error
	for _, sc := range cfg.Services {
		if _, ok := keep[sc.Name]; !ok {
			continue
		}
		r, err := s.open(sc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.serve(r)
		next = append(next, r)
		s.log.Info("reload: service started", "service", sc.Name)
	}
	s.running = next
	s.cfg.Services = cfg.Services // s.mu held: see servicesConfig
	return errors.Join(errs...)
}

// retire stops a service listening and drains it in the background. The
// caller holds s.mu.
func (s *Server) retire(r *running) {
	s.log.Info("reload: service stops listening and drains", "service", r.svc.Name())
	s.retiring = append(s.retiring, r.svc)
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.svc.Config().Timeouts.Drain.D())
		r.svc.Shutdown(ctx)
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), CleanupTimeout)
		r.svc.WaitCleanup(ctx)
		cancel()
		s.mu.Lock()
		for i, svc := range s.retiring {
			if svc == r.svc {
				s.retiring = append(s.retiring[:i], s.retiring[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		s.log.Info("reload: retired service drained", "service", r.svc.Name())
	})
}

// imageChanges returns the services whose image needs preparing: new ones,
// and those whose image or pull policy changed. The others' images were
// made present at start-up or when their daemon joined; pull: always
// means then, not at every reload.
func (s *Server) imageChanges(svcs []config.Service) []config.Service {
	old := map[string]config.Service{}
	for _, sc := range s.servicesConfig() {
		old[sc.Name] = sc
	}
	var out []config.Service
	for _, sc := range svcs {
		if o, ok := old[sc.Name]; !ok || o.Image != sc.Image || o.Pull != sc.Pull {
			out = append(out, sc)
		}
	}
	return out
}

// prepareImages makes each service's image present on every daemon that
// is up, per its pull policy, and fails if one is on none. Only then does
// the scheduler learn where each image is: a reload that fails changes
// nothing.
func (s *Server) prepareImages(ctx context.Context, svcs []config.Service) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	type has struct {
		daemon, service string
		ok              bool
	}
	var found []has
	for _, sc := range svcs {
		var errs []error
		any := false
		for _, m := range s.members {
			if !m.isUp() {
				continue
			}
			err := m.d.EnsureImage(ctx, sc.Image, sc.Pull)
			found = append(found, has{m.name, sc.Name, err == nil})
			if err != nil {
				errs = append(errs, err)
			}
			any = any || err == nil
		}
		if !any {
			return fmt.Errorf("reload: service %s: image %s is on no daemon that answers: %w", sc.Name, sc.Image, errors.Join(errs...))
		}
	}
	for _, h := range found {
		s.sched.SetImage(h.daemon, h.service, h.ok)
	}
	return nil
}

func (s *Server) warnRestartOnly(cfg *config.Config) {
	a, b := *s.cfg, *cfg
	a.Services, b.Services, a.Log, b.Log = nil, nil, config.Log{}, config.Log{}
	if !reflect.DeepEqual(a, b) {
		s.log.Warn("reload: only services change on reload; node, daemons, limits, health, registries and reconcile need a restart")
	}
}
