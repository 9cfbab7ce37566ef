package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/metrics"
	"github.com/ganger-dev/ganger/internal/view"
)

// ErrNoDaemon means no daemon has the name given.
var ErrNoDaemon = fleet.ErrNoDaemon

// Services returns every running service's status, in config order.
func (s *Server) Services() []view.Service {
	s.mu.Lock()
	run := append([]*running(nil), s.running...)
	s.mu.Unlock()
	out := make([]view.Service, 0, len(run))
	for _, r := range run {
		c := r.svc.Config()
		out = append(out, view.Service{Name: c.Name, Listen: r.ln.Addr().String(), Mode: string(c.Mode), Image: c.Image, Placement: string(c.Placement), Stats: r.svc.Stats()})
	}
	return append(append(out, s.instanceViews()...), s.clusterViews()...)
}

// Daemons returns every daemon's status, in config order.
func (s *Server) Daemons() []view.Daemon { return s.fleet.Daemons() }

// Sessions returns the live sessions of every service and the recent ones
// that ended, newest first.
func (s *Server) Sessions() (live, recent []view.Session) {
	for _, svc := range s.serviceList() {
		live = append(live, svc.Sessions()...)
	}
	return live, s.env.Recent.List()
}

// Kill ends a live session; its container is removed as usual.
func (s *Server) Kill(id string) bool {
	for _, svc := range s.serviceList() {
		if svc.Kill(id) {
			return true
		}
	}
	return false
}

// Drain stops (on) or resumes (off) new containers on a daemon; live ones
// finish.
func (s *Server) Drain(daemon string, on bool) error { return s.fleet.Drain(daemon, on) }

// Ready reports whether the node serves: started, and a daemon is up.
func (s *Server) Ready() bool { return s.isServing() && s.fleet.Ready() }

// Serving reports whether the node serves its services (with a daemon up
// or not).
func (s *Server) Serving() bool { return s.isServing() }

// Fleet is the node's fleet.
func (s *Server) Fleet() *fleet.Fleet { return s.fleet }

// Metrics are the node's Prometheus metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.fleet.Metrics() }

// gauges reads the state gauges at scrape time.
type gauges struct{ s *Server }

var (
	descQueue          = prometheus.NewDesc("ganger_queue_length", "Clients waiting for room.", []string{"service"}, nil)
	descLive           = prometheus.NewDesc("ganger_live_sessions", "Sessions in progress.", []string{"service"}, nil)
	descPoolReady      = prometheus.NewDesc("ganger_pool_ready", "Ready containers waiting in the pool.", []string{"service"}, nil)
	descPoolTgt        = prometheus.NewDesc("ganger_pool_target", "Ready containers the pool aims to keep now (pool.min, or what measured demand needs if adaptive).", []string{"service"}, nil)
	descArrivals       = prometheus.NewDesc("ganger_pool_arrival_rate", "Sessions asking a pooled service for a container, per second, over the last few seconds.", []string{"service"}, nil)
	descStartAvg       = prometheus.NewDesc("ganger_pool_start_seconds", "Average time from asking for a container until it answers, as the adaptive pool measures it.", []string{"service", "daemon"}, nil)
	descInstances      = prometheus.NewDesc("ganger_instances", "Live instances, by state (starting, running).", []string{"service", "state"}, nil)
	descClusterMembers = prometheus.NewDesc("ganger_cluster_members", "A cluster's members, by state (pending, running, leaving) and readiness.", []string{"cluster", "state", "ready"}, nil)
	descClusterEpoch   = prometheus.NewDesc("ganger_cluster_epoch", "A cluster's published epoch.", []string{"cluster"}, nil)
	descDaemonUp       = prometheus.NewDesc("ganger_daemon_up", "1 if the daemon answers health checks.", []string{"daemon"}, nil)
	descDaemonCtr      = prometheus.NewDesc("ganger_daemon_containers", "This node's containers on the daemon.", []string{"daemon"}, nil)
	descStarting       = prometheus.NewDesc("ganger_daemon_starts_in_flight", "Container creates and starts in flight on the daemon.", []string{"daemon"}, nil)
	descConns          = prometheus.NewDesc("ganger_client_connections", "Client connections open (each holds a connection slot).", nil, nil)
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descLive, descPoolReady, descPoolTgt, descArrivals, descStartAvg, descInstances, descClusterMembers, descClusterEpoch, descDaemonUp, descDaemonCtr, descStarting, descConns, descHosts} {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	for _, svc := range g.s.Services() {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(svc.Queued), svc.Name)
		ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(svc.Live), svc.Name)
		ch <- prometheus.MustNewConstMetric(descPoolReady, prometheus.GaugeValue, float64(svc.PoolReady), svc.Name)
		if p := svc.Pool; p != nil {
			ch <- prometheus.MustNewConstMetric(descPoolTgt, prometheus.GaugeValue, float64(p.Target), svc.Name)
			ch <- prometheus.MustNewConstMetric(descArrivals, prometheus.GaugeValue, p.ArrivalRate, svc.Name)
			for d, t := range p.StartSeconds {
				ch <- prometheus.MustNewConstMetric(descStartAvg, prometheus.GaugeValue, t, svc.Name, d)
			}
		}
	}
	g.s.instanceGauges(ch)
	g.s.clusterGauges(ch)
	g.s.hostGauges(ch)
	for _, d := range g.s.Daemons() {
		up := 0.0
		if d.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descDaemonUp, prometheus.GaugeValue, up, d.Name)
		ch <- prometheus.MustNewConstMetric(descDaemonCtr, prometheus.GaugeValue, float64(d.Containers), d.Name)
		ch <- prometheus.MustNewConstMetric(descStarting, prometheus.GaugeValue, float64(d.Starting), d.Name)
	}
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(g.s.env.Conns.InUse()))
}
