package autoscale

import "time"

// Host is one Docker host as the fleet sees it at a snapshot.
type Host struct {
	Name     string `json:"name"`
	Up       bool   `json:"up"`
	Draining bool   `json:"draining"`
	// Used counts Ganger containers; Capacity is the host's max_containers.
	Used     int `json:"used"`
	Capacity int `json:"capacity"`
	// Registered is when the host joined (its age counts from here).
	Registered time.Time `json:"registered"`
	// IdleSince is when the host's last Ganger container went; zero while
	// it has one.
	IdleSince time.Time `json:"idle_since,omitzero"`
	// Autoscaled: the host was discovered (etcd), so a down hook may
	// remove it. Static daemons are never removed.
	Autoscaled bool `json:"autoscaled"`
}

// usable: the host takes new work.
func (h Host) usable() bool { return h.Up && !h.Draining }

// empty: the host has no Ganger container, by both of its counts.
func (h Host) empty() bool { return h.Used == 0 && !h.IdleSince.IsZero() }

// Snapshot is the fleet at one moment. Queued counts clients waiting for a
// place on some host.
type Snapshot struct {
	Hosts  []Host    `json:"hosts"`
	Queued int       `json:"queued"`
	At     time.Time `json:"at"`
}

// Fleet is the server's view of its hosts. Its methods are called from
// several goroutines at once; the Scaler holds no lock while it calls
// them, so they may call the Scaler (Registered) in turn.
type Fleet interface {
	// Snapshot returns every known host, queued clients, and when.
	Snapshot() Snapshot
	// Drain stops (on) or resumes (off) placing work on host. Once Drain
	// on returns, nothing new is placed there, and whatever was placed
	// before shows in Busy: the Scaler relies on this to remove a host
	// only when nothing runs there.
	Drain(host string, on bool) error
	// Busy reports whether host has a session, or an instance with time
	// left, now.
	Busy(host string) bool
}

// Leader reports whether this front-end decides: an etcd election when
// there are several, Solo when there is one.
type Leader interface {
	Leading() bool
}

// Solo is the Leader of a front-end alone: it always leads.
type Solo struct{}

// Leading reports true.
func (Solo) Leading() bool { return true }

// Clock is the time a Scaler keeps: RealClock, or a test's. Its shape is
// instance.Clock's, so one clock serves both.
type Clock interface {
	Now() time.Time
	// TimerAt returns a channel that receives once the time is when, and
	// a function that stops it.
	TimerAt(when time.Time) (<-chan time.Time, func() bool)
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// TimerAt is a time.Timer for when.
func (RealClock) TimerAt(when time.Time) (<-chan time.Time, func() bool) {
	t := time.NewTimer(time.Until(when))
	return t.C, t.Stop
}
