// Package view is the read-model that Ganger's API serves and `ganger ctl`
// reads: what an operator sees of services, daemons and sessions. It is a
// leaf: it imports nothing of Ganger's, so the CLI client needs neither the
// server nor the session code.
package view

import "time"

// Session is what an operator sees of one session.
type Session struct {
	ID        string    `json:"id"`
	Service   string    `json:"service"`
	Client    string    `json:"client"`
	Daemon    string    `json:"daemon"`
	Container string    `json:"container"`
	From      string    `json:"from,omitempty"`
	Start     time.Time `json:"start"`
	Duration  float64   `json:"duration_seconds"`
	Ready     float64   `json:"ready_seconds"`
	BytesIn   int64     `json:"bytes_in"`
	BytesOut  int64     `json:"bytes_out"`
	Outcome   string    `json:"outcome,omitempty"`
	Live      bool      `json:"live"`
}

// Stats is what an operator sees of one service's traffic.
type Stats struct {
	Served     int64            `json:"sessions_served"`
	Live       int              `json:"live_sessions"`
	Queued     int              `json:"queued"`
	PoolReady  int              `json:"pool_ready"`
	PoolTarget int              `json:"pool_target"`
	Pool       *Pool            `json:"pool,omitempty"` // per-connection services with a pool
	Failures   map[string]int64 `json:"failures"`       // by outcome
	TTFBp50    float64          `json:"ttfb_p50_seconds"`
	TTFBp99    float64          `json:"ttfb_p99_seconds"`
}

// Pool is what an operator sees of a service's warm pool.
type Pool struct {
	Min      int  `json:"min"`
	Max      int  `json:"max"`
	Adaptive bool `json:"adaptive"`
	// Target is how many containers the pool keeps ready now: min, or
	// with adaptive, what the measured demand needs.
	Target   int `json:"target"`
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	// ArrivalRate is the sessions asking for a container per second, over
	// the last few seconds.
	ArrivalRate float64 `json:"arrivals_per_second"`
	// StartSeconds is the average time from asking for a container until
	// it answers, by daemon (the latest starts weigh most).
	StartSeconds map[string]float64 `json:"start_seconds"`
	Hits         int64              `json:"hits"`   // sessions served from the pool at once
	Misses       int64              `json:"misses"` // sessions that waited for a start
	MaxAge       float64            `json:"max_age_seconds,omitempty"`
}

// Service is one service as an operator sees it.
type Service struct {
	Name      string `json:"name"`
	Listen    string `json:"listen"`
	Mode      string `json:"mode"`
	Image     string `json:"image"`
	Placement string `json:"placement"`
	Stats
}

// Daemon is one daemon as an operator sees it.
type Daemon struct {
	Name       string `json:"name"`
	Up         bool   `json:"up"`
	APIVersion string `json:"api_version"`
	EngineID   string `json:"engine_id,omitempty"`
	Containers int    `json:"containers"` // this node's
	Others     int    `json:"other_nodes_containers"`
	Max        int    `json:"max_containers"`
	Starting   int    `json:"starting"` // creates and starts in flight
	Waiting    int    `json:"waiting_to_start"`
	Drained    bool   `json:"drained"`
}

// Sessions is the answer of GET /v1/sessions.
type Sessions struct {
	Live   []Session `json:"live"`
	Recent []Session `json:"recent"`
}

// Instance is what the API shows of an instance. Secrets and the connect
// line are shown to its owner only; OwnerToken only once, when it is made.
type Instance struct {
	ID           string            `json:"id"`
	Service      string            `json:"service"`
	State        string            `json:"state"`
	Owner        string            `json:"owner,omitempty"`
	Daemon       string            `json:"daemon,omitempty"`
	Host         string            `json:"host,omitempty"`
	Ports        map[string]int    `json:"ports,omitempty"` // container port → port clients connect to
	Secrets      map[string]string `json:"secrets,omitempty"`
	Connect      string            `json:"connect,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	ExpiresAt    time.Time         `json:"expires_at"`
	MaxExpiresAt time.Time         `json:"max_expires_at"`
	ExtendsLeft  int               `json:"extends_left"`
	EndedAt      *time.Time        `json:"ended_at,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	// BytesIn and BytesOut are what went through Ganger's proxy (access:
	// proxy), counted as connections close.
	BytesIn    int64  `json:"bytes_in,omitempty"`
	BytesOut   int64  `json:"bytes_out,omitempty"`
	OwnerToken string `json:"owner_token,omitempty"`
}

// Host is one Docker host as GET /v1/hosts shows it: a daemon of the
// config (static) or one an agent registered in etcd.
type Host struct {
	Name   string `json:"name"`
	Source string `json:"source"` // static or etcd
	// State is up, draining (no new containers: an operator's or the
	// agent's drain), lost (its etcd key gone past lost_grace), or down
	// (Ganger's own health checks fail).
	State      string            `json:"state"`
	Docker     string            `json:"docker,omitempty"`
	Advertise  string            `json:"advertise,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	LastSeen   *time.Time        `json:"last_seen,omitempty"` // etcd: when its key was last there
	Containers int               `json:"containers"`          // this node's
	// Others are other nodes' containers there: placement and the
	// autoscaler count them against Capacity too.
	Others   int `json:"other_nodes_containers"`
	Capacity int `json:"capacity"`
}

// Cluster is what the API shows of a mode: cluster service.
type Cluster struct {
	Name      string          `json:"name"`
	Image     string          `json:"image"`
	Size      int             `json:"size"` // wanted
	MinReady  int             `json:"min_ready"`
	Rollout   string          `json:"rollout"`
	Epoch     int64           `json:"epoch"`
	Leader    *int            `json:"leader"` // ordinal; null: none yet
	Ready     int             `json:"ready"`  // members configured
	DependsOn []ClusterDep    `json:"depends_on,omitempty"`
	Pending   string          `json:"pending,omitempty"` // what the rollout or a scale waits for
	Problem   string          `json:"problem,omitempty"` // a file that does not render, say
	Members   []ClusterMember `json:"members"`
}

// ClusterDep is a cluster another waits for, and how it stands.
type ClusterDep struct {
	Cluster  string `json:"cluster"`
	MinReady int    `json:"min_ready"`
	Ready    int    `json:"ready"`
}

// ClusterMember is one member of a cluster.
type ClusterMember struct {
	Ordinal     int            `json:"ordinal"`
	Incarnation int64          `json:"incarnation"`
	State       string         `json:"state"` // pending, running, leaving
	Daemon      string         `json:"daemon,omitempty"`
	Container   string         `json:"container,omitempty"`
	IP          string         `json:"ip,omitempty"`
	Host        string         `json:"host,omitempty"`
	Ports       map[string]int `json:"ports,omitempty"` // container port → published port
	Ready       bool           `json:"ready"`
	Healthy     bool           `json:"healthy"`
	Leader      bool           `json:"leader"`
	Released    bool           `json:"released"`    // may apply the epoch now
	Acked       int64          `json:"acked_epoch"` // the last epoch it reported configured for
	Report      string         `json:"report,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	Processes   []Process      `json:"processes,omitempty"` // its ganger-init's, as last reported
}

// Process is a process a member's ganger-init runs.
type Process struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Ready    bool   `json:"ready"`
	Healthy  bool   `json:"healthy"`
}
