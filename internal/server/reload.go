package server

import (
	"context"
	"errors"
	"slices"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/session"
)

// errNotServing refuses a reload before Serve or after shutdown began.
var errNotServing = errors.New("reload: not serving")

// Reload applies a new, already validated configuration without dropping
// a connection; reloads run one at a time. A service that keeps its name,
// listen address and mode keeps its socket: its new sessions get containers
// made from the new configuration while sessions in flight finish on
// theirs, and its pool is rebuilt. A service that is gone, or whose address
// or mode changed, stops listening and drains; a new one starts. All or
// nothing: images are made present first and new addresses are listened on
// before anything changes; if one fails, nothing does. Changes outside the
// services (node, daemons, limits, health, registries, reconcile) need a
// restart and are not applied.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if !s.isServing() {
		return errNotServing
	}
	if err := s.fleet.Prepare(ctx, images(s.imageChanges(cfg.Services), s.cfg.Node)); err != nil {
		return err
	}
	s.warnRestartOnly(cfg)
	svcs := s.keepInstanceServices(cfg.Services)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.diff(sessionServices(svcs))
	var opened []*running
	for _, sc := range d.added {
		r, err := s.open(sc)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return err
		}
		opened = append(opened, r)
	}
	for _, u := range d.updated {
		u.r.svc.Update(u.sc)
		s.log.Info("reload: service updated; new sessions use the new configuration", "service", u.sc.Name, "changed", u.changed)
	}
	for _, r := range d.removed {
		s.retire(r)
	}
	next := slices.Clone(d.kept)
	for _, r := range opened {
		s.serve(r)
		next = append(next, r)
		s.log.Info("reload: service started", "service", r.svc.Name())
	}
	s.running = next
	s.cfg.Services = svcs
	s.fleet.SetImages(images(svcs, s.cfg.Node))
	return nil
}

// sessionServices are the services that listen: all but instances.
func sessionServices(svcs []config.Service) []config.Service {
	return slices.DeleteFunc(slices.Clone(svcs), stateful)
}

// keepInstanceServices returns svcs with the instance services as they
// run now: those change with a restart only (their live instances are
// taken back then), and a reload says so.
func (s *Server) keepInstanceServices(svcs []config.Service) []config.Service {
	var old, next []config.Service
	for _, sc := range s.cfg.Services {
		if stateful(sc) {
			old = append(old, sc)
		}
	}
	for _, sc := range svcs {
		if stateful(sc) {
			next = append(next, sc)
		}
	}
	if !slices.EqualFunc(old, next, func(a, b config.Service) bool { return len(config.ServiceChanges(a, b)) == 0 && a.Name == b.Name }) {
		s.log.Warn("reload: instance and cluster services change with a restart only; they keep their running configuration")
	}
	return append(sessionServices(svcs), old...)
}

// diff is what a reload changes.
type diff struct {
	kept    []*running       // keep their listener (updated or not)
	updated []update         // kept, with a new configuration
	removed []*running       // gone, or re-added under a new address or mode
	added   []config.Service // to listen for
}

type update struct {
	r       *running
	sc      config.Service
	changed []string // the keys that changed
}

// diff compares the running services with svcs. The caller holds s.mu.
func (s *Server) diff(svcs []config.Service) diff {
	var d diff
	want := map[string]config.Service{}
	for _, sc := range svcs {
		want[sc.Name] = sc
	}
	kept := map[string]bool{}
	for _, r := range s.running {
		sc, ok := want[r.svc.Name()]
		old := r.svc.Config()
		if !ok || sc.Listen != old.Listen || sc.Mode != old.Mode {
			d.removed = append(d.removed, r)
			continue
		}
		kept[sc.Name] = true
		d.kept = append(d.kept, r)
		if changed := config.ServiceChanges(old, sc); len(changed) > 0 {
			d.updated = append(d.updated, update{r, sc, changed})
		}
	}
	for _, sc := range svcs {
		if !kept[sc.Name] {
			d.added = append(d.added, sc)
		}
	}
	return d
}

func (s *Server) isServing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving
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
		s.mu.Lock()
		s.retiring = slices.DeleteFunc(s.retiring, func(x *session.Service) bool { return x == r.svc })
		s.mu.Unlock()
		s.log.Info("reload: retired service drained", "service", r.svc.Name())
	})
}

// imageChanges returns the services whose image needs preparing: new ones,
// and those whose image or pull policy changed. The others' images were
// made present at start-up or when their daemon joined; pull: always
// means then, not at every reload.
func (s *Server) imageChanges(svcs []config.Service) []config.Service {
	s.mu.Lock()
	old := map[string]config.Service{}
	for _, sc := range s.cfg.Services {
		old[sc.Name] = sc
	}
	s.mu.Unlock()
	var out []config.Service
	for _, sc := range svcs {
		if o, ok := old[sc.Name]; !ok || o.Image != sc.Image || o.Pull != sc.Pull || o.Network != sc.Network || o.Egress != sc.Egress {
			out = append(out, sc)
		}
	}
	return out
}

func (s *Server) warnRestartOnly(cfg *config.Config) {
	s.mu.Lock()
	changed := config.RestartChanges(s.cfg, cfg)
	s.mu.Unlock()
	if len(changed) > 0 {
		s.log.Warn("reload: only services change on reload; these need a restart", "changed", changed)
	}
}
