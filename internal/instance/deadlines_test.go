package instance

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/clocktest"
)

// Every deadline fires once, never early, and within the step of the
// clock in which it falls: 200 instances with random lifetimes, moved,
// cancelled, added while others fire.
func TestDeadlines(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	type firing struct {
		id string
		at time.Time
	}
	fired := make(chan firing, 1000)
	q := NewDeadlines(clock, func(id string) { fired <- firing{id, clock.Now()} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)

	rng := rand.New(rand.NewPCG(3, 4))
	want := map[string]time.Time{}
	for i := range 200 {
		id := string(rune('a'+i%26)) + string(rune('0'+i/26))
		want[id] = t0.Add(time.Duration(rng.IntN(60_000)) * time.Millisecond)
		q.Set(id, want[id])
	}
	// Move ten later, cancel ten.
	n := 0
	for id := range want {
		switch {
		case n < 10:
			want[id] = want[id].Add(30 * time.Second)
			q.Set(id, want[id])
		case n < 20:
			q.Cancel(id)
			delete(want, id)
		}
		n++
	}
	if q.Len() != len(want) {
		t.Fatalf("%d pending; want %d", q.Len(), len(want))
	}
	const step = 250 * time.Millisecond
	got := map[string]bool{}
	for now := t0; now.Before(t0.Add(2 * time.Minute)); now = now.Add(step) {
		clock.Advance(step)
		due := 0
		for id, at := range want {
			if !at.After(now.Add(step)) && !got[id] {
				due++
			}
		}
		for range due {
			select {
			case f := <-fired:
				at, ok := want[f.id]
				switch {
				case !ok:
					t.Fatalf("%s fired: cancelled", f.id)
				case got[f.id]:
					t.Fatalf("%s fired twice", f.id)
				case f.at.Before(at):
					t.Fatalf("%s fired at %s, before its deadline %s", f.id, f.at, at)
				case f.at.Sub(at) >= step:
					t.Fatalf("%s fired at %s, a step or more after its deadline %s", f.id, f.at, at)
				}
				got[f.id] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("at %s: %d deadlines due, %d fired", now.Add(step).Sub(t0), due, len(got))
			}
		}
		if now.Equal(t0.Add(time.Minute)) { // one added while the others run
			want["late"] = now.Add(2 * step)
			q.Set("late", want["late"])
		}
	}
	if len(got) != len(want) || q.Len() != 0 {
		t.Fatalf("%d of %d fired, %d pending", len(got), len(want), q.Len())
	}
	select {
	case f := <-fired:
		t.Fatalf("%s fired once more", f.id)
	default:
	}
}
