package clusterd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Record is what survives a restart of Ganger of one cluster: enough to
// take its members back as they were (same ordinals, incarnations and
// epoch) and to check the tokens they hold.
type Record struct {
	Node    string // the Ganger node that runs it
	Name    string // the service's name
	Size    int    // the size wanted (a scale changes it)
	LastInc int64  // the highest incarnation ever given: never reused
	Epoch   int64  // the published epoch
	// Secret signs the members' tokens (hex). It never leaves Ganger.
	Secret    string
	Members   []MemberRecord
	UpdatedAt time.Time
}

// MemberRecord is one member as stored.
type MemberRecord struct {
	Ordinal     int            `json:"ordinal"`
	Incarnation int64          `json:"incarnation"`
	State       string         `json:"state"` // pending, running, leaving
	Daemon      string         `json:"daemon,omitempty"`
	Container   string         `json:"container,omitempty"`
	IP          string         `json:"ip,omitempty"`
	Host        string         `json:"host,omitempty"`
	Ports       map[string]int `json:"ports,omitempty"`
	Pin         string         `json:"pin,omitempty"`
	Ready       bool           `json:"ready,omitempty"`
	Healthy     bool           `json:"healthy,omitempty"`
	Acked       int64          `json:"acked,omitempty"`
	LeaveEpoch  int64          `json:"leave_epoch,omitempty"`
	Leader      bool           `json:"leader,omitempty"` // the published epoch's leader
}

// Store keeps cluster records, one per (node, name). Implementations must
// be safe for concurrent use.
type Store interface {
	// SaveCluster writes r whole, replacing the record of (r.Node,
	// r.Name) if there is one.
	SaveCluster(ctx context.Context, r Record) error
	// Clusters returns every record of node, by name.
	Clusters(ctx context.Context, node string) ([]Record, error)
	// DeleteCluster removes the record of (node, name); none is no error.
	DeleteCluster(ctx context.Context, node, name string) error
}

// EncodeMembers is ms as a JSON array, "[]" when empty: how the stores
// keep a record's members.
func EncodeMembers(ms []MemberRecord) (string, error) {
	if len(ms) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(ms)
	if err != nil {
		return "", fmt.Errorf("members: %w", err)
	}
	return string(b), nil
}

// DecodeMembers reads what EncodeMembers wrote: no members is nil, and so
// is a member's empty Ports.
func DecodeMembers(b []byte) ([]MemberRecord, error) {
	var ms []MemberRecord
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	for i := range ms {
		if len(ms[i].Ports) == 0 {
			ms[i].Ports = nil
		}
	}
	return ms, nil
}
