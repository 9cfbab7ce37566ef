package config

import "github.com/ganger-dev/ganger/internal/autoscale"

// Autoscale asks for Docker hosts and gives them back through hooks, as
// load rises and falls (see internal/autoscale for the rules). Hosts it
// adds register through `ganger agent`: it needs discovery.
type Autoscale struct {
	Interval         Duration `yaml:"interval"`
	MinHosts         int      `yaml:"min_hosts"`
	MaxHosts         int      `yaml:"max_hosts"`
	StandbyHosts     int      `yaml:"standby_hosts"`
	ScaleUpAt        float64  `yaml:"scale_up_at"`
	ScaleDownIdle    Duration `yaml:"scale_down_idle"`
	MinAge           Duration `yaml:"min_age"`
	Cooldown         Duration `yaml:"cooldown"`
	MaxPending       int      `yaml:"max_pending"`
	ProvisionTimeout Duration `yaml:"provision_timeout"`
	Up               Hook     `yaml:"up"`
	Down             Hook     `yaml:"down"`
}

// Hook is a command autoscaling runs, with JSON on its stdin.
type Hook struct {
	Command []string `yaml:"command"`
	Timeout Duration `yaml:"timeout"`
}

func defaultAutoscale() *Autoscale {
	d := autoscale.Defaults()
	return &Autoscale{Interval: Duration(d.Interval), MinHosts: d.MinHosts, MaxHosts: d.MaxHosts, StandbyHosts: d.StandbyHosts,
		ScaleUpAt: d.ScaleUpAt, ScaleDownIdle: Duration(d.ScaleDownIdle), MinAge: Duration(d.MinAge), Cooldown: Duration(d.Cooldown),
		MaxPending: d.MaxPending, ProvisionTimeout: Duration(d.ProvisionTimeout),
		Up: Hook{Timeout: Duration(d.Up.Timeout)}, Down: Hook{Timeout: Duration(d.Down.Timeout)}}
}

// Engine is the autoscale package's view of the block.
func (a *Autoscale) Engine() autoscale.Config {
	return autoscale.Config{Interval: a.Interval.D(), MinHosts: a.MinHosts, MaxHosts: a.MaxHosts, StandbyHosts: a.StandbyHosts,
		ScaleUpAt: a.ScaleUpAt, ScaleDownIdle: a.ScaleDownIdle.D(), MinAge: a.MinAge.D(), Cooldown: a.Cooldown.D(),
		MaxPending: a.MaxPending, ProvisionTimeout: a.ProvisionTimeout.D(),
		Up:   autoscale.Hook{Command: a.Up.Command, Timeout: a.Up.Timeout.D()},
		Down: autoscale.Hook{Command: a.Down.Command, Timeout: a.Down.Timeout.D()}}
}

// UnmarshalYAML decodes the block over its defaults.
func (a *Autoscale) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Autoscale
	p := plain(*defaultAutoscale())
	if err := unmarshal(&p); err != nil {
		return err
	}
	*a = Autoscale(p)
	return nil
}

func (v *validator) autoscale(c *Config) {
	if c.Autoscale == nil {
		return
	}
	if !c.Discovers() {
		v.fail("autoscale", "needs discovery.etcd: the hosts it adds register through ganger agent")
	}
	for _, p := range c.Autoscale.Engine().Validate() {
		v.fail(p.Key, "%s", p.Msg)
	}
}
