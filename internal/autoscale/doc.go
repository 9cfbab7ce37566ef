// Package autoscale decides when Ganger wants one more Docker host or one
// fewer, and runs the operator's hooks that add or remove it. It knows the
// fleet only through the Fleet interface (a snapshot, drain, busy) and
// leadership through Leader, so it imports nothing else of Ganger.
//
// # Decisions
//
// A Scaler decides every Config.Interval, and only while Leader.Leading
// reports true and it is not paused. Each pass takes one action at most:
// up (one up hook), down (drain a host, or run the down hook of the host
// drained at the previous pass, or put it back), wait (an action is wanted
// and a limit holds it back) or none. Every decision carries its reason.
//
// The figures come from the hosts that are up and not draining ("usable"):
//
//	load  = (used + queued) / capacity   (+Inf with demand and no capacity)
//	empty = usable hosts without a Ganger container (Used 0, IdleSince set)
//
// and pending is the number of up requests outstanding: their hook is
// running, or it exited 0 and no host has registered since.
//
// Scale up when one of these holds, checked in this order:
//
//	usable + pending < min_hosts
//	load ≥ scale_up_at
//	empty + pending < standby_hosts
//
// and all of these allow it, else wait:
//
//	hosts + pending < max_hosts   (hosts: every host known, up or not)
//	pending < max_pending
//	cooldown passed since the last up request
//
// A request ends when a host registers after it was made (Registered
// settles the oldest such request), when its hook fails (non-zero exit,
// timeout, or it could not start: the request is not pending), or
// provision_timeout after it was made (expired, counted as failed). So
// failing hooks never hold more than max_pending requests, and the
// cooldown allows one attempt per cooldown whatever their outcome.
//
// Scale down only when no up is wanted, no other host is on its way out,
// and all of these hold:
//
//	empty > standby_hosts
//	usable - 1 ≥ max(min_hosts, standby_hosts)
//	the host is up, not draining, Autoscaled (static daemons never go),
//	  empty, idle ≥ scale_down_idle and registered ≥ min_age ago
//	load without the host < scale_up_at
//	cooldown passed since the last down hook
//
// Among the hosts that qualify the oldest (by Registered, then name) goes.
// Going is three steps, never one, because a snapshot is already old when
// it is read (the getaredis bug: a host deleted on a heartbeat seconds old):
//
//  1. Drain the host, then ask Busy. Busy: put back (undrain) at once.
//  2. At the next pass, put it back if it is gone from the snapshot, has
//     a container, is busy, or an up is now wanted (it is the cheapest
//     host to add); else start the down hook.
//  3. Just before the hook runs, ask Leading and Busy once more; the
//     hook runs only if this node leads and the host is still idle. A
//     hook that fails puts the host back; one that exits 0 leaves it
//     drained until it leaves the snapshot (or for provision_timeout,
//     after which it is left drained for an operator, and logged).
//
// Fleet.Drain is the barrier that makes step 3 sound: once it returns the
// fleet places nothing new on the host, and anything placed before shows
// in Busy.
//
// Pausing, or losing leadership, puts back a host drained at step 1;
// a hook already running is left to finish. Pending requests live in the
// leader's memory only: a new leader starts with none.
//
// # Hooks
//
// A hook is a command run with a timeout in a process group of its own;
// at the timeout, or when Run's context ends, the whole group is killed.
// It reads one JSON object on stdin:
//
//	{"action": "up"|"down", "request_id": "...", "host": "h3" (down only),
//	 "reason": "...", "snapshot": {"at", "hosts", "used", "capacity", "queued"}}
//
// and has GANGER_ACTION, GANGER_REQUEST_ID and, for down, GANGER_HOST in
// its environment. Exit 0 means accepted. Its output is kept, the tail of
// it, for Status. A hook that starts a long-lived process (a dockerd, an
// agent) should detach it from its process group and its output, or the
// timeout kills it and its output holds the hook open.
package autoscale
