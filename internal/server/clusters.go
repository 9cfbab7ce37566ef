package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/cluster"
	"github.com/ganger-dev/ganger/internal/clusterd"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/session"
	"github.com/ganger-dev/ganger/internal/view"
)

// openClusters makes the cluster manager, when a service is mode:
// cluster, over the store openInstances opened. Call it before the fleet
// starts: the records tell the start-up sweep what to keep.
func (s *Server) openClusters(ctx context.Context) error {
	if !s.cfg.Clusters() {
		return nil
	}
	st, ok := s.store.(clusterd.Store)
	if !ok {
		return fmt.Errorf("clusters: the store keeps no cluster records")
	}
	var svcs []clusterd.Service
	for _, sc := range s.cfg.Services {
		if sc.Mode != ganger.ClusterMode {
			continue
		}
		cs, err := clusterService(s.cfg, sc)
		if err != nil {
			return err
		}
		s.fleet.Sched().AddService(sc.Name, session.SchedLimits(sc))
		svcs = append(svcs, cs)
	}
	m := clusterd.NewManager(s.cfg.Node, clusterd.Env{Fleet: s.fleet, Store: st, Log: s.log}, svcs)
	if err := m.Load(ctx); err != nil {
		return err
	}
	s.clusters = m
	return nil
}

// clusterService is what the manager needs of a mode: cluster service.
func clusterService(cfg *config.Config, sc config.Service) (clusterd.Service, error) {
	k := sc.Cluster
	spec := cluster.Spec{Name: sc.Name, Size: k.Size, MinReady: k.MinReady, Rollout: cluster.Rollout(k.Rollout),
		Damper: k.Damper.D(), MemberTimeout: k.MemberTimeout.D(), PinVolumes: k.Volumes == "per_ordinal"}
	for _, d := range k.DependsOn {
		spec.DependsOn = append(spec.DependsOn, cluster.Dep{Cluster: d.Cluster, MinReady: d.MinReady})
	}
	cs := clusterd.Service{Name: sc.Name, Spec: session.SpecFor(sc, cfg.Node), Ports: slices.Clone(sc.Ports),
		Cluster: spec, Files: map[string]*clusterd.Template{}, API: k.API, Ready: sc.Ready.Timeout.D()}
	cs.APIPort, _ = cfg.APIPort()
	if k.Volumes == "per_ordinal" {
		cs.VolumePath = k.VolumePath
	}
	files := sc.ClusterFiles()
	for _, path := range slices.Sorted(maps.Keys(files)) {
		t, err := config.ParseClusterFile(path, files[path])
		if err != nil {
			return cs, fmt.Errorf("service %s: init_config.files.%s: %w", sc.Name, path, err)
		}
		cs.Files[path] = t
	}
	return cs, nil
}

// Clusters is the node's cluster manager, or nil when no service is
// mode: cluster.
func (s *Server) Clusters() *clusterd.Manager { return s.clusters }

// clusterViews are the cluster services as /v1/services shows them: their
// running members count as live.
func (s *Server) clusterViews() []view.Service {
	if s.clusters == nil {
		return nil
	}
	var out []view.Service
	for _, sc := range s.cfg.Services {
		if sc.Mode != ganger.ClusterMode {
			continue
		}
		live := 0
		if c, err := s.clusters.Status(sc.Name); err == nil {
			for _, m := range c.Members {
				if m.State != "pending" {
					live++
				}
			}
		}
		out = append(out, view.Service{Name: sc.Name, Mode: string(sc.Mode), Image: sc.Image, Placement: string(sc.Placement),
			Stats: view.Stats{Live: live, Failures: map[string]int64{}}})
	}
	return out
}

// clusterGauges are each cluster's members by state and readiness, and
// its epoch, for /metrics.
func (s *Server) clusterGauges(ch chan<- prometheus.Metric) {
	if s.clusters == nil {
		return
	}
	for _, c := range s.clusters.Statuses() {
		n := map[[2]string]int{{"running", "true"}: 0, {"running", "false"}: 0}
		for _, m := range c.Members {
			n[[2]string{m.State, strconv.FormatBool(m.Ready)}]++
		}
		for k, v := range n {
			ch <- prometheus.MustNewConstMetric(descClusterMembers, prometheus.GaugeValue, float64(v), c.Name, k[0], k[1])
		}
		ch <- prometheus.MustNewConstMetric(descClusterEpoch, prometheus.GaugeValue, float64(c.Epoch), c.Name)
	}
}

// stateful: a service whose containers outlive Ganger (instances,
// clusters) and that listens for no session.
func stateful(sc config.Service) bool {
	return sc.Mode == ganger.Instance || sc.Mode == ganger.ClusterMode
}
