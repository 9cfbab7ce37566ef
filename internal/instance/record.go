package instance

import (
	"context"
	"errors"
	"time"
)

// State of an instance.
type State string

const (
	Starting State = "starting"
	Running  State = "running"
	Expired  State = "expired"
	Deleted  State = "deleted"
	Lost     State = "lost"
	Failed   State = "failed"
)

// Live reports whether an instance in this state holds (or is about to
// hold) a container: starting or running.
func (s State) Live() bool { return s == Starting || s == Running }

// Record is one instance as the store keeps it.
//
// What a store gives back (Get, List, Live, Update's result) is normalised
// the same way by every implementation:
//   - times are truncated to the microsecond and are in UTC (a zero time
//     stays zero);
//   - Ports and Secrets with no entry (nil or empty) come back nil, others
//     come back equal;
//   - an empty TokenHash comes back nil.
type Record struct {
	ID        string // unique, chosen by the caller (random hex)
	Service   string
	Owner     string // quota key: a client address or an API client's name
	TokenHash []byte // SHA-256 of the owner token (the token itself is never stored)
	State     State
	Node      string            // the Ganger node that made it
	Daemon    string            // where its container runs
	Container string            // container id, "" until created
	Host      string            // where clients connect
	Ports     map[int]int       // container port -> port clients connect to
	Secrets   map[string]string // generated secrets, shown to the owner

	CreatedAt, ExpiresAt, MaxExpiresAt time.Time
	// ReadyAt and EndedAt are zero until they happen. EndedAt is when the
	// instance stopped serving (its container seen dead); the final State
	// is written only once the container is gone.
	ReadyAt, EndedAt time.Time

	Extensions        int
	BytesIn, BytesOut int64
	Reason            string // why it failed or was lost
	Version           int64  // bumped by every Update; set by the store (1 at Create)
}

// ErrNotFound means no record has the id asked for.
var ErrNotFound = errors.New("instance not found")

// ErrQuota means the owner already holds perOwner live instances of the service.
var ErrQuota = errors.New("owner at its quota")

// Filter selects records for List.
type Filter struct {
	Service, Owner string // "" = any
	LiveOnly       bool   // only starting and running
	Limit          int    // 0 = no limit; newest first (CreatedAt desc, then ID ascending)
}

// Store keeps instance records. Implementations must be safe for concurrent
// use, and Create's quota check must hold across processes sharing the same
// database.
type Store interface {
	// Create inserts r unless the owner already has perOwner or more live
	// records of r.Service (perOwner 0: no limit), atomically with respect to
	// every other Create on the same database: twenty concurrent Creates by
	// one owner with perOwner 2 insert exactly two. ErrQuota otherwise.
	// The stored Version is 1 whatever r.Version says; an ID already taken
	// is an error (neither ErrQuota nor ErrNotFound).
	Create(ctx context.Context, r Record, perOwner int) error
	// Get returns the record of id, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Update applies f to the current record inside a transaction (read, f,
	// write) and returns the record written; f's error aborts and is returned
	// unchanged. ErrNotFound if there is none. f must not change ID; the
	// store sets Version to the previous one plus one.
	Update(ctx context.Context, id string, f func(*Record) error) (Record, error)
	// List returns the records f selects, newest first.
	List(ctx context.Context, f Filter) ([]Record, error)
	// Live returns every live record of the node (node "" = all nodes): what
	// a restarted Ganger rebuilds its timers from.
	Live(ctx context.Context, node string) ([]Record, error)
	Close() error
}
