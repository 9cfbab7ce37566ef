package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
)

const redisInstance = `services:
  - name: redis
    mode: instance
    image: ganger-redis:latest
    ports: [6379]
    cmd: ["--requirepass", "{{.Secrets.password}}"]
    instance:
      public: true
      ttl: 30m
      secrets: {password: 24}
      connect: "redis://:{{.Secrets.password}}@{{.Host}}:{{.Port 6379}}"
`

func TestInstanceDefaults(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(redisInstance))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	in := s.Instance
	if s.Placement != ganger.Binpack || s.Port != 6379 || !cfg.Instances() {
		t.Fatalf("placement %s, port %d; want binpack by default for instances, and the first port", s.Placement, s.Port)
	}
	if in.TTL.D() != 30*time.Minute || in.MaxTTL.D() != DefaultInstanceMaxTTL || in.Extend.By.D() != DefaultExtendBy ||
		in.Extend.Max != DefaultExtendMax || in.PerOwner != DefaultPerOwner || in.OnExisting != "create" || in.Access != "direct" {
		t.Fatalf("instance %+v", in)
	}
	if cfg.Store.Driver != "sqlite" || cfg.Store.StorePath("/etc/ganger") != "/etc/ganger/ganger.db" {
		t.Fatalf("store %+v", cfg.Store)
	}
	spread, err := Parse("t.yaml", []byte(strings.Replace(redisInstance, "mode: instance", "mode: instance\n    placement: spread", 1)))
	if err != nil || spread.Services[0].Placement != ganger.Spread {
		t.Fatalf("placement set by hand: %v", err)
	}
	port, err := Parse("t.yaml", []byte(strings.Replace(redisInstance, "ports: [6379]", "port: 6379", 1)))
	if err != nil || len(port.Services[0].Ports) != 1 || port.Services[0].Ports[0] != 6379 {
		t.Fatalf("port alone: %v", err)
	}
}

// Every mistake in an instance service is named with its key and line.
func TestInstanceErrors(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"mode: instance", "mode: instance\n    listen: 127.0.0.1:6379", "t.yaml:4: services[0].listen: does not apply to mode: instance"},
		{"ports: [6379]", "ports: []", "services[0].ports: missing"},
		{"ports: [6379]", "ports: [6379, 6379]", "services[0].ports[1]: port 6379 is listed twice"},
		{"secrets: {password: 24}", "secrets: {Pass: 24}", "services[0].instance.secrets.Pass: want a name"},
		{"secrets: {password: 24}", "secrets: {password: 4}", "services[0].instance.secrets.password: want a length of 8 to 256"},
		{"{{.Port 6379}}", "{{.Port 6380}}", "services[0].instance.connect: "},
		{`"{{.Secrets.password}}"]`, `"{{.Secrets.pasword}}"]`, "services[0].cmd[1]: "},
		{"ttl: 30m", "ttl: 30m\n      max_ttl: 10m", "services[0].instance.max_ttl: must be at least ttl"},
		{"ttl: 30m", "ttl: 30m\n      access: proxy", "t.yaml:8: services[0].instance.host: missing: the address clients connect to (listen_ip 0.0.0.0"},
		{"ttl: 30m", "ttl: 30m\n      access: proxy\n      listen_ip: somewhere", "services[0].instance.listen_ip: want an IP address"},
		{"ttl: 30m", "ttl: 30m\n      access: proxy\n      host: h\n      port_range: 20-10", "t.yaml:12: services[0].instance.port_range: want low-high"},
		{"ttl: 30m", "ttl: 30m\n      access: proxy\n      host: h\n      port_range: 20000-20000\n      per_owner: 2", "services[0].instance.port_range: 20000-20000 holds 1 ports: too few"},
		{"ttl: 30m", "ttl: 30m\n      access: proxy\n      host: h\n      idle_ttl: -1s", "t.yaml:12: services[0].instance.idle_ttl: negative duration"},
		{"ttl: 30m", "ttl: 30m\n      idle_ttl: 5m", "services[0].instance.idle_ttl: needs access: proxy"},
		{"ttl: 30m", "ttl: 30m\n      port_range: 20000-20100", "services[0].instance.port_range: needs access: proxy"},
		{"ttl: 30m", "ttl: 30m\n      on_existing: conflict", "services[0].instance.on_existing: want create or return"},
		{"mode: instance", "mode: instance\n    pool: {min: 1}", "services[0].mode: pool and reuse apply to per-connection mode"},
	} {
		yml := strings.Replace(redisInstance, tc.from, tc.to, 1)
		_, err := Parse("t.yaml", []byte(yml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v; want %q", tc.from, tc.to, err, tc.want)
		}
	}
	_, err := Parse("t.yaml", []byte(strings.Replace(minimal, "port: 7777", "port: 7777\n    ports: [1]", 1)))
	if err == nil || !strings.Contains(err.Error(), "services[0].ports: applies to mode: instance") {
		t.Errorf("ports on a per-connection service: %v", err)
	}
}

// access: proxy takes its defaults, and its range may not overlap
// another's or hold a port something else of Ganger's listens on.
func TestInstanceProxy(t *testing.T) {
	yml := strings.Replace(redisInstance, "ttl: 30m", "ttl: 30m\n      access: proxy\n      host: ganger.example\n      idle_ttl: 5m", 1)
	cfg, err := Parse("t.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Services[0].Instance
	if lo, hi, ok := in.ProxyRange(); !ok || lo != 20000 || hi != 20999 || in.ListenIP != "0.0.0.0" || in.ProxyHost() != "ganger.example" || in.IdleTTL.D() != 5*time.Minute {
		t.Fatalf("proxy defaults: %+v", in)
	}
	own := strings.Replace(redisInstance, "ttl: 30m", "ttl: 30m\n      access: proxy\n      listen_ip: 127.0.0.1", 1)
	if cfg, err := Parse("t.yaml", []byte(own)); err != nil || cfg.Services[0].Instance.ProxyHost() != "127.0.0.1" {
		t.Fatalf("host from listen_ip: %v", err)
	}
	second := strings.Replace(strings.Replace(yml, "name: redis", "name: redis2", 1), "services:\n", "", 1)
	_, err = Parse("t.yaml", []byte(yml+second))
	if err == nil || !strings.Contains(err.Error(), "services[1].instance.port_range: 20000-20999 overlaps services[0].instance.port_range") {
		t.Errorf("overlapping ranges: %v", err)
	}
	clash := yml + "api:\n  listen: 127.0.0.1:20500\n"
	_, err = Parse("t.yaml", []byte(clash))
	if err == nil || !strings.Contains(err.Error(), "services[0].instance.port_range: 20000-20999 holds the port of api.listen (127.0.0.1:20500)") {
		t.Errorf("range holding the API's port: %v", err)
	}
}

func TestStoreAndClients(t *testing.T) {
	for _, tc := range []struct{ top, want string }{
		{"store: {driver: postgres}\n", "store.dsn: missing"},
		{"store: {driver: mysql}\n", "store.driver: want sqlite or postgres"},
		{"store: {driver: postgres, dsn: x, dsn_file: y}\n", "store.dsn_file: give dsn or dsn_file, not both"},
		{"api: {clients: [{name: a, token: short}]}\n", "api.clients[0].token: 5 characters"},
		{"api: {clients: [{name: a}]}\n", "api.clients[0].token: missing"},
		{"api: {token: same-token-for-both!, clients: [{name: a, token: same-token-for-both!}]}\n", "api.clients[0].token: is the same token as api.token"},
		{"api: {clients: [{name: a, token: aaaaaaaaaaaaaaaaaa}, {name: a, token: bbbbbbbbbbbbbbbbbb}]}\n", "api.clients[1].name: client \"a\" is listed twice"},
		{"api: {trusted_proxies: [nope]}\n", "api.trusted_proxies[0]: want a CIDR"},
	} {
		_, err := Parse("t.yaml", []byte(tc.top+redisInstance))
		var errs Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.top, err, tc.want)
		}
	}
	// Without an instance service the store is not checked: nothing opens it.
	if _, err := Parse("t.yaml", []byte("store: {driver: postgres}\n"+minimal)); err != nil {
		t.Fatalf("store without instances: %v", err)
	}
}
