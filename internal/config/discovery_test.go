package config

import (
	"strings"
	"testing"
	"time"
)

const withDiscovery = `discovery:
  etcd:
    endpoints: [http://127.0.0.1:2379]
services:
  - name: echo
    listen: 127.0.0.1:7000
    image: ganger-echo:latest
    port: 7777
`

// With discovery and no daemons listed there is no implicit local daemon;
// the defaults are filled in.
func TestDiscoveryDefaults(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(withDiscovery))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Discovery.Etcd
	if !cfg.Discovers() || len(cfg.Daemons) != 0 || e.Prefix != "/ganger/" || e.LostGrace.D() != 15*time.Second || e.TTL.D() != 10*time.Second ||
		cfg.Discovery.Dial != "auto" || cfg.Discovery.MaxStarts != 8 {
		t.Fatalf("defaults: daemons %v, %+v, %+v", cfg.Daemons, e, cfg.Discovery)
	}
	plain, _ := Parse("t.yaml", []byte(strings.Replace(withDiscovery, "discovery:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n", "", 1)))
	if plain.Discovers() || len(plain.Daemons) != 1 {
		t.Fatalf("without discovery: %v", plain.Daemons)
	}
}

func TestDiscoveryErrors(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"[http://127.0.0.1:2379]", "[]", "discovery.etcd.endpoints: missing"},
		{"[http://127.0.0.1:2379]", "[127.0.0.1:2379]", "t.yaml:3: discovery.etcd.endpoints[0]: want http://host:port"},
		{"endpoints: [http://127.0.0.1:2379]", "endpoints: [http://127.0.0.1:2379]\n    prefix: ganger", "discovery.etcd.prefix: want a key prefix that starts and ends with '/'"},
		{"endpoints: [http://127.0.0.1:2379]", "endpoints: [http://127.0.0.1:2379]\n    ttl: 1s", "discovery.etcd.ttl: want at least 2s"},
		{"endpoints: [http://127.0.0.1:2379]", "endpoints: [http://127.0.0.1:2379]\n    username: u", "discovery.etcd.password_file: missing"},
		{"endpoints: [http://127.0.0.1:2379]", "endpoints: [http://127.0.0.1:2379]\n    tls: {ca: /nope/ca.pem, cert: /nope/c.pem}", "discovery.etcd.tls.key: missing"},
		{"endpoints: [http://127.0.0.1:2379]", "endpoints: [http://127.0.0.1:2379]\n  dial: sideways", "discovery.dial: want auto, published or container"},
		{"endpoints: [http://127.0.0.1:2379]", "endpoints: [http://127.0.0.1:2379]\n  docker_tls: {ca: /nope/ca.pem, cert: /nope/c.pem, key: /nope/k.pem}", "discovery.docker_tls.ca: cannot read /nope/ca.pem"},
	} {
		_, err := Parse("t.yaml", []byte(strings.Replace(withDiscovery, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v; want %q", tc.from, tc.to, err, tc.want)
		}
	}
}

// autoscale: its defaults, its keyed errors, and it needs discovery.
func TestAutoscaleConfig(t *testing.T) {
	yml := withDiscovery + "autoscale:\n  up: {command: [/bin/up]}\n  down: {command: [/bin/down]}\n  standby_hosts: 2\n"
	cfg, err := Parse("t.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Autoscale.Engine()
	if e.Interval != 5*time.Second || e.MaxHosts != 10 || e.StandbyHosts != 2 || e.ScaleUpAt != 0.7 || e.Up.Timeout != 5*time.Minute || e.Up.Command[0] != "/bin/up" {
		t.Fatalf("engine config %+v", e)
	}
	for _, tc := range []struct{ yml, want string }{
		{strings.Replace(yml, "standby_hosts: 2", "scale_up_at: 1.5", 1), "t.yaml:12: autoscale.scale_up_at: want a fraction in (0, 1]"},
		{strings.Replace(yml, "  down: {command: [/bin/down]}\n", "", 1), "autoscale.down.command: want a command"},
		{strings.Replace(yml, "discovery:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n", "", 1), "autoscale: needs discovery.etcd"},
	} {
		if _, err := Parse("t.yaml", []byte(tc.yml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v; want %q", err, tc.want)
		}
	}
}
