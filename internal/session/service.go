// Package session runs services: it accepts clients, gives each a
// container from the service's supply (fresh, pooled, reused or shared),
// proxies to it, and gives it back when the session ends. Containers come
// from the fleet, which owns them; a failure ends one session, never the
// service.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/fleet"
	"github.com/ganger-dev/ganger/internal/sched"
)

// Env is what every service of a node shares.
type Env struct {
	Fleet  *fleet.Fleet
	Recent *Recent // the last sessions of every service
	Conns  *Slots  // caps client connections over every service; nil: no cap
	// Now is the clock of the pools' demand measurements; nil: time.Now.
	// Tests set it to drive an adaptive pool without sleeping.
	Now func() time.Time
}

// errShutdown ends what is still starting when Ganger stops.
var errShutdown = ganger.Fail(ganger.Shutdown, errors.New("ganger is shutting down"))

// Service accepts clients for one configured service and runs a session for
// each. Create it with New; run it with Serve (or hand it connections with
// HandleConn); change it with Update; stop it with Shutdown.
type Service struct {
	name   string
	env    Env
	log    *slog.Logger
	conf   atomic.Pointer[conf]
	supply supply
	book   *book

	ctx     context.Context // cancelled (errShutdown) to force every session to end
	cancel  context.CancelCauseFunc
	closing chan struct{} // closed when Shutdown begins

	mu       sync.Mutex
	ln       net.Listener
	closed   bool
	serving  bool           // Serve started the supply (its pool): Shutdown stops it
	sessions sync.WaitGroup // live sessions
}

// conf is one generation of a service's configuration. A session works
// from the generation it started with; Update installs the next.
type conf struct {
	cfg     config.Service
	spec    ganger.Spec // template: name and labels are set per container
	ips     *ipLimits
	trusted []netip.Prefix // PROXY protocol peers; nil when it is off
	gen     int
}

// New returns a Service for cfg whose containers come from env's fleet. It
// registers the service's limits with the fleet's scheduler.
func New(cfg config.Service, env Env, log *slog.Logger) *Service {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Service{
		name:    cfg.Name,
		env:     env,
		log:     log.With("service", cfg.Name),
		ctx:     ctx,
		cancel:  cancel,
		closing: make(chan struct{}),
		book:    newBook(),
	}
	s.env.Fleet.Sched().AddService(cfg.Name, SchedLimits(cfg))
	s.env.Fleet.PrepareInit(cfg.InitSpec())
	s.conf.Store(newConf(cfg, env.Fleet.Node(), 1))
	s.supply = newSupply(s)
	return s
}

func newConf(cfg config.Service, node string, gen int) *conf {
	cf := &conf{cfg: cfg, spec: SpecFor(cfg, node), ips: newIPLimits(cfg), gen: gen}
	if cfg.ProxyProtocol {
		for _, t := range cfg.TrustedProxies {
			p, _ := config.ParsePrefix(t) // validated with the config
			cf.trusted = append(cf.trusted, p)
		}
	}
	return cf
}

// SchedLimits are a service's capacity settings as the scheduler takes them.
func SchedLimits(cfg config.Service) sched.ServiceLimits {
	policy := sched.Spread
	if cfg.Placement == ganger.Binpack {
		policy = sched.Binpack
	}
	return sched.ServiceLimits{Policy: policy, MaxContainers: cfg.MaxContainers, QueueMax: cfg.Queue.Max}
}

func (s *Service) now() time.Time {
	if s.env.Now != nil {
		return s.env.Now()
	}
	return time.Now()
}

// Name is the service's configured name.
func (s *Service) Name() string { return s.name }

// Config is the service's current configuration.
func (s *Service) Config() config.Service { return s.conf.Load().cfg }

// Update installs a new configuration of the same service (same name and
// mode). Sessions in flight finish on the containers they have; new ones
// get containers made from cfg; pooled containers of the old configuration
// are replaced. The listener is not touched.
func (s *Service) Update(cfg config.Service) {
	old := s.conf.Load()
	cf := newConf(cfg, s.env.Fleet.Node(), old.gen+1)
	if old.cfg.PerIP == cfg.PerIP && old.cfg.PerIPRate == cfg.PerIPRate {
		cf.ips = old.ips // the same limits: live per-address counts carry over
	}
	s.env.Fleet.Sched().UpdateService(s.name, SchedLimits(cfg))
	s.env.Fleet.PrepareInit(cfg.InitSpec())
	s.conf.Store(cf)
	s.supply.refresh()
}

// SpecFor is the container template of a service on node: image, command
// (under ganger-init, with init: ganger), network, labels and limits; a
// container's name is set per container.
func SpecFor(c config.Service, node string) ganger.Spec {
	env := make([]string, 0, len(c.Env))
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		env = append(env, k+"="+c.Env[k])
	}
	return ganger.Spec{
		Image:      c.Image,
		Port:       c.Port,
		Cmd:        c.Cmd,
		Entrypoint: c.Entrypoint,
		Env:        env,
		User:       c.User,
		Network:    NetworkFor(c, node),
		Init:       c.InitSpec(),
		Labels: map[string]string{
			ganger.LabelManaged: "true",
			ganger.LabelService: c.Name,
			ganger.LabelOwner:   node,
		},
		Limits: ganger.Limits{
			Memory:          int64(c.Limits.Memory),
			NanoCPUs:        int64(c.Limits.CPUs * 1e9),
			Pids:            c.Limits.Pids,
			ReadOnly:        c.Limits.ReadOnly,
			Tmpfs:           c.Limits.Tmpfs,
			CapAdd:          c.Limits.CapAdd,
			NoNewPrivileges: c.Limits.NoNewPrivileges,
			NoFile:          c.Limits.NoFile,
			LogMaxSize:      int64(c.Limits.Log.MaxSize),
			LogMaxFiles:     c.Limits.Log.MaxFiles,
			Disk:            int64(c.Limits.Disk),
		},
	}
}

// NetworkFor is the Docker network of a service's containers on node.
func NetworkFor(c config.Service, node string) string {
	if c.Network != "isolated" {
		return c.Network
	}
	return ganger.IsolatedNetwork(node, c.Egress != "none")
}

// sessionSpec is the spec of one container, named after id. A container
// made for one session (per-connection, no reuse) carries its label.
func (s *Service) sessionSpec(cf *conf, id string) ganger.Spec {
	spec := cf.spec
	spec.Name = "ganger-" + s.name + "-" + id
	spec.Labels = maps.Clone(cf.spec.Labels)
	if s.supply.perSession() {
		spec.Labels[ganger.LabelSession] = id
	}
	return spec
}

// Serve accepts clients on ln until Shutdown. It returns nil after
// Shutdown, else the listener's error. It also keeps the service's pool,
// if any.
func (s *Service) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	closed := s.closed
	if !closed {
		// Under the lock: a Shutdown running at once (a reload retiring
		// what the one before started) stops a supply that has started,
		// or finds none to stop.
		s.serving = true
		s.supply.start()
	}
	s.mu.Unlock()
	if closed {
		ln.Close()
		return nil
	}
	return Accept(ln, s, s.env.Conns, s.closing, s.log)
}

// HandleConn runs one client's session to its end: the target seam of
// Accept.
func (s *Service) HandleConn(conn net.Conn) {
	if !s.admit() {
		conn.Close()
		return
	}
	s.handle(conn.(*net.TCPConn))
}

// admit counts a new session unless the service is shutting down.
func (s *Service) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions.Add(1)
	return true
}

// Shutdown stops accepting and lets live sessions go on until ctx is done,
// then ends the rest, and destroys the pooled and shared containers. It
// returns once every session has ended; the fleet removes the containers.
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	ln, serving := s.ln, s.serving
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	drained := make(chan struct{})
	go func() { s.sessions.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		s.cancel(errShutdown)
		<-drained
	}
	s.cancel(errShutdown)
	if serving {
		s.supply.stop()
	}
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
