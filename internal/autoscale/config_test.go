package autoscale

import (
	"math"
	"slices"
	"testing"
	"time"
)

func validConfig() Config {
	c := Defaults()
	c.Up.Command = []string{"/usr/local/bin/ganger-add-host"}
	c.Down.Command = []string{"/usr/local/bin/ganger-remove-host"}
	return c
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := Defaults()
	if c.Interval != 5*time.Second || c.MinHosts != 1 || c.MaxHosts != 10 || c.StandbyHosts != 1 || c.ScaleUpAt != 0.7 ||
		c.ScaleDownIdle != 10*time.Minute || c.MinAge != 15*time.Minute || c.Cooldown != 2*time.Minute ||
		c.MaxPending != 2 || c.ProvisionTimeout != 10*time.Minute || c.Up.Timeout != 5*time.Minute || c.Down.Timeout != 5*time.Minute {
		t.Fatalf("defaults %+v", c)
	}
	if ps := validConfig().Validate(); len(ps) != 0 {
		t.Fatalf("defaults with commands: %v", ps)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Config)
		keys []string
	}{
		{"interval", func(c *Config) { c.Interval = 0 }, []string{"autoscale.interval"}},
		{"fraction zero", func(c *Config) { c.ScaleUpAt = 0 }, []string{"autoscale.scale_up_at"}},
		{"fraction over one", func(c *Config) { c.ScaleUpAt = 1.5 }, []string{"autoscale.scale_up_at"}},
		{"fraction NaN", func(c *Config) { c.ScaleUpAt = math.NaN() }, []string{"autoscale.scale_up_at"}},
		{"fraction one", func(c *Config) { c.ScaleUpAt = 1 }, nil},
		{"min over max", func(c *Config) { c.MinHosts = 11 }, []string{"autoscale.min_hosts"}},
		{"negative min", func(c *Config) { c.MinHosts = -1 }, []string{"autoscale.min_hosts"}},
		{"no max", func(c *Config) { c.MaxHosts = 0 }, []string{"autoscale.max_hosts"}},
		{"negative standby", func(c *Config) { c.StandbyHosts = -1 }, []string{"autoscale.standby_hosts"}},
		{"standby over max", func(c *Config) { c.StandbyHosts = 11 }, []string{"autoscale.standby_hosts"}},
		{"max_pending", func(c *Config) { c.MaxPending = 0 }, []string{"autoscale.max_pending"}},
		{"negative durations", func(c *Config) { c.ScaleDownIdle, c.MinAge, c.Cooldown = -1, -1, -1 },
			[]string{"autoscale.scale_down_idle", "autoscale.min_age", "autoscale.cooldown"}},
		{"zero durations", func(c *Config) { c.ScaleDownIdle, c.MinAge, c.Cooldown = 0, 0, 0 }, nil},
		{"provision under up timeout", func(c *Config) { c.ProvisionTimeout = time.Minute }, []string{"autoscale.provision_timeout"}},
		{"no provision timeout", func(c *Config) { c.ProvisionTimeout = 0 }, []string{"autoscale.provision_timeout"}},
		{"no commands", func(c *Config) { c.Up.Command, c.Down.Command = nil, []string{""} },
			[]string{"autoscale.up.command", "autoscale.down.command"}},
		{"no timeouts", func(c *Config) { c.Up.Timeout, c.Down.Timeout = 0, -time.Second },
			[]string{"autoscale.up.timeout", "autoscale.down.timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.edit(&c)
			var keys []string
			for _, p := range c.Validate() {
				keys = append(keys, p.Key)
				if p.Msg == "" {
					t.Fatalf("%s: no message", p.Key)
				}
			}
			if !slices.Equal(keys, tc.keys) {
				t.Fatalf("problems at %q; want %q", keys, tc.keys)
			}
		})
	}
}
