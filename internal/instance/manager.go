package instance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/fleet"
)

// Service is one instance service as the Manager runs it.
type Service struct {
	Name string
	// Spec is the container's template: image, network, limits, labels
	// (managed, service, owner). Its Cmd and Env entries are templates
	// over the instance's secrets; Name, Port and Publish are set per
	// instance.
	Spec  ganger.Spec
	Ports []int // container ports clients reach; readiness is checked on the first
	Life  Lifetime
	// PerOwner caps an owner's live instances of the service; 0: no cap.
	PerOwner int
	// Rate and Burst cap an owner's creations per second; Rate 0: none.
	Rate  float64
	Burst int
	// Return gives an owner at its quota its newest instance back
	// instead of refusing it (on_existing: return).
	Return  bool
	Secrets map[string]int // name → length
	Connect *Template      // the connect line; nil: none
	// Proxy puts Ganger between clients and the instance (access:
	// proxy); nil: clients reach the daemon's published ports (direct).
	Proxy *Proxy
	// Queue, Ready, Backoff and BackoffMax pace the launch (see
	// fleet.Request).
	Queue, Ready, Backoff, BackoffMax time.Duration
}

// Env is what a Manager works with.
type Env struct {
	Fleet *fleet.Fleet
	Store Store
	Clock Clock // nil: RealClock
	Log   *slog.Logger
}

// Errors a caller maps to answers (the API: 404, 429, 400, 409).
var (
	ErrUnknownService = errors.New("no such instance service")
	ErrRate           = errors.New("too many creations; try again later")
	ErrBadTTL         = errors.New("bad ttl")
	ErrNotLive        = errors.New("instance is not live")
	ErrElsewhere      = errors.New("instance runs on another node")
)

// RateError is ErrRate with when to try again.
type RateError struct{ RetryAfter time.Duration }

func (e *RateError) Error() string {
	return fmt.Sprintf("%v (in %s)", ErrRate, e.RetryAfter.Round(time.Second))
}
func (e *RateError) Unwrap() error { return ErrRate }

// Manager makes instances, expires each at its time, and takes them back
// after a restart. Records live in the Store; containers are the fleet's,
// launched to outlive this process (fleet.Request.Keep).
type Manager struct {
	env   Env
	node  string
	clock Clock
	log   *slog.Logger
	dl    *Deadlines // expiries
	idle  *Deadlines // idle ends (access: proxy with idle_ttl)

	mu      sync.Mutex
	svcs    map[string]*Service
	live    map[string]*fleet.Container // by instance id
	kept    map[string]bool             // live records of this node before recovery
	buckets map[[2]string]*bucket       // (service, owner)
	ending  map[string]bool             // ids whose end is under way
	gates   map[string]*gate            // by instance id: access: proxy
	bound   map[string]bool             // listen addresses the gates hold

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewManager returns a Manager of the services over env, for the node.
func NewManager(node string, env Env, svcs []Service) *Manager {
	if env.Clock == nil {
		env.Clock = RealClock{}
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		env: env, node: node, clock: env.Clock, log: env.Log.With("component", "instances"),
		svcs: map[string]*Service{}, live: map[string]*fleet.Container{}, kept: map[string]bool{},
		buckets: map[[2]string]*bucket{}, ending: map[string]bool{}, gates: map[string]*gate{}, bound: map[string]bool{},
		ctx: ctx, cancel: cancel,
	}
	for i := range svcs {
		m.svcs[svcs[i].Name] = &svcs[i]
	}
	m.dl = NewDeadlines(env.Clock, m.expire)
	m.idle = NewDeadlines(env.Clock, m.idleEnd)
	return m
}

// Load reads this node's live records, so that Keep answers before the
// fleet's start-up sweep. Call it before the fleet starts.
func (m *Manager) Load(ctx context.Context) error {
	recs, err := m.env.Store.Live(ctx, m.node)
	if err != nil {
		return fmt.Errorf("instances: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		m.kept[r.ID] = true
	}
	return nil
}

// Keep is the fleet's sweep hook: a container of a live instance stays.
func (m *Manager) Keep(c ganger.Managed) bool {
	id := c.Labels[ganger.LabelInstance]
	if id == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kept[id] || m.live[id] != nil
}

// Start takes back the live instances of an earlier run (their containers
// adopted, their deadlines set again; one whose container vanished is
// marked lost) and starts expiring. Call it after the fleet started.
func (m *Manager) Start(ctx context.Context) error {
	recs, err := m.env.Store.Live(ctx, m.node)
	if err != nil {
		return fmt.Errorf("instances: %w", err)
	}
	listed := map[string][]ganger.Managed{}
	unreachable := map[string]bool{}
	for _, r := range recs {
		if _, done := listed[r.Daemon]; r.Daemon != "" && !done && !unreachable[r.Daemon] {
			l, err := m.env.Fleet.Listed(ctx, r.Daemon)
			if err != nil {
				m.log.Warn("cannot list a daemon's containers: its instances are kept, not taken back; each is removed at its expiry once the daemon answers", "daemon", r.Daemon, "err", err)
				unreachable[r.Daemon] = true
				continue
			}
			listed[r.Daemon] = l
		}
	}
	still := map[string]bool{}
	for _, r := range recs {
		if unreachable[r.Daemon] {
			still[r.ID] = true // sweeps leave its container; its deadline stands
			m.dl.Set(r.ID, r.ExpiresAt)
			continue
		}
		m.recover(ctx, r, listed[r.Daemon])
	}
	m.mu.Lock()
	m.kept = still
	m.mu.Unlock()
	m.wg.Go(func() { m.dl.Run(m.ctx) })
	m.wg.Go(func() { m.idle.Run(m.ctx) })
	return nil
}

func (m *Manager) recover(ctx context.Context, r Record, listed []ganger.Managed) {
	svc := m.service(r.Service)
	i := slices.IndexFunc(listed, func(c ganger.Managed) bool { return c.ID == r.Container })
	switch {
	case svc == nil:
		m.finish(r.ID, nil, Deleted, "its service is no longer configured")
	case r.State == Starting:
		var c *fleet.Container
		if i >= 0 {
			c, _ = m.env.Fleet.Adopt(ctx, r.Daemon, r.Service, listed[i], svc.Ports[0])
		}
		m.finish(r.ID, c, Failed, "ganger stopped while it started")
	case i < 0:
		m.finish(r.ID, nil, Lost, "its container was gone when ganger started")
	default:
		c, err := m.env.Fleet.Adopt(ctx, r.Daemon, r.Service, listed[i], svc.Ports[0])
		if err != nil {
			m.log.Warn("cannot take an instance back", "instance", r.ID, "err", err)
			m.finish(r.ID, nil, Lost, "cannot take it back: "+err.Error())
			return
		}
		if svc.Proxy != nil {
			g, err := m.openGate(svc, r.ID, r.Ports)
			if err == nil {
				if err = m.setContainer(ctx, g, c); err != nil {
					m.closeGate(g)
				}
			}
			if err != nil {
				m.log.Warn("cannot proxy a taken-back instance again", "instance", r.ID, "err", err)
				m.finish(r.ID, c, Lost, "cannot proxy it again: "+err.Error())
				return
			}
		}
		m.hold(r.ID, c)
		m.dl.Set(r.ID, r.ExpiresAt) // past already: it expires at once
		m.log.Info("instance taken back", "instance", r.ID, "service", r.Service, "expires_at", r.ExpiresAt)
	}
}

// Close stops expiring and proxying; live instances keep running, and
// the next start takes them back (a proxied one listens again on its
// ports).
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	gates := slices.Collect(maps.Values(m.gates))
	m.mu.Unlock()
	for _, g := range gates {
		m.closeGate(g)
		m.flushBytes(g)
	}
}

func (m *Manager) service(name string) *Service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.svcs[name]
}

// Create makes an instance of the service for owner and returns it once
// it answers, with its owner token (shown once; only its hash is kept). A
// ttl of 0 takes the service's. With on_existing: return, an owner at its
// quota gets its newest live instance back and no token (existing true).
func (m *Manager) Create(ctx context.Context, service, owner string, ttl time.Duration) (rec Record, token string, existing bool, err error) {
	rec, token, existing, err = m.create(ctx, service, owner, ttl)
	if mt := m.env.Fleet.Metrics(); m.service(service) != nil {
		switch reason := refusal(err); {
		case err == nil && !existing:
			mt.InstancesMade.WithLabelValues(service).Inc()
		case reason != "":
			mt.InstancesRefused.WithLabelValues(service, reason).Inc()
		}
	}
	return rec, token, existing, err
}

// refusal names why a creation was refused, for the metrics ("" if it
// was not, or failed otherwise).
func refusal(err error) string {
	switch o := ganger.OutcomeOf(err, ""); {
	case err == nil:
		return ""
	case errors.Is(err, ErrQuota):
		return "quota"
	case errors.Is(err, ErrRate):
		return "rate"
	case errors.Is(err, ErrBadTTL):
		return "bad_request"
	case o == ganger.QueueFull || o == ganger.QueueTimeout:
		return "no_room"
	}
	return ""
}

func (m *Manager) create(ctx context.Context, service, owner string, ttl time.Duration) (rec Record, token string, existing bool, err error) {
	svc := m.service(service)
	if svc == nil {
		return Record{}, "", false, ErrUnknownService
	}
	if ttl < 0 || ttl > svc.Life.TTL {
		return Record{}, "", false, fmt.Errorf("%w: want more than 0 and at most the service's ttl (%s); extensions add more", ErrBadTTL, svc.Life.TTL)
	}
	if svc.Return && svc.PerOwner > 0 {
		if r, ok := m.newest(ctx, service, owner, svc.PerOwner); ok {
			return r, "", true, nil
		}
	}
	if wait := m.take(service, owner, svc); wait > 0 {
		return Record{}, "", false, &RateError{RetryAfter: wait}
	}
	token, err = randomString(32)
	if err != nil {
		return Record{}, "", false, err
	}
	secrets, err := Secrets(svc.Secrets)
	if err != nil {
		return Record{}, "", false, err
	}
	now := m.clock.Now()
	sum := sha256.Sum256([]byte(token))
	rec = Record{
		ID: newID(), Service: service, Owner: owner, TokenHash: sum[:], State: Starting, Node: m.node,
		Secrets: secrets, CreatedAt: now, ExpiresAt: now.Add(svc.Life.MaxTTL), MaxExpiresAt: now.Add(svc.Life.MaxTTL),
	}
	if err := m.env.Store.Create(ctx, rec, svc.PerOwner); err != nil {
		if errors.Is(err, ErrQuota) {
			m.giveBack(service, owner, svc) // create_rate counts creations, not refusals
		}
		if errors.Is(err, ErrQuota) && svc.Return {
			if r, ok := m.newest(ctx, service, owner, 1); ok {
				return r, "", true, nil
			}
		}
		return Record{}, "", false, err
	}
	rec, err = m.launch(ctx, svc, rec, ttl)
	return rec, token, false, err
}

// newest returns the owner's newest live instance of the service if it
// holds at least n.
func (m *Manager) newest(ctx context.Context, service, owner string, n int) (Record, bool) {
	recs, err := m.env.Store.List(ctx, Filter{Service: service, Owner: owner, LiveOnly: true})
	if err != nil || len(recs) < n {
		return Record{}, false
	}
	return recs[0], true
}

// launch starts rec's container and records where it runs, or records why
// it failed.
func (m *Manager) launch(ctx context.Context, svc *Service, rec Record, ttl time.Duration) (Record, error) {
	c, ports, err := m.start(ctx, svc, rec, nil)
	if err != nil {
		m.failed(ctx, rec, err.Error())
		return Record{}, err
	}
	host := c.Host()
	if svc.Proxy != nil {
		host = svc.Proxy.Host
	}
	now := m.clock.Now()
	expires, _ := svc.Life.Expiry(rec.CreatedAt, now, ttl)
	rec, err = m.env.Store.Update(context.WithoutCancel(ctx), rec.ID, func(r *Record) error {
		r.State, r.Daemon, r.Container, r.Host, r.Ports = Running, c.Daemon(), c.ID(), host, ports
		r.ReadyAt, r.ExpiresAt = now, expires
		return nil
	})
	if err != nil {
		c.Destroy()
		m.failed(ctx, rec, err.Error())
		return Record{}, err
	}
	m.hold(rec.ID, c)
	m.dl.Set(rec.ID, rec.ExpiresAt)
	m.log.Info("instance ready", "instance", rec.ID, "service", rec.Service, "owner", rec.Owner,
		"daemon", rec.Daemon, "expires_at", rec.ExpiresAt)
	return rec, nil
}

// start launches a container for rec, kept past Ganger's own life, on the
// host ports asked for (nil: the daemon picks, or with access: proxy,
// Ganger's range), and returns it with the ports clients reach (the
// daemon's published ports, or those of the instance's gate); on error
// nothing is left but a gate that was open before.
func (m *Manager) start(ctx context.Context, svc *Service, rec Record, hostPorts map[int]int) (*fleet.Container, map[int]int, error) {
	spec, err := m.spec(svc, rec)
	if err != nil {
		return nil, nil, err
	}
	spec.HostPorts = hostPorts
	c, err := m.env.Fleet.Launch(ctx, fleet.Request{
		Service: svc.Name, Spec: spec, QueueTimeout: svc.Queue, ReadyTimeout: svc.Ready,
		Backoff: svc.Backoff, BackoffMax: svc.BackoffMax, Log: m.log, Keep: true,
	})
	if err != nil {
		return nil, nil, err
	}
	if svc.Proxy == nil {
		ports, err := c.Published(ctx)
		if err != nil {
			c.Destroy()
			return nil, nil, err
		}
		return c, ports, nil
	}
	g := m.gateOf(rec.ID)
	opened := g == nil
	if opened {
		if g, err = m.openGate(svc, rec.ID, hostPorts); err != nil {
			c.Destroy()
			return nil, nil, err
		}
	}
	if err := m.setContainer(ctx, g, c); err != nil {
		if opened {
			m.closeGate(g)
		}
		c.Destroy()
		return nil, nil, err
	}
	return c, g.ports(), nil
}

// failed records that rec failed, and why.
func (m *Manager) failed(ctx context.Context, rec Record, reason string) {
	m.log.Warn("instance failed", "instance", rec.ID, "service", rec.Service, "owner", rec.Owner, "reason", reason)
	m.dl.Cancel(rec.ID)
	if g := m.gateOf(rec.ID); g != nil {
		m.closeGate(g)
	}
	if _, err := m.env.Store.Update(context.WithoutCancel(ctx), rec.ID, func(r *Record) error {
		r.State, r.Reason, r.EndedAt = Failed, reason, m.clock.Now()
		return nil
	}); err == nil {
		m.env.Fleet.Metrics().InstancesEnded.WithLabelValues(rec.Service, string(Failed)).Inc()
	}
}

// spec is the container of rec: the service's template with the
// secrets filled in.
func (m *Manager) spec(svc *Service, rec Record) (ganger.Spec, error) {
	spec := svc.Spec
	spec.Name = "ganger-" + svc.Name + "-" + rec.ID
	spec.Port = svc.Ports[0]
	spec.Publish, spec.Dial = proxySpec(svc, svc.Ports)
	spec.Labels = maps.Clone(svc.Spec.Labels)
	spec.Labels[ganger.LabelInstance] = rec.ID
	v := Values{Secrets: rec.Secrets}
	render := func(in []string) ([]string, error) {
		out := make([]string, len(in))
		for i, s := range in {
			t, err := ParseTemplate("arg", s)
			if err != nil {
				return nil, err
			}
			if out[i], err = t.Render(v); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var err error
	if spec.Cmd, err = render(svc.Spec.Cmd); err != nil {
		return spec, fmt.Errorf("cmd: %w", err)
	}
	if spec.Env, err = render(svc.Spec.Env); err != nil {
		return spec, fmt.Errorf("env: %w", err)
	}
	return spec, nil
}

// hold registers a live instance's container, and ends the instance as
// lost if the container exits on its own.
func (m *Manager) hold(id string, c *fleet.Container) {
	m.mu.Lock()
	m.live[id] = c
	m.mu.Unlock()
	context.AfterFunc(c.Life(), func() {
		m.mu.Lock()
		ours := m.live[id] == c && !m.ending[id]
		m.mu.Unlock()
		if ours {
			e := c.Exit()
			m.log.Warn("instance container exited", "instance", id, "code", e.Code)
			m.finish(id, c, Lost, fmt.Sprintf("its container exited (code %d)", e.Code))
		}
	})
}

// Get returns an instance's record.
func (m *Manager) Get(ctx context.Context, id string) (Record, error) {
	return m.env.Store.Get(ctx, id)
}

// List returns records, newest first.
func (m *Manager) List(ctx context.Context, f Filter) ([]Record, error) {
	return m.env.Store.List(ctx, f)
}

// Owns reports whether token is the owner token of rec.
func Owns(rec Record, token string) bool {
	sum := sha256.Sum256([]byte(token))
	return len(rec.TokenHash) == len(sum) && subtle.ConstantTimeCompare(rec.TokenHash, sum[:]) == 1
}

// Extend adds the service's extend.by to a live instance's expiry,
// clamped to its cap; past extend.max, or at the cap, it is refused.
func (m *Manager) Extend(ctx context.Context, id string) (Record, error) {
	rec, err := m.env.Store.Update(ctx, id, func(r *Record) error {
		if !r.State.Live() {
			return fmt.Errorf("%w: %s", ErrNotLive, r.State)
		}
		svc := m.service(r.Service)
		if svc == nil {
			return ErrUnknownService
		}
		next, err := svc.Life.Extend(r.ExpiresAt, r.MaxExpiresAt, r.Extensions)
		if err != nil {
			return err
		}
		r.ExpiresAt, r.Extensions = next, r.Extensions+1
		return nil
	})
	if err != nil {
		return rec, err
	}
	m.dl.Set(id, rec.ExpiresAt)
	m.log.Info("instance extended", "instance", id, "expires_at", rec.ExpiresAt, "extensions", rec.Extensions)
	return rec, nil
}

// Restart gives a live instance a fresh container: same id, secrets and
// ports (asked of the daemon again), same expiry. The old container is
// removed first. Only the node that runs it restarts it.
func (m *Manager) Restart(ctx context.Context, id string) (Record, error) {
	rec, err := m.env.Store.Get(ctx, id)
	if err != nil {
		return rec, err
	}
	svc := m.service(rec.Service)
	switch {
	case rec.State != Running:
		return rec, fmt.Errorf("%w: %s", ErrNotLive, rec.State)
	case rec.Node != m.node:
		return rec, fmt.Errorf("%w: node %s runs it; restart it there", ErrElsewhere, rec.Node)
	case svc == nil:
		return rec, ErrUnknownService
	}
	m.mu.Lock()
	if m.ending[id] {
		m.mu.Unlock()
		return rec, fmt.Errorf("%w: it is ending", ErrNotLive)
	}
	m.ending[id] = true // its old container's exit is no loss
	old := m.live[id]
	delete(m.live, id)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.ending, id)
		m.mu.Unlock()
	}()
	if g := m.gateOf(id); g != nil {
		m.setContainer(ctx, g, nil) // connections wait for none: refused until the new one is up
	}
	if old != nil {
		old.Destroy()
		<-old.Gone()
	} else if rec.Container != "" {
		// Not held here (its daemon did not answer at start-up): its
		// container goes first all the same, or it would stay for good.
		if err := m.removeOther(ctx, rec); err != nil {
			return rec, err
		}
		m.mu.Lock()
		delete(m.kept, id)
		m.mu.Unlock()
	}
	c, ports, err := m.start(ctx, svc, rec, rec.Ports)
	if err != nil {
		m.failed(ctx, rec, "restart failed: "+err.Error())
		return rec, err
	}
	host := c.Host()
	if svc.Proxy != nil {
		host = svc.Proxy.Host
	}
	rec, err = m.env.Store.Update(context.WithoutCancel(ctx), id, func(r *Record) error {
		r.Daemon, r.Container, r.Host, r.Ports = c.Daemon(), c.ID(), host, ports
		return nil
	})
	if err != nil {
		c.Destroy()
		return rec, err
	}
	m.hold(id, c)
	m.dl.Set(id, rec.ExpiresAt) // an expiry that came during the restart found it ending
	m.log.Info("instance restarted", "instance", id, "daemon", rec.Daemon)
	return rec, nil
}

// Delete ends a live instance now: its container is removed, then its
// record says deleted.
func (m *Manager) Delete(ctx context.Context, id string) (Record, error) {
	rec, err := m.env.Store.Get(ctx, id)
	if err != nil {
		return rec, err
	}
	if !rec.State.Live() {
		return rec, fmt.Errorf("%w: %s", ErrNotLive, rec.State)
	}
	m.mu.Lock()
	c := m.live[id]
	m.mu.Unlock()
	return m.finish(id, c, Deleted, "deleted")
}

// expire is the deadline of an instance coming: it ends it, unless it was
// extended meanwhile (another front-end sharing the store may have).
func (m *Manager) expire(id string) {
	ctx := m.ctx
	rec, err := m.env.Store.Get(ctx, id)
	if err != nil || !rec.State.Live() {
		return
	}
	if now := m.clock.Now(); now.Before(rec.ExpiresAt) {
		m.dl.Set(id, rec.ExpiresAt)
		return
	}
	m.mu.Lock()
	c := m.live[id]
	m.mu.Unlock()
	switch _, err := m.finish(id, c, Expired, "its lifetime ended"); {
	case err == nil:
		m.log.Info("instance expired", "instance", id, "service", rec.Service, "expires_at", rec.ExpiresAt)
	case errors.Is(err, ErrRemove):
		m.log.Warn("instance expired, but its container cannot be removed yet; retrying", "instance", id, "err", err)
		m.dl.Set(id, m.clock.Now().Add(retryRemove))
	}
}

// retryRemove is how soon an expiry whose container could not be removed
// is tried again.
const retryRemove = 10 * time.Second

// ErrRemove means an instance's container could not be removed: its
// record stays live.
var ErrRemove = errors.New("cannot remove the instance's container")

// finish ends an instance: its container (if any) is removed, and only
// once the daemon confirms is the record given its final state. Its
// EndedAt is when it stopped serving: when its container was seen dead
// (the removal kills it first), or, for a container another front-end
// holds, when its removal was confirmed. One end runs per instance.
func (m *Manager) finish(id string, c *fleet.Container, state State, reason string) (Record, error) {
	m.mu.Lock()
	if m.ending[id] {
		m.mu.Unlock()
		return Record{}, fmt.Errorf("%w: it is ending", ErrNotLive)
	}
	m.ending[id] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.ending, id)
		if m.live[id] == c {
			delete(m.live, id)
		}
		m.mu.Unlock()
	}()
	m.dl.Cancel(id)
	var moved [2]int64
	if g := m.gateOf(id); g != nil {
		m.closeGate(g) // clients are cut as the instance ends
		moved[0], moved[1] = g.bytes[0].Swap(0), g.bytes[1].Swap(0)
	}
	var stopped time.Time // when it stopped serving: its container seen dead
	if c != nil {
		c.Destroy()
		<-c.Exited()
		stopped = m.clock.Now()
		<-c.Gone()
	} else if state != Lost && state != Failed {
		// Not held here: another front-end's, or on a daemon that did not
		// answer at start-up. Its container goes first, all the same.
		rec, err := m.env.Store.Get(context.Background(), id)
		if err != nil {
			return rec, err
		}
		if rec.Container != "" {
			if err := m.removeOther(context.Background(), rec); err != nil {
				return rec, err
			}
		}
	}
	m.mu.Lock()
	delete(m.kept, id)
	m.mu.Unlock()
	rec, err := m.env.Store.Update(context.Background(), id, func(r *Record) error {
		if !r.State.Live() {
			return fmt.Errorf("%w: %s", ErrNotLive, r.State)
		}
		if stopped.IsZero() {
			stopped = m.clock.Now()
		}
		r.State, r.Reason, r.EndedAt = state, reason, stopped
		r.BytesIn += moved[0]
		r.BytesOut += moved[1]
		return nil
	})
	if err == nil {
		m.env.Fleet.Metrics().InstancesEnded.WithLabelValues(rec.Service, string(state)).Inc()
	}
	return rec, err
}

// removeOther removes rec's container through its daemon when this node
// does not hold it (another front-end's, or kept at start-up), returning
// once the daemon confirms.
func (m *Manager) removeOther(ctx context.Context, rec Record) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.env.Fleet.RemoveOther(ctx, rec.Daemon, rec.Container); err != nil {
		return fmt.Errorf("%w %s on %s: %v", ErrRemove, rec.Container, rec.Daemon, err)
	}
	return nil
}

// Services returns the names of the instance services.
func (m *Manager) Services() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.svcs))
}

// Connect renders the service's connect line for rec ("" without one).
func (m *Manager) Connect(rec Record) string {
	svc := m.service(rec.Service)
	if svc == nil || svc.Connect == nil || !rec.State.Live() {
		return ""
	}
	s, err := svc.Connect.Render(Values{Secrets: rec.Secrets, Host: rec.Host, Ports: rec.Ports})
	if err != nil {
		return ""
	}
	return s
}

// take spends one creation of the owner's bucket, or returns how long to
// wait for one.
func (m *Manager) take(service, owner string, svc *Service) time.Duration {
	if svc.Rate <= 0 {
		return 0
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{service, owner}
	b := m.buckets[k]
	if b == nil {
		b = &bucket{tokens: float64(max(svc.Burst, 1)), at: now}
		m.buckets[k] = b
	}
	burst := float64(max(svc.Burst, 1))
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.at).Seconds()*svc.Rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / svc.Rate * float64(time.Second))
}

// giveBack returns the token take took for a creation that did not happen.
func (m *Manager) giveBack(service, owner string, svc *Service) {
	if svc.Rate <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.buckets[[2]string{service, owner}]; b != nil {
		b.tokens = math.Min(float64(max(svc.Burst, 1)), b.tokens+1)
	}
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Redacted is rec without its secrets, for admin listings and logs.
func Redacted(rec Record) Record {
	if len(rec.Secrets) > 0 {
		names := slices.Sorted(maps.Keys(rec.Secrets))
		rec.Secrets = map[string]string{}
		for _, n := range names {
			rec.Secrets[n] = strings.Repeat("*", 8)
		}
	}
	rec.TokenHash = nil
	return rec
}
