package instance

import (
	"errors"
	"fmt"
	"time"
)

// Lifetime is how long an instance lives: TTL from the moment it is
// ready, extensions of By each up to Max of them, never past MaxTTL from
// its creation.
type Lifetime struct {
	TTL    time.Duration
	MaxTTL time.Duration
	By     time.Duration // each extension adds this to the current expiry
	Max    int           // extensions allowed
}

var (
	// ErrNoExtensions means the instance has had every extension allowed.
	ErrNoExtensions = errors.New("no extension left")
	// ErrAtMaxTTL means the instance already expires at its hard cap.
	ErrAtMaxTTL = errors.New("already at the maximum lifetime")
)

// Expiry is when an instance ready at ready, created at created, expires
// first, and the cap no extension passes. A requested ttl (0: the
// service's) is clamped to the cap.
func (l Lifetime) Expiry(created, ready time.Time, ttl time.Duration) (expires, cap time.Time) {
	if ttl <= 0 {
		ttl = l.TTL
	}
	cap = created.Add(l.MaxTTL)
	expires = ready.Add(ttl)
	if expires.After(cap) {
		expires = cap
	}
	return expires, cap
}

// Extend returns the expiry after one more extension of an instance that
// expires at expires, capped at cap, having had done extensions already.
// It refuses past the count, and when the cap leaves nothing to add.
func (l Lifetime) Extend(expires, cap time.Time, done int) (time.Time, error) {
	if done >= l.Max {
		return expires, fmt.Errorf("%w: %d of %d used", ErrNoExtensions, done, l.Max)
	}
	if !expires.Before(cap) {
		return expires, fmt.Errorf("%w (%s)", ErrAtMaxTTL, cap.UTC().Format(time.RFC3339))
	}
	next := expires.Add(l.By)
	if next.After(cap) {
		next = cap
	}
	return next, nil
}
