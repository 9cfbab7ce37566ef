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
	"time"

	"github.com/ganger-dev/ganger"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/sched"
)

// Service accepts clients for one configured service and runs a session for
// each. Create it with New; run it with Serve; stop it with Shutdown, then
// WaitCleanup.
type Service struct {
	name    string
	cfg     config.Service
	spec    ganger.Spec // template: Name and the session label are set per session
	cluster *Cluster
	ips     *ipLimits
	trusted []netip.Prefix // PROXY protocol peers; nil when it is off
	log     *slog.Logger

	ctx    context.Context // cancelled to force every session to end
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	closing  bool
	live     map[string]int // containers per session that may exist, until removed
	sessions sync.WaitGroup // live sessions
	cleanup  sync.WaitGroup // background container removals
}

// New returns a Service for cfg that places containers on the cluster and
// labels them as owned by node. It registers the service with the
// cluster's scheduler.
func New(cfg config.Service, node string, c *Cluster, log *slog.Logger) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	policy := sched.Spread
	if cfg.Placement == "binpack" {
		policy = sched.Binpack
	}
	c.Sched.AddService(cfg.Name, sched.ServiceLimits{Policy: policy, MaxContainers: cfg.MaxContainers, QueueMax: cfg.Queue.Max})
	s := &Service{
		name:    cfg.Name,
		cfg:     cfg,
		spec:    specFor(cfg, node),
		cluster: c,
		ips:     newIPLimits(cfg),
		log:     log.With("service", cfg.Name),
		ctx:     ctx,
		cancel:  cancel,
		live:    map[string]int{},
	}
	if cfg.ProxyProtocol {
		for _, t := range cfg.TrustedProxies {
			p, _ := config.ParsePrefix(t) // validated with the config
			s.trusted = append(s.trusted, p)
		}
	}
	return s
}

// Owns reports whether the session's container is still Ganger's business:
// its session is live or its removal is under way. The reconciler removes
// containers that no service owns.
func (s *Service) Owns(session string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[session] > 0
}

// Live returns the sessions Owns holds true for, at this moment.
func (s *Service) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.live))
}

// setLive counts a container of the session that may exist (live) or one
// that is gone. A session that fails over to another daemon has two for a
// while: the one being removed and the new one.
func (s *Service) setLive(session string, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if live {
		s.live[session]++
	} else if s.live[session]--; s.live[session] <= 0 {
		delete(s.live, session)
	}
}

// Name is the service's configured name.
func (s *Service) Name() string { return s.name }

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

// sessionSpec is the service's spec for one session's container.
func (s *Service) sessionSpec(id string) ganger.Spec {
	spec := s.spec
	spec.Name = "ganger-" + s.name + "-" + id
	spec.Labels = maps.Clone(s.spec.Labels)
	spec.Labels[ganger.LabelSession] = id
	return spec
}

// Serve accepts clients on ln until Shutdown. It returns nil after Shutdown,
// else the listener's error.
func (s *Service) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	closing := s.closing
	s.mu.Unlock()
	if closing {
		ln.Close()
		return nil
	}
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
// then ends the rest. It returns once every session has ended; their
// containers may still be being removed (see WaitCleanup).
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

// release removes a session's container in the background, forced and
// retried: the client never waits for it. The session stays owned, and its
// lease held, until the removal is done.
func (s *Service) release(session, target string, lease *sched.Lease, log *slog.Logger) {
	s.cleanup.Add(1)
	go s.remove(session, target, lease, log)
}

func (s *Service) remove(session, target string, lease *sched.Lease, log *slog.Logger) {
	defer s.cleanup.Done()
	defer lease.Release()
	defer s.setLive(session, false)
	b := s.cluster.Backend(lease.Daemon())
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := b.Remove(ctx, target)
		cancel()
		if err == nil {
			return
		}
		if s.cluster.isDown(lease.Daemon()) {
			log.Info("daemon down: its container is removed when it rejoins", "container", target)
			return
		}
		if attempt == 5 {
			log.Error("cannot remove container; the reconciler will retry", "container", target, "err", err)
			return
		}
		log.Warn("remove container failed, retrying", "container", target, "err", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff *= 2
	}
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
