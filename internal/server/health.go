package server

import (
	"context"

	"github.com/ganger-dev/ganger/internal/config"
)

// join readies a daemon that answers and puts it to use: this node's
// containers there that no live session owns are removed, then each
// service's image is made present (a service whose image it cannot get
// does not use it), then it is marked up.
func (s *Server) join(ctx context.Context, m *member, when string) error {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Health.Timeout.D())
	v, err := m.d.Ping(pctx)
	cancel()
	if err != nil {
		return err
	}
	s.log.Info("daemon answers", "daemon", m.name, "api_version", v, "when", when)
	if _, err := s.sweep(ctx, m, when); err != nil {
		return err
	}
	for _, svc := range s.servicesConfig() {
		err := m.d.EnsureImage(ctx, svc.Image, svc.Pull)
		if err != nil {
			s.log.Error("daemon cannot get the image: not used for this service", "daemon", m.name, "service", svc.Name, "image", svc.Image, "err", err)
			if when == "start-up" { // for Start's error; later failures are logged only
				s.imageMu.Lock()
				s.imageErrs[svc.Name] = append(s.imageErrs[svc.Name], err)
				s.imageMu.Unlock()
			}
		}
		s.sched.SetImage(m.name, svc.Name, err == nil)
	}
	m.mu.Lock()
	m.up, m.fails, m.apiVersion = true, 0, v
	m.mu.Unlock()
	s.cluster.Up(m.name)
	s.sched.SetUp(m.name, true)
	return nil
}

func (s *Server) imageSomewhere(service string) bool {
	for _, m := range s.members {
		if m.isUp() && s.sched.HasImage(m.name, service) {
			return true
		}
	}
	return false
}

// watch pings the daemon every health interval. After health.failures
// failures in a row it is marked down; when it answers again it rejoins.
func (s *Server) watch(ctx context.Context, m *member) {
	tick(ctx, s.cfg.Health.Interval.D(), func() {
		if m.isUp() {
			s.check(ctx, m, s.cfg.Health.Failures)
		} else if err := s.join(ctx, m, "recovery"); err == nil {
			s.log.Info("daemon up again", "daemon", m.name)
		}
	})
}

// check pings an up daemon once and marks it down if that makes failures
// failed pings in a row. It reports whether the daemon is now down.
func (s *Server) check(ctx context.Context, m *member, failures int) bool {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Health.Timeout.D())
	_, err := m.d.Ping(pctx)
	cancel()
	m.mu.Lock()
	if err == nil {
		m.fails = 0
	} else {
		m.fails++
	}
	turnDown := err != nil && m.up && m.fails >= failures
	if turnDown {
		m.up = false
	}
	down := !m.up
	m.mu.Unlock()
	if turnDown {
		s.markDown(m, err)
	}
	return down
}

// markDown stops placing on the daemon and ends its sessions: their clients
// are closed at once rather than left on a daemon that is gone.
func (s *Server) markDown(m *member, err error) {
	s.log.Warn("daemon down: not used until it answers again; its sessions end", "daemon", m.name, "err", err)
	s.sched.SetUp(m.name, false)
	s.cluster.Down(m.name)
}

// suspect is told by a session that a call to the daemon failed: one failed
// ping now is enough to mark it down, so the session can go elsewhere.
func (s *Server) suspect(name string) bool {
	for _, m := range s.members {
		if m.name == name {
			return s.check(context.Background(), m, 1)
		}
	}
	return false
}

// servicesConfig is the services' configuration now (a reload changes it).
func (s *Server) servicesConfig() []config.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Services
}
