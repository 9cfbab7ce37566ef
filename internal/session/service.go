package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"github.com/ganger-dev/ganger/internal/sched"
)

// Service accepts clients for one configured service and runs a session for
// each. Create it with New; run it with Serve; change it with Update;
// stop it with Shutdown, then WaitCleanup.
type Service struct {
	name    string
	node    string
	cluster *Cluster
	log     *slog.Logger
	conf    atomic.Pointer[conf]
	supply  supply
	book    *book

	ctx    context.Context // cancelled to force every session to end
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	closing  bool
	live     map[string]bool // daemon/name of every container that may exist, until removed
	sessions sync.WaitGroup  // live sessions
	cleanup  sync.WaitGroup  // background container removals
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

// New returns a Service for cfg that places containers on the cluster and
// labels them as owned by node. It registers the service with the
// cluster's scheduler.
func New(cfg config.Service, node string, c *Cluster, log *slog.Logger) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		name:    cfg.Name,
		node:    node,
		cluster: c,
		log:     log.With("service", cfg.Name),
		ctx:     ctx,
		cancel:  cancel,
		live:    map[string]bool{},
		book:    newBook(),
	}
	c.Sched.AddService(cfg.Name, schedLimits(cfg))
	s.conf.Store(newConf(cfg, node, 1))
	s.supply = newSupply(s)
	return s
}

func newConf(cfg config.Service, node string, gen int) *conf {
	cf := &conf{cfg: cfg, spec: specFor(cfg, node), ips: newIPLimits(cfg), gen: gen}
	if cfg.ProxyProtocol {
		for _, t := range cfg.TrustedProxies {
			p, _ := config.ParsePrefix(t) // validated with the config
			cf.trusted = append(cf.trusted, p)
		}
	}
	return cf
}

func schedLimits(cfg config.Service) sched.ServiceLimits {
	policy := sched.Spread
	if cfg.Placement == "binpack" {
		policy = sched.Binpack
	}
	return sched.ServiceLimits{Policy: policy, MaxContainers: cfg.MaxContainers, QueueMax: cfg.Queue.Max}
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
	cf := newConf(cfg, s.node, old.gen+1)
	if old.cfg.PerIP == cfg.PerIP && old.cfg.PerIPRate == cfg.PerIPRate {
		cf.ips = old.ips // the same limits: live per-address counts carry over
	}
	s.cluster.Sched.UpdateService(s.name, schedLimits(cfg))
	s.conf.Store(cf)
	s.supply.refresh()
}

func specFor(c config.Service, node string) ganger.Spec {
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
		Network:    c.Network,
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
		},
	}
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

// Owns reports whether the named container on the daemon is still this
// service's business: in use, pooled, or being removed. The reconciler
// removes the containers no service owns.
func (s *Service) Owns(daemon, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[daemon+"/"+name]
}

// Live returns the daemon/name keys Owns holds true for, at this moment.
func (s *Service) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.live))
}

func (s *Service) setLive(daemon, name string, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if live {
		s.live[daemon+"/"+name] = true
	} else {
		delete(s.live, daemon+"/"+name)
	}
}

// Serve accepts clients on ln until Shutdown. It returns nil after Shutdown,
// else the listener's error. It also keeps the service's pool, if any.
func (s *Service) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	closing := s.closing
	s.mu.Unlock()
	if closing {
		ln.Close()
		return nil
	}
	s.supply.start()
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			// Out of file descriptors and the like: wait, do not spin.
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.admit() {
			c.Close()
			continue
		}
		go s.handle(c.(*net.TCPConn))
	}
}

// admit counts a new session unless the service is shutting down.
func (s *Service) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions.Add(1)
	return true
}

func (s *Service) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting and lets live sessions go on until ctx is done,
// then ends the rest, and destroys the pooled and shared containers. It
// returns once every session has ended; containers may still be being
// removed (see WaitCleanup).
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	drained := make(chan struct{})
	go func() { s.sessions.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		s.cancel()
		<-drained
	}
	s.cancel()
	s.supply.stop()
}

// WaitCleanup waits until every container this service created has been
// removed (or its removal has given up), or ctx is done.
func (s *Service) WaitCleanup(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.cleanup.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) remove(c *container, log *slog.Logger) {
	defer s.cleanup.Done()
	defer c.lease.Release()
	defer s.setLive(c.daemon(), c.name, false)
	b := s.cluster.Backend(c.daemon())
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := b.Remove(ctx, c.id)
		cancel()
		if err == nil {
			return
		}
		if s.cluster.isDown(c.daemon()) {
			log.Info("daemon down: its container is removed when it rejoins", "container", c.id)
			return
		}
		if attempt == 5 {
			log.Error("cannot remove container; the reconciler will retry", "container", c.id, "err", err)
			return
		}
		log.Warn("remove container failed, retrying", "container", c.id, "err", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff *= 2
	}
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
