package fleet

import (
	"context"
	"slices"
	"sync"
)

// gate bounds the Docker work in flight on one daemon: at most max holders
// at once, the others waiting their turn in order. A waiter that gives up
// leaves the line having cost nothing.
type gate struct {
	mu      sync.Mutex
	max     int
	n       int
	waiters []chan struct{}
}

func newGate(max int) *gate { return &gate{max: max} }

// enter waits for a turn until ctx ends. Each successful enter must be
// matched by one leave.
func (g *gate) enter(ctx context.Context) error {
	g.mu.Lock()
	if g.n < g.max && len(g.waiters) == 0 {
		g.n++
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	g.waiters = append(g.waiters, ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		i := slices.Index(g.waiters, ch)
		if i >= 0 {
			g.waiters = slices.Delete(g.waiters, i, i+1)
		}
		g.mu.Unlock()
		if i < 0 { // the turn came as we gave up: pass it on
			g.leave()
		}
		return ctx.Err()
	}
}

// leave ends a turn and hands it to the oldest waiter, if any.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiters) > 0 {
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
		return
	}
	g.n--
}

// counts returns the turns held and the waiters.
func (g *gate) counts() (held, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n, len(g.waiters)
}
