package instance

import (
	"errors"
	"testing"
	"time"
)

func TestLifetime(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l := Lifetime{TTL: time.Hour, MaxTTL: 3 * time.Hour, By: 30 * time.Minute, Max: 3}
	ready := t0.Add(2 * time.Second)
	for _, tc := range []struct {
		name      string
		ttl       time.Duration
		wantExp   time.Time
		wantCapAt time.Time
	}{
		{"the service's ttl, from ready", 0, ready.Add(time.Hour), t0.Add(3 * time.Hour)},
		{"a shorter ttl asked for", 10 * time.Minute, ready.Add(10 * time.Minute), t0.Add(3 * time.Hour)},
		{"a longer one is clamped to the cap", 5 * time.Hour, t0.Add(3 * time.Hour), t0.Add(3 * time.Hour)},
	} {
		exp, capAt := l.Expiry(t0, ready, tc.ttl)
		if !exp.Equal(tc.wantExp) || !capAt.Equal(tc.wantCapAt) {
			t.Errorf("%s: expiry %s cap %s; want %s and %s", tc.name, exp, capAt, tc.wantExp, tc.wantCapAt)
		}
	}

	exp, capAt := l.Expiry(t0, ready, 0) // 13:00:02, cap 15:00
	var err error
	for i, want := range []time.Time{exp.Add(30 * time.Minute), exp.Add(time.Hour), exp.Add(90 * time.Minute)} {
		if exp, err = l.Extend(exp, capAt, i); err != nil || !exp.Equal(want) {
			t.Fatalf("extension %d: %s, %v; want %s", i+1, exp, err, want)
		}
	}
	if _, err := l.Extend(exp, capAt, 3); !errors.Is(err, ErrNoExtensions) {
		t.Fatalf("a fourth extension of three: %v; want ErrNoExtensions", err)
	}

	// Extensions clamp at the cap; once there, the next is refused.
	short := Lifetime{TTL: time.Hour, MaxTTL: 70 * time.Minute, By: 30 * time.Minute, Max: 5}
	exp, capAt = short.Expiry(t0, t0, 0)
	if exp, err = short.Extend(exp, capAt, 0); err != nil || !exp.Equal(capAt) {
		t.Fatalf("extension past the cap: %s, %v; want clamped to %s", exp, err, capAt)
	}
	if _, err := short.Extend(exp, capAt, 1); !errors.Is(err, ErrAtMaxTTL) {
		t.Fatalf("extension at the cap: %v; want ErrAtMaxTTL", err)
	}
}
