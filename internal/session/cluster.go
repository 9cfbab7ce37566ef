package session

import (
	"context"
	"sync"

	"github.com/ganger-dev/ganger/internal/metrics"
	"github.com/ganger-dev/ganger/internal/sched"
)

// Cluster is the set of daemons that sessions are placed on, shared by
// every service of a node.
type Cluster struct {
	// Sched places containers and queues what does not fit.
	Sched *sched.Scheduler
	// Metrics are updated as sessions go.
	Metrics *metrics.Metrics
	// Recent keeps the last sessions of every service.
	Recent *Recent
	// Suspect is told when a call to a daemon failed. It checks the daemon
	// at once and reports whether it is now marked down, in which case the
	// session tries another daemon. If nil, no daemon is suspected.
	Suspect func(daemon string) (down bool)

	mu       sync.Mutex
	backends map[string]Backend
	life     map[string]context.Context
	end      map[string]context.CancelFunc
	down     map[string]bool
}

// NewCluster returns a cluster over the given backends.
func NewCluster(s *sched.Scheduler, backends ...Backend) *Cluster {
	c := &Cluster{Sched: s, Metrics: metrics.New(), Recent: NewRecent(200), backends: map[string]Backend{}, life: map[string]context.Context{}, end: map[string]context.CancelFunc{}, down: map[string]bool{}}
	for _, b := range backends {
		c.backends[b.Name()] = b
		c.life[b.Name()], c.end[b.Name()] = context.WithCancel(context.Background())
	}
	return c
}

// Backend returns the named daemon's backend.
func (c *Cluster) Backend(daemon string) Backend {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backends[daemon]
}

// life returns a context that ends when the daemon is marked down.
func (c *Cluster) lifeOf(daemon string) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.life[daemon]
}

// Down ends every session on the daemon: their clients are closed at once
// rather than left hanging on a daemon that is gone.
func (c *Cluster) Down(daemon string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[daemon] = true
	if end := c.end[daemon]; end != nil {
		end()
		c.life[daemon], c.end[daemon] = context.WithCancel(context.Background())
	}
}

// Up records that the daemon answers again.
func (c *Cluster) Up(daemon string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[daemon] = false
}

func (c *Cluster) isDown(daemon string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[daemon]
}

func (c *Cluster) suspect(daemon string) bool {
	return c.Suspect != nil && c.Suspect(daemon)
}
