package session

import (
	"slices"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/proxy"
	"github.com/ganger-dev/ganger/internal/view"
)

// book is a service's record of its sessions.
type book struct {
	mu       sync.Mutex
	active   map[string]*session
	served   int64
	ended    int64
	failures map[string]int64
	ttfb     []time.Duration // the last samples, a ring
	next     int
}

const ttfbSamples = 1024

func newBook() *book { return &book{active: map[string]*session{}, failures: map[string]int64{}} }

// Recent keeps the last sessions of every service of a node.
type Recent struct {
	mu   sync.Mutex
	ring []view.Session
	next int
	full bool
}

// NewRecent keeps the last n sessions.
func NewRecent(n int) *Recent { return &Recent{ring: make([]view.Session, n)} }

func (r *Recent) add(i view.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[r.next] = i
	r.next = (r.next + 1) % len(r.ring)
	r.full = r.full || r.next == 0
}

// List returns the kept sessions, newest first.
func (r *Recent) List() []view.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []view.Session
	n := r.next
	if r.full {
		n = len(r.ring)
	}
	for i := range n {
		out = append(out, r.ring[(r.next-1-i+len(r.ring))%len(r.ring)])
	}
	return out
}

// Sessions returns the service's live sessions.
func (s *Service) Sessions() []view.Session {
	s.book.mu.Lock()
	live := make([]*session, 0, len(s.book.active))
	for _, ss := range s.book.active {
		live = append(live, ss)
	}
	s.book.mu.Unlock()
	out := make([]view.Session, 0, len(live))
	for _, ss := range live {
		out = append(out, ss.info())
	}
	slices.SortFunc(out, func(a, b view.Session) int { return a.Start.Compare(b.Start) })
	return out
}

// Kill ends a live session; its container is removed as usual. It reports
// whether the session was found.
func (s *Service) Kill(id string) bool {
	s.book.mu.Lock()
	ss := s.book.active[id]
	s.book.mu.Unlock()
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	end := ss.end
	ss.mu.Unlock()
	if end != nil {
		end(errKilled)
	}
	return true
}

// Stats returns the service's counters now.
func (s *Service) Stats() view.Stats {
	b := s.book
	b.mu.Lock()
	st := view.Stats{Served: b.served, Live: len(b.active), Failures: map[string]int64{}}
	for k, v := range b.failures {
		st.Failures[k] = v
	}
	samples := slices.Clone(b.ttfb)
	b.mu.Unlock()
	if len(samples) > 0 {
		slices.Sort(samples)
		st.TTFBp50 = samples[(len(samples)-1)*50/100].Seconds()
		st.TTFBp99 = samples[(len(samples)-1)*99/100].Seconds()
	}
	st.Queued = s.env.Fleet.Sched().Queued(s.name)
	if st.Pool = s.supply.view(); st.Pool != nil {
		st.PoolReady, st.PoolTarget = st.Pool.Ready, st.Pool.Target
	} else if sh, ok := s.supply.(*shared); ok {
		st.PoolReady = sh.ready() // shared containers running
	}
	return st
}

func (s *Service) begin(ss *session) {
	s.book.mu.Lock()
	s.book.active[ss.id] = ss
	s.book.mu.Unlock()
	s.env.Fleet.Metrics().SessionsStarted.WithLabelValues(s.name).Inc()
}

// finish records a session that ended.
func (s *Service) finish(ss *session) {
	info := ss.info()
	info.Live = false
	b := s.book
	b.mu.Lock()
	delete(b.active, ss.id)
	b.ended++
	if ss.c != nil {
		b.served++
	}
	if !ss.outcome.Success() {
		b.failures[string(ss.outcome)]++
	}
	if ss.readyIn > 0 {
		if len(b.ttfb) < ttfbSamples {
			b.ttfb = append(b.ttfb, ss.readyIn)
		} else {
			b.ttfb[b.next] = ss.readyIn
			b.next = (b.next + 1) % ttfbSamples
		}
	}
	b.mu.Unlock()
	s.env.Recent.add(info)
	m := s.env.Fleet.Metrics()
	m.SessionsEnded.WithLabelValues(s.name, string(ss.outcome)).Inc()
	m.SessionDuration.WithLabelValues(s.name).Observe(time.Since(ss.begin).Seconds())
	m.Bytes.WithLabelValues(s.name, "in").Add(float64(ss.in))
	m.Bytes.WithLabelValues(s.name, "out").Add(float64(ss.out))
	if ss.readyIn > 0 {
		m.FirstByte.WithLabelValues(s.name).Observe(ss.readyIn.Seconds())
	}
	if ss.outcome.Refused() {
		m.Refusals.WithLabelValues(s.name, string(ss.outcome)).Inc()
	}
}

// info is a snapshot of the session; bytes of a live one come from the
// kernel's counts on the client's socket.
func (ss *session) info() view.Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := view.Session{
		ID: ss.id, Service: ss.svc.name, Client: ss.addr.String(), From: ss.from,
		Start: ss.begin, Duration: time.Since(ss.begin).Seconds(), Ready: ss.readyIn.Seconds(),
		BytesIn: ss.in, BytesOut: ss.out, Outcome: string(ss.outcome), Live: ss.outcome == "",
	}
	if ss.c != nil {
		i.Daemon, i.Container = ss.c.Daemon(), shortID(ss.c.ID())
	}
	if i.Live {
		i.BytesIn, i.BytesOut = proxy.Counts(ss.client)
		i.BytesIn = max(i.BytesIn-ss.header, 0)
	}
	return i
}

// Activity returns the live sessions and the sessions ended so far.
func (s *Service) Activity() (live int, ended int64) {
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	return len(s.book.active), s.book.ended
}
