package discovery

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := &backoff{min: 100 * time.Millisecond, max: time.Second}
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for round := range 2 {
		for i, step := range steps {
			step *= time.Millisecond
			if d := b.next(); d < step/2 || d > step {
				t.Fatalf("round %d, try %d: waited %v; want between %v and %v", round, i, d, step/2, step)
			}
		}
		b.reset()
	}
}

func TestHelpers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{{"", "/ganger/"}, {"/x", "/x/"}, {"/x/", "/x/"}} {
		if got := normalPrefix(tc.in); got != tc.want {
			t.Errorf("normalPrefix(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{{0, 1}, {500 * time.Millisecond, 1}, {2 * time.Second, 2}, {2500 * time.Millisecond, 3}} {
		if got := ttlSeconds(tc.in); got != tc.want {
			t.Errorf("ttlSeconds(%v) = %d; want %d", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{{`{"id":"a"}`, "a"}, {`{}`, ""}, {`not json`, ""}} {
		if got := idOf([]byte(tc.in)); got != tc.want {
			t.Errorf("idOf(%s) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
