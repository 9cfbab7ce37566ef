// Package metrics holds Ganger's Prometheus metrics, on a private registry
// (never the global one). Every name starts with ganger_.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the counters and histograms sessions update as they go.
// Gauges of current state (queues, pools, daemons) are read at scrape time
// by a Collector the server registers.
type Metrics struct {
	Registry *prometheus.Registry

	SessionsStarted  *prometheus.CounterVec   // service
	SessionsEnded    *prometheus.CounterVec   // service, outcome
	SessionDuration  *prometheus.HistogramVec // service
	FirstByte        *prometheus.HistogramVec // service: accept to proxying
	ContainerStart   *prometheus.HistogramVec // service, daemon: create to ready
	QueueWait        *prometheus.HistogramVec // service
	Bytes            *prometheus.CounterVec   // service, direction (in: client to container)
	Refusals         *prometheus.CounterVec   // service, reason
	PoolHits         *prometheus.CounterVec   // service
	PoolMisses       *prometheus.CounterVec   // service
	InstancesMade    *prometheus.CounterVec   // service
	InstancesEnded   *prometheus.CounterVec   // service, state (expired, deleted, lost, failed)
	InstancesRefused *prometheus.CounterVec   // service, reason
}

// New returns the metrics, registered on a fresh registry with the Go and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		SessionsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_sessions_started_total", Help: "Client connections accepted.",
		}, []string{"service"}),
		SessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_sessions_ended_total", Help: "Sessions ended, by outcome.",
		}, []string{"service", "outcome"}),
		SessionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ganger_session_duration_seconds", Help: "Session length, accept to close.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"service"}),
		FirstByte: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ganger_time_to_first_byte_seconds", Help: "From accept until the client is connected to its container.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"service"}),
		ContainerStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ganger_container_start_seconds", Help: "From create until the container answers.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}, []string{"service", "daemon"}),
		QueueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ganger_queue_wait_seconds", Help: "Time waiting in a service's queue for room.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"service"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_bytes_proxied_total", Help: "Bytes proxied; direction in is client to container.",
		}, []string{"service", "direction"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_refusals_total", Help: "Clients refused, by reason.",
		}, []string{"service", "reason"}),
		PoolHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_pool_hits_total", Help: "Sessions of a service with a pool served at once by a ready container.",
		}, []string{"service"}),
		PoolMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_pool_misses_total", Help: "Sessions of a service with a pool that found none ready and waited for a start.",
		}, []string{"service"}),
		InstancesMade: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_instances_created_total", Help: "Instances made and ready.",
		}, []string{"service"}),
		InstancesEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_instances_ended_total", Help: "Instances ended, by final state (expired, deleted, lost, failed).",
		}, []string{"service", "state"}),
		InstancesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ganger_instances_refused_total", Help: "Instance creations refused, by reason (quota, rate, no_room, bad_request).",
		}, []string{"service", "reason"}),
	}
	m.Registry.MustRegister(m.InstancesMade, m.InstancesEnded, m.InstancesRefused)
	m.Registry.MustRegister(m.SessionsStarted, m.SessionsEnded, m.SessionDuration, m.FirstByte,
		m.ContainerStart, m.QueueWait, m.Bytes, m.Refusals, m.PoolHits, m.PoolMisses,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
