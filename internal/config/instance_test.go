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
		{"ttl: 30m", "ttl: 30m\n      access: proxy", "services[0].instance.access: proxy is not available yet"},
		{"ttl: 30m", "ttl: 30m\n      idle_ttl: 5m", "services[0].instance.idle_ttl: needs access: proxy"},
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
