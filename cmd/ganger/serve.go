package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/server"
)

// serve runs the daemon. The first SIGTERM or SIGINT starts a graceful
// shutdown (drain, then remove every container); a second skips the drain;
// a third exits at once. SIGHUP reloads the config file.
func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file")
	pidFile := fs.String("pid-file", "", "write the process id here (for ganger reload)")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: ganger serve --config FILE [--pid-file FILE]")
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

	stop, force := signals(log)
	srv, err := server.New(cfg, log)
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
	go reloadOnHUP(stop, srv, path, log)
	return srv.Serve(stop, force)
}

// reloadOnHUP reloads the config file at each SIGHUP until ctx ends. An
// invalid file changes nothing; its errors are logged.
func reloadOnHUP(ctx context.Context, srv *server.Server, path string, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		log.Info("SIGHUP: reloading", "config", path)
		cfg, err := config.Load(path)
		var errs config.Errors
		switch {
		case errors.As(err, &errs):
			for _, e := range errs {
				log.Error("reload: invalid config; nothing changed", "error", e.Error())
			}
			continue
		case err != nil:
			log.Error("reload: nothing changed", "err", err)
			continue
		}
		if err := srv.Reload(ctx, cfg); err != nil {
			log.Error("reload failed", "err", err)
			continue
		}
		log.Info("reload done", "services", len(cfg.Services))
	}
}

// signals returns a context done at the first SIGTERM/SIGINT and another
// done at the second; the third exits the process.
func signals(log *slog.Logger) (stop, force context.Context) {
	stop, stopFn := context.WithCancel(context.Background())
	force, forceFn := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 3)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for n := 1; ; n++ {
			sig := <-ch
			switch n {
			case 1:
				log.Info("signal: shutting down gracefully (again to skip the drain)", "signal", sig.String())
				stopFn()
			case 2:
				log.Warn("signal: skipping the drain; closing sessions and removing containers (again to exit now)", "signal", sig.String())
				forceFn()
			default:
				log.Error("signal: exiting now; the next start-up sweep removes what is left", "signal", sig.String())
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
