package server

import (
	"context"
	"runtime/debug"
	"time"
)

// trimEvery is how often the node looks for a burst that has passed, and
// burst how many sessions make one.
const (
	trimEvery = 5 * time.Second
	burst     = 64
)

// trimWhenIdle returns a burst's memory to the system once the node is
// idle again. After a storm of connections the Go runtime keeps the heap
// it grew to (its goal only shrinks at the next collection, which an idle
// process may not run for minutes), so a node that served a burst would
// hold that memory while doing nothing. When no session is live and a burst of
// sessions ended since the last trim, one forced collection and release puts it
// back; with sessions live, or after a trickle of sessions, nothing is done.
func (s *Server) trimWhenIdle(ctx context.Context) {
	var seen int64
	tick := time.NewTicker(trimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.disc != nil {
			s.disc.sweepLost()
		}
		live, ended := 0, int64(0)
		for _, svc := range s.serviceList() {
			l, e := svc.Activity()
			live, ended = live+l, ended+e
		}
		if live == 0 && ended-seen >= burst {
			debug.FreeOSMemory() // what sync.Pools hold survives one collection,
			debug.FreeOSMemory() // in their victim caches, and goes at the second
			seen = ended
		}
	}
}
