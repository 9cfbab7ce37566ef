package discovery

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff gives jittered, doubling waits between retries, from min up to
// max: many agents that lost etcd at once do not come back in step.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (c *Client) newBackoff() *backoff {
	return &backoff{min: c.timing.backoffMin, max: c.timing.backoffMax}
}

// next is the wait before the next try: between half and all of the
// current step, which then doubles.
func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.min
	case b.cur < b.max:
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

// reset starts again from min, after a success.
func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
