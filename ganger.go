// Package ganger holds the domain types shared by Ganger's parts: what a
// container should be (Spec), how it ended (Exit), how a session ended
// (Outcome), the typed settings the runtime works on, and the labels that
// mark every container Ganger creates.
package ganger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Labels on every container Ganger creates. Other tools (and a restarted
// Ganger) rely on them to find what Ganger owns.
const (
	LabelManaged  = "ganger.managed" // always "true"
	LabelService  = "ganger.service" // the service's name
	LabelOwner    = "ganger.owner"   // the id of the Ganger node that created it
	LabelSession  = "ganger.session" // the session it serves, for per-connection containers
	LabelInstance = "ganger.instance"
	// A cluster member's cluster (its service), ordinal and incarnation.
	LabelCluster     = "ganger.cluster"
	LabelOrdinal     = "ganger.ordinal"
	LabelIncarnation = "ganger.incarnation"
	// LabelInit marks what holds a ganger-init binary on a daemon (its
	// volume, and the short-lived container that fills it): the binary's
	// digest (see Init).
	LabelInit = "ganger.init"
)

// Mode is how a service gives containers to sessions.
type Mode string

// Modes.
const (
	PerConnection Mode = "per-connection" // a container per session (pooled, reused)
	Shared        Mode = "shared"         // sessions share containers
	Instance      Mode = "instance"       // a long-lived container per request, with a lifetime
	ClusterMode   Mode = "cluster"        // N members that find each other (see internal/cluster)
)

// Placement chooses among the daemons with room.
type Placement string

// Placements.
const (
	Spread  Placement = "spread"  // least utilised, rotating among equals
	Binpack Placement = "binpack" // fullest that still has room
)

// PullPolicy says when an image is pulled onto a daemon.
type PullPolicy string

// Pull policies.
const (
	PullMissing PullPolicy = "missing" // pull when absent
	PullAlways  PullPolicy = "always"  // pull whenever the image is prepared
	PullNever   PullPolicy = "never"   // it must be there already
)

// DialMode says how Ganger reaches a container's port.
type DialMode string

// Dial modes.
const (
	DialAuto      DialMode = "auto"      // container for unix://, published for tcp:// (resolved by config)
	DialPublished DialMode = "published" // the daemon's advertise address and the published port
	DialContainer DialMode = "container" // the container's own IP
)

// IsolatedNetwork is the name of the network Ganger makes for one node's
// containers on every daemon that runs them: a bridge with inter-container
// traffic off, so a container reaches nothing of other sessions; with
// egress false, an internal one that has no route out of the host either.
// Each node has its own: nodes sharing a daemon never remove a network
// another is using.
func IsolatedNetwork(node string, egress bool) string {
	if egress {
		return "ganger-" + node
	}
	return "ganger-" + node + "-noegress"
}

// IsolatedNetworks are the specs of a node's two isolated networks.
func IsolatedNetworks(node string) []NetworkSpec {
	l := map[string]string{LabelManaged: "true", LabelOwner: node}
	return []NetworkSpec{
		{Name: IsolatedNetwork(node, true), Labels: l},
		{Name: IsolatedNetwork(node, false), Internal: true, Labels: l},
	}
}

// NetworkSpec is a network to create on a daemon.
type NetworkSpec struct {
	Name     string
	Internal bool   // no route out of the host
	ICC      bool   // containers on it may reach each other
	Bridge   string // the host's interface name, if set; unique per host (daemons sharing a host would share it)
	Labels   map[string]string
}

// ErrNetworkInUse means a network still has containers on it.
var ErrNetworkInUse = errors.New("network in use")

// Spec is everything a backend needs to create one container.
type Spec struct {
	Name    string // container name; unique per daemon
	Image   string
	Port    int   // TCP port the service listens on inside the container
	Publish []int // container ports published on the daemon's publish IP (each on a host port the daemon picks), whatever the dial mode; for clients that connect straight to the container
	// Dial lists container ports Ganger dials besides Port (an instance
	// behind Ganger's proxy): like Port, each is published only when
	// Ganger dials published ports.
	Dial []int
	// HostPorts asks for the host port of some Publish ports (container
	// port → host port): an instance restarted keeps its ports. Absent or
	// 0: the daemon picks.
	HostPorts  map[int]int
	Cmd        []string
	Entrypoint []string
	Env        []string // KEY=value
	User       string
	Network    string // a Docker network name: NetIsolated, "bridge", ...
	Labels     map[string]string
	Limits     Limits
	// Init, if set, runs the container's command under ganger-init. The
	// zero Init runs the command as the container's PID 1.
	Init Init
	// Volumes are named volumes to mount (created by the daemon, with
	// their labels, if they do not exist): a cluster member's data.
	Volumes []Volume
}

// Volume is a named volume mounted into a container.
type Volume struct {
	Name   string
	Target string            // absolute path in the container
	Labels map[string]string // set when the daemon creates it
}

// NetInfo is where a started container is on its network.
type NetInfo struct {
	IP      string // its address
	Gateway string // its network's gateway: the daemon's host as the container reaches it
}

// Init is how a container runs under ganger-init, Ganger's small static
// PID 1 (it reaps zombies and forwards signals; with Config it runs
// several processes). Ganger puts the binary on every daemon it uses, in
// a volume that each such container mounts read-only: the image needs
// nothing of its own.
type Init struct {
	// Binary is the ganger-init executable on Ganger's host; "" means no
	// init.
	Binary string
	// Digest is the binary's InitDigest: its volume and image on a daemon
	// are named after it, so a new binary never mixes with an old one.
	Digest string
	// Config is ganger-init's YAML of processes, run instead of the
	// container's command; "" runs the command under ganger-init.
	Config string
}

// Enabled reports whether the container runs under ganger-init.
func (i Init) Enabled() bool { return i.Binary != "" }

// Volume is the volume that holds the binary on a daemon.
func (i Init) Volume() string { return "ganger-init-" + i.Digest }

// Image is the image FROM scratch, holding the binary at
// /ganger/ganger-init, that the volume is filled from.
func (i Init) Image() string { return "ganger-init:" + i.Digest }

// InitDigest is a ganger-init binary's digest as Init.Digest holds it: the
// first 12 hex digits of its SHA-256.
func InitDigest(binary []byte) string {
	sum := sha256.Sum256(binary)
	return hex.EncodeToString(sum[:6])
}

// Limits are a container's resource and security limits. Every capability
// is dropped except those in CapAdd; containers are never privileged.
type Limits struct {
	Memory          int64 // bytes; swap is not allowed beyond it
	NanoCPUs        int64
	Pids            int64
	ReadOnly        bool
	Tmpfs           map[string]string
	CapAdd          []string
	NoNewPrivileges bool
	NoFile          int64 // open files (soft and hard); 0: the daemon's default
	LogMaxSize      int64 // bytes of json-file log before rotation; 0: no cap
	LogMaxFiles     int   // rotated log files kept
	Disk            int64 // bytes the writable layer may hold, where the daemon can cap it; 0: no cap
}

// Exit is how a container ended.
type Exit struct {
	Code int64 // the process's exit code; -1 if unknown (removed, daemon lost it)
	Err  error // why the exit is known only in part, if so
}

// Managed is one Ganger container seen on a daemon.
type Managed struct {
	ID     string
	Name   string
	Labels map[string]string
	State  string // created, running, exited, dead, ...
}

// Running reports whether the container is (or may soon be) running: not
// exited, dead or being removed.
func (m Managed) Running() bool {
	switch m.State {
	case "exited", "dead", "removing":
		return false
	}
	return true
}

// Event is a change to a container that a daemon reports.
type Event struct {
	ID     string
	Name   string
	Action string // "die" or "destroy"
	Exit   Exit   // for "die"
}

// Engine is what a daemon says of itself.
type Engine struct {
	ID         string // the engine's own id: two URLs to one daemon share it
	APIVersion string // negotiated
	Name       string // the host's name, as the engine reports it
	RootDir    string // its data root
}

// Identity tells engines apart: two URLs to one daemon give the same.
// The id alone does not do: an older engine derives it from a key file
// that hosts cloned from one image, and daemons sharing a host, may share;
// its host name and data root then still differ.
func (e Engine) Identity() string {
	if e.ID == "" {
		return ""
	}
	return e.ID + "|" + e.Name + "|" + e.RootDir
}

// Outcome is how a session ended. It is set where the failure happens:
// the error that ends a session carries it (see Fail).
type Outcome string

// Outcomes. The first four are the proxy's: the session reached its
// container and ended normally or by a timeout.
const (
	Closed       Outcome = "closed"  // both sides closed
	Reset        Outcome = "reset"   // a side reset or failed
	Idle         Outcome = "idle"    // no byte either way for timeouts.idle
	MaxTime      Outcome = "timeout" // timeouts.session reached
	Canceled     Outcome = "canceled"
	ClientGone   Outcome = "client_gone" // the client left while waiting or while its container started
	RefusedProxy Outcome = "refused_proxy"
	RefusedPerIP Outcome = "refused_per_ip"
	RefusedRate  Outcome = "refused_rate"
	QueueFull    Outcome = "queue_full"
	QueueTimeout Outcome = "queue_timeout"
	CreateFailed Outcome = "create_failed"
	StartFailed  Outcome = "start_failed"
	Exited       Outcome = "exited" // the container exited before it was ready
	Died         Outcome = "container_died"
	NotReady     Outcome = "not_ready"
	Silent       Outcome = "silent"   // the client sent nothing within timeouts.first_byte
	NoFiles      Outcome = "no_files" // Ganger is out of file descriptors
	Killed       Outcome = "killed"   // an operator ended it
	Shutdown     Outcome = "shutdown" // Ganger stopped before the session was proxying
)

// Success reports whether the session ended the way sessions should.
func (o Outcome) Success() bool {
	switch o {
	case Closed, Idle, MaxTime:
		return true
	}
	return false
}

// Reusable reports whether a container that served a session ending so is
// fit to serve again: exactly the successful endings.
func (o Outcome) Reusable() bool { return o.Success() }

// Refused reports whether the session was turned away at admission or for
// want of room, before any container was tried.
func (o Outcome) Refused() bool {
	switch o {
	case RefusedProxy, RefusedPerIP, RefusedRate, QueueFull, QueueTimeout:
		return true
	}
	return false
}

// Quiet reports whether an ending, though not a success, is the client's
// doing and not worth a warning.
func (o Outcome) Quiet() bool { return o == ClientGone || o == Reset || o == Silent || o.Success() }

// Failure is an error that says how the session it ends ended.
type Failure struct {
	Outcome Outcome
	Err     error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail tags err with the outcome of the session it ends. A nil err is nil.
func Fail(o Outcome, err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Outcome: o, Err: err}
}

// OutcomeOf returns the outcome err carries (the outermost tagging), or
// otherwise if it carries none.
func OutcomeOf(err error, otherwise Outcome) Outcome {
	var f *Failure
	if errors.As(err, &f) {
		return f.Outcome
	}
	return otherwise
}
