package autoscale

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// usage is a snapshot summed the way the rules read it.
type usage struct {
	known    int // every host, up or not, draining or not
	usable   int // up and not draining
	empty    int // usable and empty
	used     int // over usable hosts
	capacity int // over usable hosts
	queued   int
}

func measure(snap Snapshot) usage {
	u := usage{known: len(snap.Hosts), queued: snap.Queued}
	for _, h := range snap.Hosts {
		if !h.usable() {
			continue
		}
		u.usable++
		u.used += h.Used
		u.capacity += h.Capacity
		if h.empty() {
			u.empty++
		}
	}
	return u
}

func (u usage) load() float64 { return ratio(u.used+u.queued, u.capacity) }

func ratio(demand, capacity int) float64 {
	if capacity <= 0 {
		if demand > 0 {
			return math.Inf(1)
		}
		return 0
	}
	return float64(demand) / float64(capacity)
}

func fmtLoad(l float64) string {
	if math.IsInf(l, 1) {
		return "∞"
	}
	return fmt.Sprintf("%.2f", l)
}

// upNeed says why one more host is wanted, "" if none is.
func (c Config) upNeed(u usage, pending int) string {
	switch {
	case u.usable+pending < c.MinHosts:
		return fmt.Sprintf("%d hosts + %d pending < min_hosts %d", u.usable, pending, c.MinHosts)
	case u.load() >= c.ScaleUpAt:
		return fmt.Sprintf("load %s ≥ %.2f", fmtLoad(u.load()), c.ScaleUpAt)
	case u.empty+pending < c.StandbyHosts:
		return fmt.Sprintf("%d empty hosts + %d pending < standby_hosts %d", u.empty, pending, c.StandbyHosts)
	}
	return ""
}

// upBlock says which limit holds a wanted up back, "" if none does.
// cooldown is what is left of it.
func (c Config) upBlock(u usage, pending int, cooldown time.Duration) string {
	switch {
	case u.known+pending >= c.MaxHosts && pending == 0:
		return fmt.Sprintf("%d hosts at max_hosts %d", u.known, c.MaxHosts)
	case u.known+pending >= c.MaxHosts:
		return fmt.Sprintf("%d hosts + %d pending at max_hosts %d", u.known, pending, c.MaxHosts)
	case pending >= c.MaxPending:
		return fmt.Sprintf("%d pending at max_pending %d", pending, c.MaxPending)
	case cooldown > 0:
		return "cooldown: " + fmtDur(cooldown) + " left"
	}
	return ""
}

// pick is the host chosen to go, or why none is.
type pick struct {
	host   Host
	ok     bool
	reason string
}

// downPick applies the scale-down rules but the cooldown, which its
// caller checks, to a fleet that wants no up.
func (c Config) downPick(u usage, snap Snapshot, now time.Time) pick {
	base := fmt.Sprintf("load %s < %.2f", fmtLoad(u.load()), c.ScaleUpAt)
	if u.empty <= c.StandbyHosts {
		return pick{reason: fmt.Sprintf("%s; %d empty hosts, standby_hosts %d", base, u.empty, c.StandbyHosts)}
	}
	if floor := max(c.MinHosts, c.StandbyHosts); u.usable-1 < floor {
		return pick{reason: fmt.Sprintf("%s; %d hosts, at least %d kept", base, u.usable, floor)}
	}
	cands, why := c.removable(snap, now)
	for _, h := range cands {
		after := ratio(u.used+u.queued, u.capacity-h.Capacity)
		if after >= c.ScaleUpAt {
			why = append(why, fmt.Sprintf("%s: load %s without it", h.Name, fmtLoad(after)))
			continue
		}
		return pick{host: h, ok: true, reason: fmt.Sprintf("%s idle %s, age %s; load %s → %s without it; %d empty hosts > standby_hosts %d",
			h.Name, fmtDur(now.Sub(h.IdleSince)), fmtDur(now.Sub(h.Registered)),
			fmtLoad(u.load()), fmtLoad(after), u.empty, c.StandbyHosts)}
	}
	return pick{reason: fmt.Sprintf("%s; %d empty hosts > standby_hosts %d, none may go: %s",
		base, u.empty, c.StandbyHosts, brief(why))}
}

// removable returns the empty usable hosts that may go, oldest first,
// and why each of the others may not.
func (c Config) removable(snap Snapshot, now time.Time) ([]Host, []string) {
	var ok []Host
	var why []string
	for _, h := range snap.Hosts {
		if !h.usable() || !h.empty() {
			continue
		}
		switch idle, age := now.Sub(h.IdleSince), now.Sub(h.Registered); {
		case !h.Autoscaled:
			why = append(why, h.Name+" static")
		case idle < c.ScaleDownIdle:
			why = append(why, fmt.Sprintf("%s idle %s < %s", h.Name, fmtDur(idle), fmtDur(c.ScaleDownIdle)))
		case age < c.MinAge:
			why = append(why, fmt.Sprintf("%s age %s < %s", h.Name, fmtDur(age), fmtDur(c.MinAge)))
		default:
			ok = append(ok, h)
		}
	}
	slices.SortFunc(ok, func(a, b Host) int {
		return cmp.Or(a.Registered.Compare(b.Registered), cmp.Compare(a.Name, b.Name))
	})
	return ok, why
}

// brief joins the first few reasons: a status line, not a report.
func brief(why []string) string {
	const most = 3
	if len(why) > most {
		return strings.Join(why[:most], ", ") + fmt.Sprintf(" and %d more", len(why)-most)
	}
	return strings.Join(why, ", ")
}

func fmtDur(d time.Duration) string { return d.Round(time.Second).String() }

// left is what remains of a cooldown started at since (zero: never).
func left(since, now time.Time, cooldown time.Duration) time.Duration {
	if since.IsZero() {
		return 0
	}
	return max(0, since.Add(cooldown).Sub(now))
}
