// Package discovery finds Docker hosts and Ganger nodes through etcd: each
// `ganger agent` registers its host under <prefix>hosts/<name> with a
// lease, each `ganger serve` registers itself under <prefix>nodes/<node>,
// and a node watches the hosts. etcd is the engine for this job: no
// home-made registry.
package discovery

import "time"

// Host is what an agent registers for its Docker host: the value of
// <prefix>hosts/<name>, JSON.
type Host struct {
	Name string `json:"name"`
	// ID is the agent's persistent id (kept in its state directory): a
	// second agent with the same name and another id is refused.
	ID string `json:"id"`
	// Docker is the daemon's address in DOCKER_HOST syntax: unix:///path
	// or tcp://host:port (a front-end's own client certificates are used
	// for tcp daemons behind TLS: discovery.docker_tls in its config).
	Docker string `json:"docker"`
	// Advertise is where the daemon's published ports are reachable.
	Advertise     string            `json:"advertise"`
	MaxContainers int               `json:"max_containers"`
	Labels        map[string]string `json:"labels,omitempty"`
	// Draining: the agent is stopping; no new container goes there.
	Draining     bool      `json:"draining"`
	RegisteredAt time.Time `json:"registered_at"`
}

// Node is what a `ganger serve` registers: the value of
// <prefix>nodes/<node>, JSON.
type Node struct {
	Name  string    `json:"name"`
	ID    string    `json:"id"` // random per process: a second node with this name is refused
	API   string    `json:"api,omitempty"`
	Start time.Time `json:"started_at"`
}
