package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/discovery"
	"github.com/ganger-dev/ganger/internal/docker"
)

// agentSetupTimeout bounds the agent's start-up (Docker ping, etcd
// connection), apart from its registration, which waits for etcd.
const agentSetupTimeout = 30 * time.Second

// agentConfig is what `ganger agent`'s flags say.
type agentConfig struct {
	etcd             []string
	name             string
	docker           string
	advertise        string
	prefix           string
	stateDir         string
	maxContainers    int
	labels           labelsFlag
	ttl              time.Duration
	drainTimeout     time.Duration
	etcdTLS          discovery.TLSFiles
	dockerTLS        docker.TLS
	etcdUser         string
	etcdPasswordFile string
	logLevel         string
	logFormat        string
}

// agent runs `ganger agent`: it registers this Docker host in etcd for
// Ganger nodes to find, until SIGTERM or SIGINT drains and deregisters it.
func agent(args []string, stderr io.Writer) error {
	cfg, err := parseAgentFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(config.Log{Level: cfg.logLevel, Format: cfg.logFormat}, stderr)
	return runAgent(cfg, log)
}

const agentUsage = `usage: ganger agent --etcd URL[,URL...] --name NAME --advertise IP [flags]`

func parseAgentFlags(args []string, stderr io.Writer) (*agentConfig, error) {
	cfg := &agentConfig{labels: labelsFlag{}}
	f := flag.NewFlagSet("agent", flag.ContinueOnError)
	f.SetOutput(stderr)
	f.Usage = func() { fmt.Fprintln(stderr, agentUsage); f.PrintDefaults() }
	etcd := f.String("etcd", "", "etcd endpoints, comma-separated (http:// or https://)")
	f.StringVar(&cfg.name, "name", "", "this host's name among Ganger's hosts (the key <prefix>hosts/NAME)")
	f.StringVar(&cfg.docker, "docker", config.DaemonFromEnv().Host, "the Docker daemon, as Ganger nodes reach it (unix:///path or tcp://host:port; DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply)")
	f.StringVar(&cfg.advertise, "advertise", "", "where the daemon's published ports are reachable (IP or host name)")
	f.StringVar(&cfg.prefix, "prefix", discovery.DefaultPrefix, "etcd key prefix")
	f.StringVar(&cfg.stateDir, "state-dir", "/var/lib/ganger-agent", "where the agent keeps its persistent id (agent-id)")
	f.IntVar(&cfg.maxContainers, "max-containers", 0, "containers Ganger may run here (0: the node's default)")
	f.Var(&cfg.labels, "labels", "host labels k=v[,k=v...] (repeatable)")
	f.DurationVar(&cfg.ttl, "ttl", 10*time.Second, "lease TTL: the key goes this long after the agent dies")
	f.DurationVar(&cfg.drainTimeout, "drain-timeout", 10*time.Minute, "on SIGTERM, wait at most this long for Ganger's containers here to end")
	f.StringVar(&cfg.dockerTLS.CA, "docker-ca", "", "CA of a tcp:// daemon's TLS certificate (PEM); with --docker-cert and --docker-key (else DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)")
	f.StringVar(&cfg.dockerTLS.Cert, "docker-cert", "", "client certificate for a tcp:// daemon (PEM)")
	f.StringVar(&cfg.dockerTLS.Key, "docker-key", "", "client key for a tcp:// daemon (PEM)")
	f.StringVar(&cfg.etcdTLS.CA, "etcd-ca", "", "CA of etcd's server certificate (PEM)")
	f.StringVar(&cfg.etcdTLS.Cert, "etcd-cert", "", "client certificate for etcd (PEM)")
	f.StringVar(&cfg.etcdTLS.Key, "etcd-key", "", "client key for etcd (PEM)")
	f.StringVar(&cfg.etcdUser, "etcd-username", "", "etcd user, when etcd's authentication is on")
	f.StringVar(&cfg.etcdPasswordFile, "etcd-password-file", "", "file holding the etcd user's password")
	f.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.logFormat, "log-format", "text", "text or json")
	if err := f.Parse(args); err != nil {
		return nil, errUsage
	}
	for _, ep := range strings.Split(*etcd, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			cfg.etcd = append(cfg.etcd, ep)
		}
	}
	if err := cfg.check(f.NArg()); err != nil {
		fmt.Fprintf(stderr, "ganger agent: %v\n%s\n", err, agentUsage)
		return nil, errUsage
	}
	return cfg, nil
}

// check reports the first flag that is missing or wrong.
func (c *agentConfig) check(extra int) error {
	switch {
	case extra > 0:
		return errors.New("unexpected arguments")
	case len(c.etcd) == 0:
		return errors.New("--etcd is required")
	case c.name == "" || strings.ContainsAny(c.name, "/ \t\n"):
		return errors.New("--name is required: a name without '/' or white space")
	case c.advertise == "":
		return errors.New("--advertise is required")
	case c.docker == "":
		return errors.New("--docker is required")
	case c.stateDir == "":
		return errors.New("--state-dir is required")
	case c.maxContainers < 0:
		return errors.New("--max-containers: want 0 or more")
	case c.ttl < time.Second:
		return errors.New("--ttl: want 1s or more")
	case c.drainTimeout < 0:
		return errors.New("--drain-timeout: want 0 or more")
	case c.etcdUser == "" && c.etcdPasswordFile != "":
		return errors.New("--etcd-password-file needs --etcd-username")
	case c.dockerTLS != (docker.TLS{}) && (c.dockerTLS.CA == "" || c.dockerTLS.Cert == "" || c.dockerTLS.Key == ""):
		return errors.New("--docker-ca, --docker-cert and --docker-key go together")
	case c.dockerTLS != (docker.TLS{}) && !strings.HasPrefix(c.docker, "tcp://"):
		return errors.New("--docker-ca, --docker-cert and --docker-key apply to a tcp:// --docker")
	}
	return nil
}

// labelsFlag is --labels: k=v pairs, comma-separated, repeatable.
type labelsFlag map[string]string

func (l labelsFlag) String() string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		kv = append(kv, k+"="+l[k])
	}
	return strings.Join(kv, ",")
}

func (l labelsFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return fmt.Errorf("label %q: want key=value", kv)
		}
		l[k] = v
	}
	return nil
}

// hostAgent holds what the agent registers.
type hostAgent struct {
	mu   sync.Mutex
	host discovery.Host
}

// value is the registered JSON, as of now.
func (a *hostAgent) value() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := json.Marshal(a.host)
	return b
}

func (a *hostAgent) setDraining() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.host.Draining = true
}

// runAgent checks the daemon, registers the host, and at the first signal
// drains and deregisters it.
func runAgent(cfg *agentConfig, log *slog.Logger) error {
	id, err := agentID(cfg.stateDir)
	if err != nil {
		return err
	}
	log = log.With("host", cfg.name)
	log.Info("ganger agent starting", "version", version, "id", id, "docker", cfg.docker, "etcd", cfg.etcd)
	sd := notifier(log) // systemd's Type=notify: READY=1 once registered
	defer sd.Watchdog()()
	sd.Status("starting: pinging Docker, connecting to etcd")
	stop, force := signals(log, [3]string{
		"signal: draining, then deregistering (again to skip the drain)",
		"signal: skipping the drain; deregistering (again to exit now)",
		"signal: exiting now; the key goes when its lease expires"})
	bootCtx, cancel := context.WithTimeout(stop, agentSetupTimeout)
	defer cancel()
	d, err := pingDocker(bootCtx, cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	c, err := connectEtcd(bootCtx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()

	a := &hostAgent{host: discovery.Host{Name: cfg.name, ID: id, Docker: cfg.docker, Advertise: cfg.advertise,
		MaxContainers: cfg.maxContainers, Labels: cfg.labels, RegisteredAt: time.Now().UTC()}}
	// A replaced host's new agent (another id) waits out the old agent's
	// lease before it gives up.
	sd.Status("registering in etcd as host " + cfg.name)
	reg, err := c.Register(stop, discovery.KindHosts, cfg.name, id, a.value, cfg.ttl, 2*cfg.ttl)
	switch {
	case errors.Is(err, discovery.ErrTaken):
		return fmt.Errorf("another agent runs as host %q (a second agent with the same --name and another id is refused; stop it, or give this host another --name): %w", cfg.name, err)
	case err != nil && stop.Err() != nil:
		log.Info("stopped before registering")
		return nil
	case err != nil:
		return fmt.Errorf("register host %s: %w", cfg.name, err)
	}
	log.Info("agent registered", "key", reg.Key(), "ttl", cfg.ttl)
	sd.Ready("registered as " + reg.Key())
	<-stop.Done()
	sd.Stopping("draining: no new containers here; waiting for Ganger's to end")
	drainHost(force, a, reg, d, cfg.drainTimeout, log)
	sd.Status("deregistering")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Revoke(ctx); err != nil {
		return fmt.Errorf("deregister: %w", err)
	}
	log.Info("agent deregistered; exiting")
	return nil
}

// pingDocker makes a client of the daemon and checks that it answers.
func pingDocker(ctx context.Context, cfg *agentConfig, log *slog.Logger) (*docker.Daemon, error) {
	dc := docker.Config{Name: cfg.name, Host: cfg.docker}
	if cfg.dockerTLS != (docker.TLS{}) {
		t := cfg.dockerTLS
		dc.TLS = &t
	} else if t := config.DaemonFromEnv().TLS; t != nil {
		dc.TLS = &docker.TLS{CA: t.CA, Cert: t.Cert, Key: t.Key}
	}
	d, err := docker.New(dc, nil, log)
	if err != nil {
		return nil, err
	}
	apiVersion, err := d.Ping(ctx)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("the Docker daemon at %s does not answer: %w", cfg.docker, err)
	}
	log.Info("docker daemon answers", "api_version", apiVersion)
	return d, nil
}

// connectEtcd connects to etcd with the flags' TLS and credentials.
func connectEtcd(ctx context.Context, cfg *agentConfig, log *slog.Logger) (*discovery.Client, error) {
	opt := discovery.Options{Endpoints: cfg.etcd, Prefix: cfg.prefix, Username: cfg.etcdUser, Log: log}
	if t := cfg.etcdTLS; t != (discovery.TLSFiles{}) {
		opt.TLS = &t
	}
	if cfg.etcdPasswordFile != "" {
		pw, err := config.ReadToken("", cfg.etcdPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-password-file: %w", err)
		}
		opt.Password = pw
	}
	c, err := discovery.Connect(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(cfg.etcd, ","), err)
	}
	return c, nil
}

// drainHost marks the host draining, so that no node places a new
// container here, and waits until the daemon runs none of Ganger's, the
// drain timeout passes, or force ends.
func drainHost(force context.Context, a *hostAgent, reg *discovery.Registration, d *docker.Daemon, timeout time.Duration, log *slog.Logger) {
	a.setDraining()
	ctx, cancel := context.WithTimeout(force, timeout)
	defer cancel()
	if err := reg.Update(ctx); err != nil {
		log.Error("cannot mark the host draining", "err", err)
	}
	log.Info("draining: waiting for Ganger's containers here to end", "drain_timeout", timeout)
	last := -1
	for {
		n, err := liveManaged(ctx, d)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("draining: cannot list containers", "err", err)
		case err == nil && n == 0:
			log.Info("drained: no container of Ganger's runs here")
			return
		case err == nil && n != last:
			log.Info("draining", "containers", n)
			last = n
		}
		select {
		case <-ctx.Done():
			if force.Err() != nil {
				log.Warn("drain skipped (second signal)", "containers", last)
			} else {
				log.Warn("drain timeout: deregistering with containers still running", "containers", last)
			}
			return
		case <-time.After(time.Second):
		}
	}
}

// liveManaged counts the daemon's containers labelled ganger.managed=true
// that have not ended (an exited one left behind does not hold the drain).
func liveManaged(ctx context.Context, d *docker.Daemon) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := d.ListManaged(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range list {
		if m.State != "exited" && m.State != "dead" {
			n++
		}
	}
	return n, nil
}

// agentID reads the agent's persistent id from dir/agent-id, or makes one
// and writes it there (0600) the first time.
func agentID(dir string) (string, error) {
	path := filepath.Join(dir, "agent-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("%s is empty: remove it to make a new id", path)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("agent id: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	var r [16]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return agentID(dir) // another agent made it first
	}
	if err != nil {
		return "", fmt.Errorf("agent id: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("agent id: %w", err)
	}
	return id, nil
}
