package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/server"
)

// serve runs the daemon. The first SIGTERM or SIGINT starts a graceful
// shutdown (drain, then remove every container); a second skips the drain;
// a third exits at once.
func serve(args []string, stderr io.Writer) error {
	path, err := configFlag("serve", args, stderr)
	if err != nil {
		return err
	}
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
	return srv.Serve(stop, force)
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
