package instance

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Clock is the time Deadlines keeps: the real one (RealClock), or a test's.
type Clock interface {
	Now() time.Time
	// TimerAt returns a channel that receives once the time is when, and
	// a function that stops it.
	TimerAt(when time.Time) (<-chan time.Time, func() bool)
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) TimerAt(when time.Time) (<-chan time.Time, func() bool) {
	t := time.NewTimer(time.Until(when))
	return t.C, t.Stop
}

// Deadlines calls fire for each instance when its time comes: one
// goroutine, the deadlines in a heap, one timer armed for the earliest.
// Nothing sweeps: an instance expires at its time, not at the next pass
// of a periodic reaper, however many there are.
type Deadlines struct {
	clock Clock
	fire  func(id string)
	mu    sync.Mutex
	h     deadlineHeap
	at    map[string]*deadline
	wake  chan struct{}
}

type deadline struct {
	id    string
	when  time.Time
	index int
}

// NewDeadlines returns Deadlines that call fire, each call in a goroutine
// of its own, once Run runs.
func NewDeadlines(clock Clock, fire func(id string)) *Deadlines {
	return &Deadlines{clock: clock, fire: fire, at: map[string]*deadline{}, wake: make(chan struct{}, 1)}
}

// Set sets (or moves) id's deadline.
func (q *Deadlines) Set(id string, when time.Time) {
	q.mu.Lock()
	if d, ok := q.at[id]; ok {
		d.when = when
		heap.Fix(&q.h, d.index)
	} else {
		d := &deadline{id: id, when: when}
		q.at[id] = d
		heap.Push(&q.h, d)
	}
	q.mu.Unlock()
	q.poke()
}

// Cancel forgets id's deadline, if it has one.
func (q *Deadlines) Cancel(id string) {
	q.mu.Lock()
	if d, ok := q.at[id]; ok {
		heap.Remove(&q.h, d.index)
		delete(q.at, id)
	}
	q.mu.Unlock()
	q.poke()
}

// Len is how many deadlines are pending.
func (q *Deadlines) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.h)
}

func (q *Deadlines) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run fires deadlines as they come until ctx ends.
func (q *Deadlines) Run(ctx context.Context) {
	for {
		var due <-chan time.Time
		stop := func() bool { return false }
		q.mu.Lock()
		if len(q.h) > 0 {
			due, stop = q.clock.TimerAt(q.h[0].when)
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			stop()
			return
		case <-q.wake:
			stop()
		case <-due:
		}
		q.fireDue()
	}
}

// fireDue fires every deadline that has passed, earliest first.
func (q *Deadlines) fireDue() {
	now := q.clock.Now()
	q.mu.Lock()
	var ids []string
	for len(q.h) > 0 && !q.h[0].when.After(now) {
		d := heap.Pop(&q.h).(*deadline)
		delete(q.at, d.id)
		ids = append(ids, d.id)
	}
	q.mu.Unlock()
	for _, id := range ids {
		go q.fire(id)
	}
}

// deadlineHeap orders deadlines, earliest first.
type deadlineHeap []*deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *deadlineHeap) Push(x any) {
	d := x.(*deadline)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
