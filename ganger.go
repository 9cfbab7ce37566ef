// Package ganger holds the domain types shared by Ganger's parts: what a
// container should be (Spec), how it ended (Exit), and the labels that mark
// every container Ganger creates.
package ganger

// Labels on every container Ganger creates. Other tools (and a restarted
// Ganger) rely on them to find what Ganger owns.
const (
	LabelManaged  = "ganger.managed" // always "true"
	LabelService  = "ganger.service" // the service's name
	LabelOwner    = "ganger.owner"   // the id of the Ganger node that created it
	LabelSession  = "ganger.session" // the session it serves, for per-connection containers
	LabelInstance = "ganger.instance"
)

// Spec is everything a backend needs to create one container.
type Spec struct {
	Name       string // container name; unique per daemon
	Image      string
	Port       int // TCP port the service listens on inside the container
	Cmd        []string
	Entrypoint []string
	Env        []string // KEY=value
	User       string
	Network    string
	Labels     map[string]string
	Limits     Limits
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
}

// Exit is how a container ended.
type Exit struct {
	Code int64 // the process's exit code; meaningful when Err is nil
	Err  error // the wait itself failed (daemon gone, container removed)
}

// Managed is one Ganger container seen on a daemon.
type Managed struct {
	ID     string
	Name   string
	Labels map[string]string
	State  string
}
