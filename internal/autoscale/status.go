package autoscale

import "time"

// Action is what one decision did.
type Action string

// The actions of a decision.
const (
	ActionNone Action = "none" // nothing wanted
	ActionUp   Action = "up"   // an up hook started
	ActionDown Action = "down" // a host drained, its down hook started, or it was put back
	ActionWait Action = "wait" // an action wanted, a limit holds it back
)

// Decision is one pass of the Scaler and why it did what it did.
type Decision struct {
	At        time.Time `json:"at"`
	Action    Action    `json:"action"`
	Host      string    `json:"host,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Reason    string    `json:"reason"`
}

// Status is the Scaler's state for GET /v1/autoscale.
type Status struct {
	Paused  bool `json:"paused"`
	Leading bool `json:"leading"`
	// Last is the latest decision; LastMove the latest that was up or down.
	Last     Decision  `json:"last_decision"`
	LastMove *Decision `json:"last_move,omitempty"`
	// Pending are the up requests outstanding, oldest first.
	Pending []Pending `json:"pending"`
	// Removing is the host on its way out, if one is.
	Removing *Removal `json:"removing,omitempty"`
	// Hooks are the latest hook runs, oldest first.
	Hooks  []HookRun `json:"hooks"`
	Totals Totals    `json:"totals"`
}

// Pending is an up request outstanding.
type Pending struct {
	RequestID  string    `json:"request_id"`
	Requested  time.Time `json:"requested"`
	AgeSeconds float64   `json:"age_seconds"`
	// Accepted: the hook exited 0; false while it runs.
	Accepted bool `json:"accepted"`
}

// Removal is the host on its way out and the step it is at.
type Removal struct {
	Host      string    `json:"host"`
	RequestID string    `json:"request_id"`
	Phase     Phase     `json:"phase"`
	Since     time.Time `json:"since"`
}

// Phase is a step of a host's removal.
type Phase string

// The steps of a removal, in order.
const (
	PhaseDraining Phase = "draining" // drained, to be checked at the next pass
	PhaseHook     Phase = "hook"     // its down hook runs
	PhaseRemoving Phase = "removing" // the hook accepted; waiting for the host to leave
)

// HookRun is one run of a hook.
type HookRun struct {
	Action          Action    `json:"action"`
	RequestID       string    `json:"request_id"`
	Host            string    `json:"host,omitempty"`
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	// ExitCode is the hook's exit status; -1 if it did not start or was
	// killed.
	ExitCode int  `json:"exit_code"`
	Accepted bool `json:"accepted"`
	// Error says why a hook that was not accepted failed.
	Error  string `json:"error,omitempty"`
	Stdout string `json:"stdout_tail,omitempty"`
	Stderr string `json:"stderr_tail,omitempty"`
}

// Totals count what the Scaler did since it started.
type Totals struct {
	UpRequested int `json:"up_requested"`
	UpSettled   int `json:"up_settled"`  // a host registered
	UpFailed    int `json:"up_failed"`   // the hook failed
	UpExpired   int `json:"up_expired"`  // provision_timeout passed
	Drained     int `json:"drained"`     // hosts drained to go
	PutBack     int `json:"put_back"`    // drained hosts undrained
	DownHooks   int `json:"down_hooks"`  // down hooks run
	Removed     int `json:"removed"`     // hosts gone after their down hook
	DownFailed  int `json:"down_failed"` // down hooks that failed
}
