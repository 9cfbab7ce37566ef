package server

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ganger-dev/ganger/internal/metrics"
	"github.com/ganger-dev/ganger/internal/session"
)

// ErrNoDaemon means no daemon has the name given.
var ErrNoDaemon = errors.New("no such daemon")

// ServiceStatus is one service as an operator sees it.
type ServiceStatus struct {
	Name      string `json:"name"`
	Listen    string `json:"listen"`
	Mode      string `json:"mode"`
	Image     string `json:"image"`
	Placement string `json:"placement"`
	session.Stats
}

// DaemonStatus is one daemon as an operator sees it.
type DaemonStatus struct {
	Name       string `json:"name"`
	Up         bool   `json:"up"`
	APIVersion string `json:"api_version"`
	Containers int    `json:"containers"` // this node's
	Others     int    `json:"other_nodes_containers"`
	Max        int    `json:"max_containers"`
	Drained    bool   `json:"drained"`
}

// Services returns every running service's status, in config order.
func (s *Server) Services() []ServiceStatus {
	s.mu.Lock()
	run := append([]*running(nil), s.running...)
	s.mu.Unlock()
	out := make([]ServiceStatus, 0, len(run))
	for _, r := range run {
		c := r.svc.Config()
		out = append(out, ServiceStatus{Name: c.Name, Listen: r.ln.Addr().String(), Mode: c.Mode, Image: c.Image, Placement: c.Placement, Stats: r.svc.Stats()})
	}
	return out
}

// Daemons returns every daemon's status, in config order.
func (s *Server) Daemons() []DaemonStatus {
	var out []DaemonStatus
	for i, st := range s.sched.Daemons() {
		m := s.members[i]
		m.mu.Lock()
		v := m.apiVersion
		m.mu.Unlock()
		out = append(out, DaemonStatus{Name: st.Name, Up: st.Up, APIVersion: v, Containers: st.Used, Others: st.Others, Max: st.Max, Drained: st.Drained})
	}
	return out
}

// Sessions returns the live sessions of every service and the recent ones
// that ended, newest first.
func (s *Server) Sessions() (live, recent []session.Info) {
	for _, svc := range s.serviceList() {
		live = append(live, svc.Sessions()...)
	}
	return live, s.cluster.Recent.List()
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
func (s *Server) Drain(daemon string, on bool) error {
	for _, m := range s.members {
		if m.name == daemon {
			s.sched.SetDrained(daemon, on)
			s.log.Info("daemon drain changed", "daemon", daemon, "drained", on)
			return nil
		}
	}
	return ErrNoDaemon
}

// Ready reports whether the node serves: started, and a daemon is up.
func (s *Server) Ready() bool {
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	for _, m := range s.members {
		if m.isUp() {
			return serving
		}
	}
	return false
}

// Metrics are the node's Prometheus metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.cluster.Metrics }

// gauges reads the state gauges at scrape time.
type gauges struct{ s *Server }

var (
	descQueue     = prometheus.NewDesc("ganger_queue_length", "Clients waiting for room.", []string{"service"}, nil)
	descLive      = prometheus.NewDesc("ganger_live_sessions", "Sessions in progress.", []string{"service"}, nil)
	descPoolReady = prometheus.NewDesc("ganger_pool_ready", "Ready containers waiting in the pool.", []string{"service"}, nil)
	descDaemonUp  = prometheus.NewDesc("ganger_daemon_up", "1 if the daemon answers health checks.", []string{"daemon"}, nil)
	descDaemonCtr = prometheus.NewDesc("ganger_daemon_containers", "This node's containers on the daemon.", []string{"daemon"}, nil)
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descLive, descPoolReady, descDaemonUp, descDaemonCtr} {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	for _, svc := range g.s.Services() {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(svc.Queued), svc.Name)
		ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(svc.Live), svc.Name)
		ch <- prometheus.MustNewConstMetric(descPoolReady, prometheus.GaugeValue, float64(svc.PoolReady), svc.Name)
	}
	for _, d := range g.s.Daemons() {
		up := 0.0
		if d.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descDaemonUp, prometheus.GaugeValue, up, d.Name)
		ch <- prometheus.MustNewConstMetric(descDaemonCtr, prometheus.GaugeValue, float64(d.Containers), d.Name)
	}
}
