package main

import (
	"context"
	"log/slog"

	"github.com/ganger-dev/ganger/internal/sdnotify"
)

// notifier returns what tells systemd how serve or agent is doing (see
// internal/sdnotify): nil, doing nothing, without NOTIFY_SOCKET.
func notifier(log *slog.Logger) *sdnotify.Notifier {
	sd, err := sdnotify.FromEnv(log)
	if err != nil {
		log.Warn("systemd notification", "err", err)
	}
	if sd != nil {
		log.Debug("notifying systemd", "watchdog_every", sd.WatchdogInterval())
	}
	return sd
}

// notifyStopping sends STOPPING=1 when stop ends (the first SIGTERM or
// SIGINT: the drain begins) and a new status when force does (the second:
// the drain is skipped). It returns when both have ended or ctx has.
func notifyStopping(ctx context.Context, sd *sdnotify.Notifier, stop, force context.Context, stopping, forced string) {
	if sd == nil {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-stop.Done():
		sd.Stopping(stopping)
	}
	select {
	case <-ctx.Done():
	case <-force.Done():
		sd.Status(forced)
	}
}
