package config

import (
	"maps"
	"slices"
)

// ServiceChanges names the keys whose values differ between two
// configurations of a service, in the order the keys are documented.
func ServiceChanges(a, b Service) []string {
	var c changes
	add := c.add
	add("listen", a.Listen == b.Listen)
	add("image", a.Image == b.Image)
	add("pull", a.Pull == b.Pull)
	add("port", a.Port == b.Port)
	add("cmd", slices.Equal(a.Cmd, b.Cmd))
	add("entrypoint", slices.Equal(a.Entrypoint, b.Entrypoint))
	add("init", a.Init == b.Init && a.initSpec.Binary == b.initSpec.Binary && a.initSpec.Digest == b.initSpec.Digest)
	add("init_config", a.InitConfig.text == b.InitConfig.text)
	add("env", maps.Equal(a.Env, b.Env))
	add("user", a.User == b.User)
	add("network", a.Network == b.Network)
	add("mode", a.Mode == b.Mode)
	add("pool", a.Pool == b.Pool)
	add("reuse", a.Reuse == b.Reuse)
	add("shared", a.Shared == b.Shared)
	add("placement", a.Placement == b.Placement)
	add("max_containers", a.MaxContainers == b.MaxContainers)
	add("queue", a.Queue == b.Queue)
	add("per_ip", a.PerIP == b.PerIP)
	add("per_ip_rate", a.PerIPRate == b.PerIPRate)
	add("proxy_protocol", a.ProxyProtocol == b.ProxyProtocol)
	add("trusted_proxies", slices.Equal(a.TrustedProxies, b.TrustedProxies))
	add("ready", a.Ready == b.Ready)
	add("timeouts", a.Timeouts == b.Timeouts)
	add("limits", limitsEqual(a.Limits, b.Limits))
	return c
}

// changes collects the keys whose values differ.
type changes []string

func (c *changes) add(key string, same bool) {
	if !same {
		*c = append(*c, key)
	}
}

func limitsEqual(a, b Limits) bool {
	return a.Memory == b.Memory && a.CPUs == b.CPUs && a.Pids == b.Pids && a.ReadOnly == b.ReadOnly &&
		maps.Equal(a.Tmpfs, b.Tmpfs) && slices.Equal(a.CapAdd, b.CapAdd) && a.NoNewPrivileges == b.NoNewPrivileges
}

// RestartChanges names the top-level keys that differ between two
// configurations and that a reload does not apply (everything but
// services and log).
func RestartChanges(a, b *Config) []string {
	var c changes
	add := c.add
	add("node", a.Node == b.Node)
	add("reconcile", a.Reconcile == b.Reconcile)
	add("api", apiEqual(a.API, b.API))
	add("limits", a.Limits == b.Limits)
	add("health", a.Health == b.Health)
	add("registries", slices.Equal(a.Registries, b.Registries))
	add("daemons", slices.EqualFunc(a.Daemons, b.Daemons, daemonEqual))
	return c
}

func daemonEqual(a, b Daemon) bool {
	same := a.Name == b.Name && a.Host == b.Host && a.Advertise == b.Advertise && a.PublishIP == b.PublishIP &&
		a.Dial == b.Dial && a.MaxContainers == b.MaxContainers && a.MaxStarts == b.MaxStarts
	switch {
	case a.TLS == nil || b.TLS == nil:
		return same && a.TLS == b.TLS
	default:
		return same && *a.TLS == *b.TLS
	}
}
