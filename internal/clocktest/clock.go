// Package clocktest is a clock for tests that moves only when told: its
// timers fire as it passes them, so a test of deadlines needs no sleep.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a manual clock. It satisfies instance.Clock.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	at   time.Time
	c    chan time.Time
	done bool
}

// New returns a clock set at t0.
func New(t0 time.Time) *Clock { return &Clock{now: t0} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// TimerAt returns a channel that receives once the clock reaches when (at
// once if it has), and a function that stops it.
func (c *Clock) TimerAt(when time.Time) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: when, c: make(chan time.Time, 1)}
	if !when.After(c.now) {
		t.c <- c.now
		t.done = true
	} else {
		c.timers = append(c.timers, t)
	}
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// Advance moves the clock on by d and fires the timers it passes.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	live := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.c <- c.now
			t.done = true
		default:
			live = append(live, t)
		}
	}
	c.timers = live
}

// Waiting reports whether a timer waits for exactly when: a test can wait
// for a deadline to be set before it moves the clock past it.
func (c *Clock) Waiting(when time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.done && t.at.Equal(when) {
			return true
		}
	}
	return false
}
