package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Config is the autoscale block of Ganger's configuration. Start from
// Defaults: New takes the values as they are, zeros included.
type Config struct {
	// Interval is the time between two decisions. Default 5s.
	Interval time.Duration
	// MinHosts is the fewest usable hosts: fewer is a reason to scale up,
	// and no host goes that would leave fewer. Default 1.
	MinHosts int
	// MaxHosts bounds known hosts plus pending requests. Default 10.
	MaxHosts int
	// StandbyHosts is the number of empty hosts kept ready. Default 1.
	StandbyHosts int
	// ScaleUpAt is the load, in (0, 1], at which one more host is asked
	// for. Default 0.7.
	ScaleUpAt float64
	// ScaleDownIdle is how long a host has had no Ganger container before
	// it may go. Default 10m.
	ScaleDownIdle time.Duration
	// MinAge: no host registered less than this long ago goes. Default 15m.
	MinAge time.Duration
	// Cooldown is the least time between two up requests, and between two
	// down hooks. Default 2m.
	Cooldown time.Duration
	// MaxPending bounds the up requests outstanding. Default 2.
	MaxPending int
	// ProvisionTimeout is how long an up request waits for a host to
	// register, and how long a removed host may linger. Default 10m.
	ProvisionTimeout time.Duration
	// Up adds a host; Down removes the host it is told. No default command.
	Up, Down Hook
}

// Hook is a command run to add or remove a host.
type Hook struct {
	// Command is the program and its arguments, run without a shell.
	Command []string
	// Timeout ends the hook (its whole process group). Default 5m.
	Timeout time.Duration
}

// Defaults returns the configuration the issue specifies, hooks without
// their commands.
func Defaults() Config {
	return Config{
		Interval:         5 * time.Second,
		MinHosts:         1,
		MaxHosts:         10,
		StandbyHosts:     1,
		ScaleUpAt:        0.7,
		ScaleDownIdle:    10 * time.Minute,
		MinAge:           15 * time.Minute,
		Cooldown:         2 * time.Minute,
		MaxPending:       2,
		ProvisionTimeout: 10 * time.Minute,
		Up:               Hook{Timeout: 5 * time.Minute},
		Down:             Hook{Timeout: 5 * time.Minute},
	}
}

// Problem is one thing wrong with a Config: Key is the configuration key
// ("autoscale.scale_up_at") a loader places at its line.
type Problem struct {
	Key string
	Msg string
}

// Error reads "key: message".
func (p Problem) Error() string { return p.Key + ": " + p.Msg }

// minInterval keeps the decision loop from spinning.
const minInterval = time.Second

// Validate returns every problem of c, none if it is fit for New.
func (c Config) Validate() []Problem {
	var ps []Problem
	fail := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: "autoscale." + key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Interval < minInterval {
		fail("interval", "want at least %s, got %s", minInterval, c.Interval)
	}
	c.validateCounts(fail)
	if math.IsNaN(c.ScaleUpAt) || c.ScaleUpAt <= 0 || c.ScaleUpAt > 1 {
		fail("scale_up_at", "want a fraction in (0, 1], got %v", c.ScaleUpAt)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"scale_down_idle", c.ScaleDownIdle}, {"min_age", c.MinAge}, {"cooldown", c.Cooldown}} {
		if d.v < 0 {
			fail(d.key, "want a duration ≥ 0, got %s", d.v)
		}
	}
	if c.ProvisionTimeout <= 0 {
		fail("provision_timeout", "want a duration > 0, got %s", c.ProvisionTimeout)
	} else if c.ProvisionTimeout < c.Up.Timeout {
		fail("provision_timeout", "%s is shorter than up.timeout %s: a request would expire while its hook runs",
			c.ProvisionTimeout, c.Up.Timeout)
	}
	c.Up.validate("up", fail)
	c.Down.validate("down", fail)
	return ps
}

func (c Config) validateCounts(fail func(key, format string, args ...any)) {
	if c.MinHosts < 0 {
		fail("min_hosts", "want a number ≥ 0, got %d", c.MinHosts)
	}
	if c.MaxHosts < 1 {
		fail("max_hosts", "want a number ≥ 1, got %d", c.MaxHosts)
	} else if c.MinHosts > c.MaxHosts {
		fail("min_hosts", "%d is more than max_hosts %d", c.MinHosts, c.MaxHosts)
	}
	if c.StandbyHosts < 0 {
		fail("standby_hosts", "want a number ≥ 0, got %d", c.StandbyHosts)
	} else if c.MaxHosts >= 1 && c.StandbyHosts > c.MaxHosts {
		fail("standby_hosts", "%d is more than max_hosts %d: never met", c.StandbyHosts, c.MaxHosts)
	}
	if c.MaxPending < 1 {
		fail("max_pending", "want a number ≥ 1, got %d", c.MaxPending)
	}
}

func (h Hook) validate(key string, fail func(key, format string, args ...any)) {
	if len(h.Command) == 0 || h.Command[0] == "" {
		fail(key+".command", "want a command: the program and its arguments")
	}
	if h.Timeout <= 0 {
		fail(key+".timeout", "want a duration > 0, got %s", h.Timeout)
	}
}
