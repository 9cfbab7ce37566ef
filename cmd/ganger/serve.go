package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/ganger-dev/ganger/internal/api"
	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/server"
)

// serve runs the daemon. The first SIGTERM or SIGINT starts a graceful
// shutdown (drain, then remove every container); a second skips the drain;
// a third exits at once. SIGHUP reloads the config file.
func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig(), "config file (default: $GANGER_CONFIG, else "+systemConfig+" if it exists)")
	pidFile := fs.String("pid-file", "", "write the process id here (for ganger reload)")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: ganger serve --config FILE [--pid-file FILE] (or GANGER_CONFIG, or "+systemConfig+")")
		return errUsage
	}
	return runServer(*path, *pidFile, stderr)
}

func runServer(path, pidFile string, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	log.Info("ganger starting", "version", version, "node", cfg.Node, "config", path)
	logWarnings(cfg, log)
	sd := notifier(log) // systemd's Type=notify: READY=1 once every listener is open
	defer sd.Watchdog()()
	sd.Status("starting: daemons, images, listeners")

	if n, err := server.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit", "limit", n, "err", err)
	}
	stop, force := signals(log, [3]string{
		"signal: shutting down gracefully (again to skip the drain)",
		"signal: skipping the drain; closing sessions and removing containers (again to exit now)",
		"signal: exiting now; the next start-up sweep removes what is left"})
	notifyCtx, endNotify := context.WithCancel(context.Background())
	defer endNotify()
	go notifyStopping(notifyCtx, sd, stop, force, "shutting down: no new sessions; draining",
		"shutting down: drain skipped; closing sessions, removing containers")
	srv, err := server.NewDocker(cfg, log)
	if err != nil {
		return err
	}
	bootCtx, cancel := context.WithTimeout(stop, server.SetupTimeout)
	defer cancel()
	if err := srv.Start(bootCtx); err != nil {
		srv.Close()
		return fmt.Errorf("start-up: %w", err)
	}
	if pidFile != "" {
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			srv.Close()
			return fmt.Errorf("pid file: %w", err)
		}
		defer os.Remove(pidFile)
	}
	reload := func(ctx context.Context) error {
		if stop.Err() == nil {
			sd.Reloading("reloading " + path)
		}
		err := reloadFile(ctx, srv, path, log)
		if stop.Err() == nil { // back to ready, with either config
			if err != nil {
				sd.Ready("serving; the reload of " + time.Now().Format(time.DateTime) + " failed, the previous config goes on (see the log)")
			} else {
				sd.Ready("serving; config reloaded " + time.Now().Format(time.DateTime))
			}
		}
		return err
	}
	// SIGHUP is caught from here on, before READY=1: systemctl reload may
	// follow it at once, and an uncaught SIGHUP ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go reloadOnHUP(stop, hup, reload, log)
	a, err := startAPI(cfg, srv, reload, log)
	if err != nil {
		srv.Close()
		return err
	}
	sd.Ready(fmt.Sprintf("serving %d service(s) from %s", len(cfg.Services), path))
	err = srv.Serve(stop, force)
	if a != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.Shutdown(ctx)
		cancel()
	}
	return err
}

// startAPI serves the HTTP interface, unless api.listen is "".
func startAPI(cfg *config.Config, srv *server.Server, reload func(context.Context) error, log *slog.Logger) (*api.API, error) {
	c := cfg.API
	if c.Listen == "" {
		return nil, nil
	}
	token, readToken, err := c.Tokens()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	a := &api.API{Node: srv, Metrics: srv.Metrics().Handler(), Reload: reload, ReloadTimeout: server.SetupTimeout,
		Token: token, ReadToken: readToken, PublicRead: c.PublicRead, Hosts: c.Hosts, MaxConnections: c.MaxConnections,
		Log: log.With("component", "api"), HostList: srv.Hosts, Degraded: srv.Degraded}
	if sc := srv.Autoscale(); sc != nil {
		a.Autoscale = sc
	}
	if m := srv.Clusters(); m != nil {
		a.Clusters = clusters{m}
	}
	if m := srv.Instances(); m != nil {
		a.Instances = newInstances(m, cfg)
		a.InstanceServices = m.Services()
	}
	for _, cl := range c.Clients {
		tok, err := config.ReadToken(cl.Token, cl.TokenFile)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("api client %s: %w", cl.Name, err)
		}
		a.Clients = append(a.Clients, api.Client{Name: cl.Name, Token: tok})
	}
	for _, t := range c.TrustedProxies {
		p, _ := config.ParsePrefix(t) // validated with the config
		a.TrustedProxies = append(a.TrustedProxies, p)
	}
	go func() {
		if err := a.Serve(ln); err != nil {
			log.Error("api stopped", "err", err)
		}
	}()
	reads := "token"
	switch {
	case c.PublicRead:
		reads = "public"
	case token == "" && readToken == "":
		reads = "refused: no token configured"
	}
	log.Info("api listening", "addr", ln.Addr().String(), "reads", reads, "mutating_calls", token != "", "hosts", c.Hosts)
	return a, nil
}

// reloadFile reads and validates the config file and applies it; an
// invalid file changes nothing and its errors are returned.
func reloadFile(ctx context.Context, srv *server.Server, path string, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logWarnings(cfg, log)
	return srv.Reload(ctx, cfg)
}

// reloadOnHUP reloads the config file at each SIGHUP on hup until ctx
// ends. An invalid file changes nothing; its errors are logged.
func reloadOnHUP(ctx context.Context, hup chan os.Signal, reload func(context.Context) error, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			// Still caught, never the default (which ends the process):
			// a SIGHUP during the drain is only logged.
			go func() {
				for range hup {
					log.Info("SIGHUP ignored: shutting down")
				}
			}()
			return
		case <-hup:
		}
		log.Info("SIGHUP: reloading")
		err := reload(ctx)
		var errs config.Errors
		switch {
		case errors.As(err, &errs):
			for _, e := range errs {
				log.Error("reload: invalid config; nothing changed", "error", e.Error())
			}
		case err != nil:
			log.Error("reload failed", "err", err)
		default:
			log.Info("reload done")
		}
	}
}

// signals returns a context done at the first SIGTERM/SIGINT and another
// done at the second; the third exits the process. said are the three log
// lines: what each signal does.
func signals(log *slog.Logger, said [3]string) (stop, force context.Context) {
	stop, stopFn := context.WithCancel(context.Background())
	force, forceFn := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 3)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for n := 1; ; n++ {
			sig := <-ch
			switch n {
			case 1:
				log.Info(said[0], "signal", sig.String())
				stopFn()
			case 2:
				log.Warn(said[1], "signal", sig.String())
				forceFn()
			default:
				log.Error(said[2], "signal", sig.String())
				os.Exit(130)
			}
		}
	}()
	return stop, force
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logWarnings logs what the configuration allows but weakens.
func logWarnings(cfg *config.Config, log *slog.Logger) {
	for _, w := range cfg.Warnings() {
		log.Warn("config warning", "warning", w)
	}
}
