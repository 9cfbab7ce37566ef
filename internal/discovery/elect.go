package discovery

import (
	"context"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// Election makes one process at a time the leader of a name (autoscaling:
// two front-ends never both scale). Leading is true only while this
// process holds the election's key through a live session; a lost session
// (etcd away past the TTL) ends it, and the campaign starts again.
type Election struct {
	leading atomic.Bool
	done    chan struct{}
}

// Leading reports whether this process leads now.
func (e *Election) Leading() bool { return e.leading.Load() }

// Elect campaigns for <prefix>elections/<name> with value (who leads, for
// operators) until ctx ends or the client closes, leading whenever it wins.
func (c *Client) Elect(ctx context.Context, name, value string, ttl time.Duration) *Election {
	e := &Election{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel) // Close ends the campaign too
	c.wg.Go(func() {
		defer close(e.done)
		defer stop()
		defer cancel()
		b := c.newBackoff()
		for ctx.Err() == nil && c.ctx.Err() == nil {
			if err := c.campaign(ctx, e, name, value, ttl); err != nil && ctx.Err() == nil {
				c.log.Warn("discovery: election lost or not reached; trying again", "election", name, "err", err)
				if !sleep(ctx, b.next()) {
					break
				}
				continue
			}
			b.reset()
		}
		e.leading.Store(false)
	})
	return e
}

// campaign runs one session: wins, holds until the session or ctx ends.
func (c *Client) campaign(ctx context.Context, e *Election, name, value string, ttl time.Duration) error {
	s, err := concurrency.NewSession(c.etcd, concurrency.WithTTL(int(max(ttl/time.Second, 1))), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer s.Close()
	el := concurrency.NewElection(s, c.prefix+"elections/"+name)
	if err := el.Campaign(ctx, value); err != nil {
		return err
	}
	e.leading.Store(true)
	c.log.Info("discovery: leading", "election", name)
	select {
	case <-s.Done():
	case <-ctx.Done():
		rctx, cancel := context.WithTimeout(context.Background(), c.timing.request)
		el.Resign(rctx)
		cancel()
	}
	e.leading.Store(false)
	c.log.Info("discovery: no longer leading", "election", name)
	return nil
}
