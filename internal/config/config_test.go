package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const minimal = `node: n1
services:
  - name: echo
    listen: 127.0.0.1:5454
    image: ganger-echo:latest
    port: 7777
`

func TestMinimalGetsDefaults(t *testing.T) {
	cfg, err := Parse("m.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	want := DefaultService()
	want.Name, want.Listen, want.Image, want.Port = "echo", "127.0.0.1:5454", "ganger-echo:latest", 7777
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	if len(cfg.Daemons) != 1 || cfg.Daemons[0].Name != "local" || cfg.Daemons[0].MaxContainers != DefaultMaxContainers {
		t.Fatalf("got daemons %+v; want one from the environment", cfg.Daemons)
	}
	if cfg.Log.Format != "text" || cfg.Log.Level != "info" {
		t.Fatalf("got log %+v", cfg.Log)
	}
}

// The example file writes out every default: loading it must give what
// the defaults give (bar the values it sets on purpose).
func TestExampleWritesEveryDefault(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	cfg, err := Load("../../examples/ganger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	want := DefaultService()
	want.Name, want.Listen, want.Image, want.Port, want.Cmd = s.Name, s.Listen, s.Image, s.Port, s.Cmd
	want.Entrypoint, want.Env, want.Limits.Tmpfs, want.Limits.CapAdd = []string{}, map[string]string{}, map[string]string{}, []string{}
	want.TrustedProxies = []string{}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("example service differs from the defaults:\ngot  %+v\nwant %+v", s, want)
	}
	def := defaultConfig()
	if cfg.Health != def.Health || cfg.Limits != def.Limits || cfg.Reconcile != def.Reconcile || cfg.API != def.API {
		t.Fatalf("example top level differs from the defaults: health %+v limits %+v reconcile %v", cfg.Health, cfg.Limits, cfg.Reconcile)
	}
	d := DaemonFromEnv()
	d.applyDefaults()
	if !reflect.DeepEqual(cfg.Daemons[0], d) {
		t.Fatalf("example daemon differs from the defaults:\ngot  %+v\nwant %+v", cfg.Daemons[0], d)
	}
}

func TestErrors(t *testing.T) {
	svc := func(extra string) string {
		return "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: img\n    port: 7777\n" + extra
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", svc("    imagee: x\n"), `t.yaml:6: services[0].imagee: unknown key "imagee" (did you mean "image"?)`},
		{"unknown top-level key", "servics: []\n", `t.yaml:1: servics: unknown key "servics" (did you mean "services"?)`},
		{"wrong type", svc("    cmd: 12\n"), `t.yaml:6: services[0].cmd: want a list, got number "12"`},
		{"wrong scalar type", "services:\n  - name: echo\n    listen: 127.0.0.1:1\n    image: i\n    port: seven\n", `t.yaml:5: services[0].port: want a whole number, got string "seven"`},
		{"bad duration", svc("    ready: {timeout: 5 minutes}\n"), `t.yaml:6: services[0].ready.timeout: invalid duration "5 minutes"`},
		{"negative duration", svc("    timeouts:\n      idle: -1s\n"), `t.yaml:7: services[0].timeouts.idle: negative duration "-1s"`},
		{"bad size", svc("    limits:\n      memory: lots\n"), `t.yaml:7: services[0].limits.memory: invalid size "lots"`},
		{"size too small", svc("    limits:\n      memory: 1k\n"), `t.yaml:7: services[0].limits.memory: want at least 6MiB`},
		{"duplicate service name", svc("  - name: echo\n    listen: 127.0.0.1:5455\n    image: img\n    port: 1\n"), `t.yaml:6: services[1].name: service "echo" is already defined at services[0]`},
		{"duplicate listen", svc("  - name: two\n    listen: localhost:5454\n    image: img\n    port: 1\n"), `t.yaml:7: services[1].listen: address localhost:5454 is already used by services[0]`},
		{"missing image", "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    port: 7777\n", `t.yaml:2: services[0].image: missing`},
		{"missing port", "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: i\n", `t.yaml:2: services[0].port: missing`},
		{"missing listen", "services:\n  - name: echo\n    image: i\n    port: 1\n", `t.yaml:2: services[0].listen: missing`},
		{"port out of range", strings.Replace(svc(""), "7777", "70000", 1), `t.yaml:5: services[0].port: want 1-65535, got 70000`},
		{"bad listen", strings.Replace(svc(""), "127.0.0.1:5454", "nowhere", 1), `t.yaml:3: services[0].listen: want host:port`},
		{"duplicate key", svc("    port: 8\n"), `t.yaml:6: services[0].port: key written twice (first at line 5)`},
		{"no services", "node: x\n", `services: at least one service is needed`},
		{"empty file", "", `t.yaml: the file is empty`},
		{"bad yaml", "services: [\n", `t.yaml:1: invalid YAML: did not find expected node content`},
		{"host network", svc("    network: host\n"), `t.yaml:6: services[0].network: network "host" cannot work`},
		{"unknown capability", svc("    limits:\n      cap_add: [NET_BIND_SERVICE, FLY]\n"), `t.yaml:7: services[0].limits.cap_add[1]: unknown capability "FLY"`},
		{"bad daemon host", "daemons:\n  - {name: a, host: http://x}\n" + svc(""), `t.yaml:2: daemons[0].host: want unix:///path or tcp://host:port`},
		{"duplicate daemon", "daemons:\n  - {name: a, host: unix:///x}\n  - {name: a, host: unix:///y}\n" + svc(""), `t.yaml:3: daemons[1].name: daemon "a" is already defined`},
		{"tls file missing", "daemons:\n  - name: a\n    host: tcp://h:2376\n    tls: {ca: /nope/ca.pem, cert: /nope/c.pem, key: /nope/k.pem}\n" + svc(""), `t.yaml:4: daemons[0].tls.ca: cannot read /nope/ca.pem`},
		{"no starts", "daemons:\n  - {name: a, host: unix:///x, max_starts: 0}\n" + svc(""), `t.yaml:2: daemons[0].max_starts: want at least 1, got 0`},
		{"negative connections", "limits: {max_connections: -1}\n" + svc(""), `t.yaml:1: limits.max_connections: want 0 (derived from the open-file limit) or more`},
		{"bad placement", svc("    placement: random\n"), `t.yaml:6: services[0].placement: want spread or binpack, got "random"`},
		{"bad pull", svc("    pull: sometimes\n"), `t.yaml:6: services[0].pull: want missing, always or never`},
		{"proxy protocol without trusted", svc("    proxy_protocol: true\n"), `services[0].trusted_proxies: missing: proxy_protocol needs`},
		{"bad trusted proxy", svc("    proxy_protocol: true\n    trusted_proxies: [10.0.0.0/8, bogus]\n"), `t.yaml:7: services[0].trusted_proxies[1]: want a CIDR`},
		{"negative queue", svc("    queue: {max: -1}\n"), `t.yaml:6: services[0].queue.max: want 0 (no queue) or more`},
		{"registry without password", "registries:\n  - {host: r:5000, username: u}\n" + svc(""), `t.yaml:2: registries[0].password: missing`},
		{"bad log format", "log: {format: xml}\n" + svc(""), `t.yaml:1: log.format: want text or json, got "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v; want config.Errors", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got:\n%v\nwant a line containing:\n%s", err, tt.want)
			}
		})
	}
}

// Every problem in a file is reported at once, not just the first.
func TestAllErrorsAtOnce(t *testing.T) {
	_, err := Parse("t.yaml", []byte("services:\n  - name: Bad Name\n    listen: x\n    port: abc\n    bogus: 1\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) < 4 {
		t.Fatalf("got %v; want at least 4 errors (name, listen, port, bogus, image)", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "1k": 1024, "64m": 64 << 20, "256MiB": 256 << 20, "1GB": 1e9, "1.5g": 3 << 29} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-1m", "12 parsecs", "1x"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): want an error", in)
		}
	}
}

// Every key Ganger knows is written out in the example, so that it stays
// the complete reference users read.
func TestExampleWritesEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../examples/ganger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	pos, _ := index(&doc, reflect.TypeFor[Config]())
	var want func(t reflect.Type, path string)
	want = func(typ reflect.Type, path string) {
		for name, ft := range yamlFields(typ) {
			p := join(path, name)
			if p == "daemons[0].tls" {
				continue // valid for tcp:// daemons only; the example's is unix://, and shows it in a comment
			}
			if _, ok := pos.byPath[p]; !ok {
				t.Errorf("examples/ganger.yaml lacks %s", p)
				continue
			}
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct && !isScalarType(ft):
				want(ft, p)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				if _, ok := pos.byPath[p+"[0]"]; ok { // an empty list shows its entries in a comment
					want(ft.Elem(), p+"[0]")
				}
			}
		}
	}
	want(reflect.TypeFor[Config](), "")
}

func TestServiceChangesNamesEachKey(t *testing.T) {
	a := DefaultService()
	a.Name, a.Image, a.Cmd, a.Env = "echo", "img:1", []string{"-x"}, map[string]string{"A": "1"}
	b := a
	b.Cmd = []string{"-y"}
	b.Env = map[string]string{"A": "2"}
	b.Limits.CapAdd = []string{"NET_ADMIN"}
	b.Queue.Timeout = Duration(time.Second)
	got := strings.Join(ServiceChanges(a, b), ",")
	if want := "cmd,env,queue,limits"; got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
	if c := ServiceChanges(a, a); len(c) != 0 {
		t.Fatalf("a service against itself: %v", c)
	}
}
