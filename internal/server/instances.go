package server

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/instance"
	"github.com/ganger-dev/ganger/internal/session"
	"github.com/ganger-dev/ganger/internal/store/postgres"
	"github.com/ganger-dev/ganger/internal/store/sqlite"
	"github.com/ganger-dev/ganger/internal/view"
)

// openInstances opens the store and makes the instance manager, when a
// service is mode: instance. Call it before the fleet starts: the
// manager's live records tell the start-up sweep what to keep.
func (s *Server) openInstances(ctx context.Context) error {
	if !s.cfg.Stateful() {
		return nil
	}
	st, err := openStore(ctx, s.cfg)
	if err != nil {
		return err
	}
	if !s.cfg.Instances() {
		s.store = st // clusters only
		return nil
	}
	var svcs []instance.Service
	for _, sc := range s.cfg.Services {
		if sc.Mode != ganger.Instance {
			continue
		}
		is, err := instanceService(sc, s.cfg.Node)
		if err != nil {
			st.Close()
			return err
		}
		s.fleet.Sched().AddService(sc.Name, session.SchedLimits(sc))
		svcs = append(svcs, is)
	}
	m := instance.NewManager(s.cfg.Node, instance.Env{Fleet: s.fleet, Store: st, Log: s.log}, svcs)
	if err := m.Load(ctx); err != nil {
		st.Close()
		return err
	}
	s.store, s.instances = st, m
	return nil
}

func openStore(ctx context.Context, cfg *config.Config) (instance.Store, error) {
	switch cfg.Store.Driver {
	case "postgres":
		dsn, err := cfg.Store.DSNValue()
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return st, nil
	default:
		st, err := sqlite.Open(cfg.Store.StorePath(cfg.Dir()))
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return st, nil
	}
}

// instanceService is what the manager needs of a mode: instance service.
func instanceService(sc config.Service, node string) (instance.Service, error) {
	in := sc.Instance
	is := instance.Service{
		Name:     sc.Name,
		Spec:     session.SpecFor(sc, node),
		Ports:    slices.Clone(sc.Ports),
		Life:     instance.Lifetime{TTL: in.TTL.D(), MaxTTL: in.MaxTTL.D(), By: in.Extend.By.D(), Max: in.Extend.Max},
		PerOwner: in.PerOwner, Rate: in.CreateRate.Rate, Burst: in.CreateRate.Burst,
		Return: in.OnExisting == "return", Secrets: maps.Clone(in.Secrets),
		Queue: sc.Queue.Timeout.D(), Ready: sc.Ready.Timeout.D(), Backoff: sc.Ready.Backoff.D(), BackoffMax: sc.Ready.BackoffMax.D(),
	}
	if in.Access == "proxy" {
		lo, hi, _ := in.ProxyRange()
		is.Proxy = &instance.Proxy{ListenIP: in.ListenIP, Host: in.ProxyHost(), Low: lo, High: hi, Idle: in.IdleTTL.D()}
	}
	if in.Connect != "" {
		t, err := instance.ParseTemplate("connect", in.Connect)
		if err != nil {
			return is, fmt.Errorf("service %s: connect: %w", sc.Name, err)
		}
		is.Connect = t
	}
	return is, nil
}

// Instances is the node's instance manager, or nil when no service is
// mode: instance.
func (s *Server) Instances() *instance.Manager { return s.instances }

// keep is the fleet's sweep hook: what a live instance record owns stays.
func (s *Server) keep(c ganger.Managed) bool {
	if m := s.clusters; m != nil && m.Keep(c) {
		return true
	}
	m := s.instances
	return m != nil && m.Keep(c)
}

// instanceViews are the instance services as the status page and
// /v1/services show them: their live instances count as live.
func (s *Server) instanceViews() []view.Service {
	live := map[string]int{}
	if m := s.instances; m != nil {
		if recs, err := m.List(context.Background(), instance.Filter{LiveOnly: true}); err == nil {
			for _, r := range recs {
				live[r.Service]++
			}
		}
	}
	var out []view.Service
	for _, sc := range s.cfg.Services {
		if sc.Mode != ganger.Instance {
			continue
		}
		out = append(out, view.Service{Name: sc.Name, Mode: string(sc.Mode), Image: sc.Image, Placement: string(sc.Placement),
			Stats: view.Stats{Live: live[sc.Name], Failures: map[string]int64{}, Queued: s.fleet.Sched().Queued(sc.Name)}})
	}
	return out
}

// instanceGauges counts the live instances of each instance service by
// state, for /metrics.
func (s *Server) instanceGauges(ch chan<- prometheus.Metric) {
	if s.instances == nil {
		return
	}
	recs, err := s.instances.List(context.Background(), instance.Filter{LiveOnly: true})
	if err != nil {
		return
	}
	n := map[[2]string]int{}
	for _, sc := range s.cfg.Services {
		if sc.Mode == ganger.Instance {
			n[[2]string{sc.Name, string(instance.Starting)}] += 0
			n[[2]string{sc.Name, string(instance.Running)}] += 0
		}
	}
	for _, r := range recs {
		n[[2]string{r.Service, string(r.State)}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
}
