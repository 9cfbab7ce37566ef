// Package sched decides which daemon each new container goes to, under
// every capacity limit (per daemon, per service, overall), and holds the
// requests that do not fit in a FIFO queue per service. It is pure logic:
// no Docker, no network; Ganger tells it what daemons exist, which are up
// and which have each service's image.
//
// A freed slot, a daemon coming up or an image arriving wakes the queued
// requests that now fit, oldest first; nothing polls.
package sched

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
)

// ErrQueueFull means the service's queue is at its maximum length.
var ErrQueueFull = errors.New("no room and the queue is full")

// Policy chooses among the daemons with room.
type Policy int

const (
	// Spread takes the least utilised daemon, rotating among equals.
	Spread Policy = iota
	// Binpack takes the most utilised daemon that still has room.
	Binpack
)

// ServiceLimits are one service's capacity settings.
type ServiceLimits struct {
	Policy        Policy
	MaxContainers int // 0: no cap
	QueueMax      int // 0: never wait
}

// Scheduler places containers. Create it with New; it is safe for
// concurrent use.
type Scheduler struct {
	mu       sync.Mutex
	daemons  []*daemon
	services map[string]*service
	maxTotal int // 0: no cap
	total    int
	seq      uint64
	rr       int // where spread's search for a tie starts
	starved  map[int]starvedHook
	nextSub  int
}

type daemon struct {
	name    string
	max     int
	used    int // this node's leases
	others  int // Ganger containers of other nodes, as last reconciled
	up      bool
	drained bool            // an operator stopped new placements here
	images  map[string]bool // services whose image is present
}

type service struct {
	name  string
	lim   ServiceLimits
	used  int
	queue []*waiter
}

type waiter struct {
	seq uint64
	svc *service
	ch  chan *Lease // buffered: a grant never blocks
}

// New returns a scheduler with a cap of maxTotal leases overall (0: none).
// Daemons start down and with no image: see AddDaemon, SetUp, SetImage.
func New(maxTotal int) *Scheduler {
	return &Scheduler{services: map[string]*service{}, maxTotal: maxTotal, starved: map[int]starvedHook{}}
}

// AddDaemon registers a daemon that holds at most max of Ganger's containers.
func (s *Scheduler) AddDaemon(name string, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.daemons = append(s.daemons, &daemon{name: name, max: max, images: map[string]bool{}})
}

// RemoveDaemon forgets a daemon: nothing more is placed there. Leases on
// it stay valid and are released as usual.
func (s *Scheduler) RemoveDaemon(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.daemons = slices.DeleteFunc(s.daemons, func(d *daemon) bool { return d.name == name })
	s.rr = 0
	s.grant()
}

// AddService registers a service and its limits.
func (s *Scheduler) AddService(name string, lim ServiceLimits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[name] = &service{name: name, lim: lim}
}

// SetUp marks a daemon up (placements may go there) or down.
func (s *Scheduler) SetUp(name string, up bool) {
	s.update(name, func(d *daemon) { d.up = up })
}

// SetImage records whether the service's image is present on the daemon.
func (s *Scheduler) SetImage(name, service string, ok bool) {
	s.update(name, func(d *daemon) { d.images[service] = ok })
}

// SetOthers records how many Ganger containers of other nodes the daemon
// holds: they share its max_containers.
func (s *Scheduler) SetOthers(name string, n int) {
	s.update(name, func(d *daemon) { d.others = n })
}

func (s *Scheduler) update(name string, f func(*daemon)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.daemons {
		if d.name == name {
			f(d)
		}
	}
	s.grant()
}

// Acquire returns a lease on a slot for one container of service, waiting
// in the service's queue while there is no room, until ctx is done. It
// returns ErrQueueFull at once if the queue is full.
func (s *Scheduler) Acquire(ctx context.Context, service string) (*Lease, error) {
	s.mu.Lock()
	svc := s.services[service]
	if svc == nil {
		s.mu.Unlock()
		return nil, errors.New("sched: unknown service " + service)
	}
	if len(svc.queue) == 0 {
		if d := s.place(svc); d != nil {
			l := s.lease(svc, d)
			s.mu.Unlock()
			return l, nil
		}
	}
	if len(svc.queue) >= svc.lim.QueueMax {
		s.mu.Unlock()
		return nil, ErrQueueFull
	}
	s.seq++
	w := &waiter{seq: s.seq, svc: svc, ch: make(chan *Lease, 1)}
	svc.queue = append(svc.queue, w)
	var notify []func()
	helps := s.roomWouldHelp(svc)
	for _, h := range s.starved {
		if helps || h.service == svc.name {
			notify = append(notify, h.f)
		}
	}
	s.mu.Unlock()
	for _, f := range notify {
		go f()
	}

	select {
	case l := <-w.ch:
		return l, nil
	case <-ctx.Done():
		s.mu.Lock()
		svc.queue = slices.DeleteFunc(svc.queue, func(x *waiter) bool { return x == w })
		s.mu.Unlock()
		select {
		case l := <-w.ch: // granted while we gave up: hand it back
			l.Release()
		default:
		}
		return nil, ctx.Err()
	}
}

// roomWouldHelp reports whether room that another service's container
// gives back could serve svc: it is not at its own cap (then only its own
// containers ending help), and some daemon would take it but for room (up,
// not drained, with its image). The caller holds s.mu.
func (s *Scheduler) roomWouldHelp(svc *service) bool {
	if svc.lim.MaxContainers > 0 && svc.used >= svc.lim.MaxContainers {
		return false
	}
	for _, d := range s.daemons {
		if d.up && !d.drained && d.images[svc.name] {
			return true
		}
	}
	return false
}

type starvedHook struct {
	service string
	f       func()
}

// OnStarved calls f, in a goroutine of its own, whenever a request starts
// waiting for room that a container of service could give it: a request
// of service itself (its own containers count against its own cap), or
// of another that room would serve (see roomWouldHelp). A warm pool of
// service listens: an idle container it gives back becomes a client's
// room. cancel stops the calls.
func (s *Scheduler) OnStarved(service string, f func()) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSub++
	id := s.nextSub
	s.starved[id] = starvedHook{service, f}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.starved, id)
	}
}

// Starved reports whether any request waits for room that a container of
// service could give it (see OnStarved). Its warm pool then takes no room.
func (s *Scheduler) Starved(service string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.services {
		if len(svc.queue) > 0 && (svc.name == service || s.roomWouldHelp(svc)) {
			return true
		}
	}
	return false
}

// Take returns a lease on the named daemon for a container that exists
// already (adopted after a restart): it counts against every limit, even
// past them, and waits for nothing. An unknown service or daemon is
// registered so that the lease can count.
func (s *Scheduler) Take(svcName, daemonName string) *Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[svcName]
	if svc == nil {
		svc = &service{name: svcName}
		s.services[svcName] = svc
	}
	var d *daemon
	for _, x := range s.daemons {
		if x.name == daemonName {
			d = x
		}
	}
	if d == nil {
		d = &daemon{name: daemonName, images: map[string]bool{}} // gone since: counts nowhere else
	}
	return s.lease(svc, d)
}

// Queued returns how many requests wait for the service.
func (s *Scheduler) Queued(service string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[service]; svc != nil {
		return len(svc.queue)
	}
	return 0
}

// Used returns the leases held on the named daemon.
func (s *Scheduler) Used(daemon string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.daemons {
		if d.name == daemon {
			return d.used
		}
	}
	return 0
}

func (s *Scheduler) lease(svc *service, d *daemon) *Lease {
	d.used++
	svc.used++
	s.total++
	return &Lease{s: s, svc: svc, d: d}
}

// grant hands freed room to queued requests, oldest first. A request that
// does not fit does not block a younger one of another service (whose
// limits differ); within a service order is kept, since what stops the
// oldest stops the rest.
func (s *Scheduler) grant() {
	var all []*waiter
	for _, svc := range s.services {
		all = append(all, svc.queue...)
	}
	slices.SortFunc(all, func(a, b *waiter) int { return cmp.Compare(a.seq, b.seq) })
	blocked := map[*service]bool{}
	for _, w := range all {
		if blocked[w.svc] {
			continue
		}
		d := s.place(w.svc)
		if d == nil {
			blocked[w.svc] = true
			continue
		}
		w.svc.queue = slices.DeleteFunc(w.svc.queue, func(x *waiter) bool { return x == w })
		w.ch <- s.lease(w.svc, d)
	}
}

// Lease is one container's slot on one daemon. Release it once the
// container is removed.
type Lease struct {
	s        *Scheduler
	svc      *service
	d        *daemon
	released bool
}

// Daemon is the name of the daemon the container goes to.
func (l *Lease) Daemon() string { return l.d.name }

// Release frees the slot and wakes whoever it now fits. It is safe to call
// more than once.
func (l *Lease) Release() {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	l.d.used--
	l.svc.used--
	s.total--
	s.grant()
}

// HasImage reports whether the service's image is on the named daemon.
func (s *Scheduler) HasImage(daemon, service string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.daemons {
		if d.name == daemon {
			return d.images[service]
		}
	}
	return false
}

// UpdateService changes a service's limits (a reload). Leases already held
// stay; a larger cap or queue takes effect at once.
func (s *Scheduler) UpdateService(name string, lim ServiceLimits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[name]; svc != nil {
		svc.lim = lim
	} else {
		s.services[name] = &service{name: name, lim: lim}
	}
	s.grant()
}

// SetDrained stops (or resumes) new placements on the daemon; containers
// there finish as usual.
func (s *Scheduler) SetDrained(name string, drained bool) {
	s.update(name, func(d *daemon) { d.drained = drained })
}

// DaemonState is one daemon as the scheduler sees it.
type DaemonState struct {
	Name    string
	Max     int
	Used    int // this node's containers
	Others  int // other nodes' containers, as last reconciled
	Up      bool
	Drained bool
}

// Daemons returns every daemon's state, in the order they were added.
func (s *Scheduler) Daemons() []DaemonState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DaemonState, 0, len(s.daemons))
	for _, d := range s.daemons {
		out = append(out, DaemonState{Name: d.name, Max: d.max, Used: d.used, Others: d.others, Up: d.up, Drained: d.drained})
	}
	return out
}
