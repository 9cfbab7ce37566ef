// Package fleet is the one home of every container and daemon of a Ganger
// node. It places, creates, starts, readies, watches and removes
// containers; it keeps the registry of what this node owns (by typed
// reference); it keeps each daemon's health and drain state, one event
// stream per daemon, and the sweeps that remove what nothing owns. Daemons
// can be added and removed while it runs. Sessions, pools and shared
// containers are its consumers: none of them talks to a daemon.
package fleet

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"github.com/ganger-dev/ganger"
)

// Backend is what the fleet needs from one Docker daemon. Every method
// takes ctx; an implementation must be safe for concurrent use.
type Backend interface {
	// Ping checks that the engine answers and returns its API version.
	Ping(ctx context.Context) (apiVersion string, err error)
	// Engine returns what the engine says of itself, its id above all.
	Engine(ctx context.Context) (ganger.Engine, error)
	// EnsureImage makes ref present on the daemon under the pull policy.
	EnsureImage(ctx context.Context, ref string, pull ganger.PullPolicy) error
	// EnsureInit makes ganger-init (in) available to the daemon's
	// containers, once: afterwards a container whose Spec.Init is in runs
	// under it, with nothing copied when it starts. It does nothing if
	// that is done already. owner labels what it creates for a while, so
	// that a sweep of that node's containers removes what an interrupted
	// call leaves.
	EnsureInit(ctx context.Context, in ganger.Init, owner string) error
	// Create creates a container from spec, not yet started, and returns
	// its id. It applies the spec's labels and limits; a spec with Init
	// runs under ganger-init, made available by EnsureInit before.
	Create(ctx context.Context, spec ganger.Spec) (id string, err error)
	// Start starts a created container and returns a TCP address that
	// reaches port.
	Start(ctx context.Context, id string, port int) (addr string, err error)
	// DialAddrs returns, for a started container, a TCP address that
	// reaches each of ports (its Spec.Port and Spec.Dial ports).
	DialAddrs(ctx context.Context, id string, ports []int) (map[int]string, error)
	// Events streams the die and destroy events of owner's containers
	// until ctx ends or the stream fails; the event channel is then
	// closed, and the error channel holds why (nothing if ctx ended).
	Events(ctx context.Context, owner string) (<-chan ganger.Event, <-chan error)
	// EnsureNetwork creates the network unless it exists.
	EnsureNetwork(ctx context.Context, n ganger.NetworkSpec) error
	// RemoveNetwork removes a network; one that is gone is no error, one
	// still in use is ganger.ErrNetworkInUse.
	RemoveNetwork(ctx context.Context, name string) error
	// Stop stops a running container gracefully: SIGTERM, then SIGKILL
	// after grace. One that is not running, or gone, is no error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove force-removes a container by id or name; one that is gone
	// already is no error.
	Remove(ctx context.Context, idOrName string) error
	// ListManaged lists Ganger's containers, running or not; with owner
	// set, only that node's.
	ListManaged(ctx context.Context, owner string) ([]ganger.Managed, error)
	// Published returns, for a started container, the host port the
	// daemon bound each published container port to (container port →
	// host port): every port of its Spec.Publish, and its Spec.Port too
	// when the daemon dials published ports. It fails if the container
	// is not running or a port is not bound yet.
	Published(ctx context.Context, id string) (map[int]int, error)
	// NetworkGateway returns the IPv4 gateway of the named network.
	NetworkGateway(ctx context.Context, name string) (string, error)
	// NetInfo returns a started container's address on its network and
	// that network's gateway.
	NetInfo(ctx context.Context, id string) (ganger.NetInfo, error)
	// Advertise is the address (a host, no port) where the ports this
	// daemon publishes are reachable.
	Advertise() string
	// Logs returns the container's last lines of output.
	Logs(ctx context.Context, id string, lines int) (string, error)
	// Close releases the backend's connections.
	Close() error
}

// OutOfFiles reports whether err is this process running out of file
// descriptors (EMFILE, ENFILE): Ganger's own limit, never a sign that a
// daemon or a container is gone.
func OutOfFiles(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return true
	}
	// Some clients flatten the error to text on the way up.
	return strings.Contains(err.Error(), "too many open files")
}
