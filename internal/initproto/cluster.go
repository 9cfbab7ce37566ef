package initproto

// The cluster protocol between Ganger and the ganger-init of each member
// of a mode: cluster service. A member's ganger-init long-polls its view
// (GET <api>/v1/clusters/<cluster>/members/<ordinal>/view?after=<epoch>,
// with the bearer token scoped to its cluster), writes the files Ganger
// rendered for it, and reports (POST .../members/<ordinal>/report) what it did with which
// epoch. A poll says what the member holds:
// ?after=<epoch>&released=<0|1>. Ganger answers at once when its view of
// the member differs (another epoch, or the release given or taken back),
// else as soon as it does, else after a wait (the same view back).
//
// Ganger renders the member's files from the view (text/template, on
// Ganger's side: PID 1 stays small) and sends them in View.Files; the
// member writes them. The environment Ganger gives a member's container:
// GANGER_CLUSTER_API (its API's URL as the container reaches it),
// GANGER_CLUSTER, GANGER_ORDINAL and GANGER_CLUSTER_TOKEN (good for this
// member's incarnation only: its view and its reports).

// Member is one member of a cluster as every member sees it.
type Member struct {
	Ordinal     int            `json:"ordinal"`     // 0..size-1, stable across replacements
	Incarnation int64          `json:"incarnation"` // never reused: a replaced member gets a new one
	Name        string         `json:"name"`        // <cluster>-<ordinal>
	IP          string         `json:"ip"`          // its container's address on its network
	Host        string         `json:"host"`        // where its published ports are reachable
	Ports       map[string]int `json:"ports"`       // container port → published port (peers on other daemons)
	Ready       bool           `json:"ready"`       // its processes are up and it reported configured
	Leader      bool           `json:"leader"`      // the lowest-ordinal ready member
}

// Peers is a dependency's members.
type Peers struct {
	Epoch int64    `json:"epoch"`
	Peers []Member `json:"peers"`
	Ready int      `json:"ready"` // how many are ready
}

// View is what a member's ganger-init gets: its cluster now.
type View struct {
	Cluster string `json:"cluster"`
	// Epoch counts the cluster's changes (a burst within the damper is
	// one): the fencing token members can check.
	Epoch    int64    `json:"epoch"`
	Self     Member   `json:"self"`
	Peers    []Member `json:"peers"` // every member, itself included, by ordinal
	Leader   *Member  `json:"leader,omitempty"`
	MinReady int      `json:"min_ready"`
	// Deps are the clusters this one depends on, by name, with the
	// min_ready each must reach before this member configures.
	Deps        map[string]Peers `json:"deps,omitempty"`
	DepMinReady map[string]int   `json:"dep_min_ready,omitempty"`
	// Release: this member may apply Epoch now (a sequential rollout
	// releases members one at a time); false: keep the last epoch applied.
	Release bool `json:"release"`
	// Files are the member's files rendered from this view (absolute
	// path → content), written before the processes start and at each
	// released epoch; empty unless Release.
	Files map[string]string `json:"files,omitempty"`
}

// Report is what a member's ganger-init tells Ganger after applying (or
// failing to apply) an epoch.
type Report struct {
	Epoch     int64     `json:"epoch"`
	State     string    `json:"state"` // waiting (for min_ready or deps), configured, failed
	Reason    string    `json:"reason,omitempty"`
	Processes []Process `json:"processes,omitempty"`
}
