// Package session runs one service: it accepts clients, gives each a fresh
// container, proxies to it once it answers, and removes it when the session
// ends. A failure ends one session, never the service, and never leaves a
// container behind.
package session

import (
	"context"

	"github.com/ganger-dev/ganger"
)

// Backend is what a session needs from one Docker daemon. Every method
// takes ctx; an implementation must be safe for concurrent use.
type Backend interface {
	// Name identifies the daemon in logs.
	Name() string
	// Create creates a container from spec, not yet started, and returns its id.
	Create(ctx context.Context, spec ganger.Spec) (string, error)
	// Start starts it and returns the TCP address that reaches its port.
	Start(ctx context.Context, id string, port int) (string, error)
	// Wait delivers how the container ended, once it is no longer running.
	// Cancelling ctx ends the wait without a value.
	Wait(ctx context.Context, id string) <-chan ganger.Exit
	// Logs returns the container's last lines of output.
	Logs(ctx context.Context, id string, lines int) (string, error)
	// Remove force-removes a container by id or name; gone already is no error.
	Remove(ctx context.Context, id string) error
}
