package initd

import (
	"strings"
	"testing"
	"time"
)

const sample = `shutdown_grace: 10s
exit_code_from: app
processes:
  migrate: {cmd: ["/app/migrate"], oneshot: true}
  redis:   {cmd: ["redis-server", "--save", ""], restart: always,
            ready: {tcp: "127.0.0.1:6379"}}
  app:     {cmd: ["/app/server"], main: true, required: true, restart: on-failure,
            backoff: {initial: 200ms, max: 10s}, stop: {signal: TERM, timeout: 8s},
            after: [{process: migrate, condition: completed}, {process: redis, condition: ready}],
            health: {http: "http://127.0.0.1:8080/healthz", interval: 5s, failures: 3}}
`

// The example parses, with its defaults filled in.
func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig("init.yaml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	app, mig, redis := cfg.Processes["app"], cfg.Processes["migrate"], cfg.Processes["redis"]
	switch {
	case cfg.ShutdownGrace != 10*time.Second || cfg.Control.Socket != DefaultSocket:
		t.Fatalf("top level %+v", cfg)
	case mig.Restart != "never" || app.Restart != "on-failure" || redis.Restart != "always":
		t.Fatalf("restart policies %s %s %s", mig.Restart, app.Restart, redis.Restart)
	case app.Stop.Timeout != 8*time.Second || redis.Stop.Timeout != DefaultStopTimeout || redis.Stop.Signal != "TERM":
		t.Fatalf("stop %+v %+v", app.Stop, redis.Stop)
	case redis.Ready.Interval != defaultReadyEvery || app.Health.Failures != 3 || app.Health.Timeout != defaultCheckTimeout:
		t.Fatalf("checks %+v %+v", redis.Ready, app.Health)
	case app.After[1].Condition != "ready":
		t.Fatalf("after %+v", app.After)
	}
}

// Every mistake is named with its key and line.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"processes:\n  a: {cmd: [x], restrat: always}\n", "init.yaml: line 2: field restrat not found"},
		{"processes:\n  a: {cmd: [x]}\nshutdown_grace: soon\n", "line 3"},
		{"processes: {}\n", "init.yaml:1: processes: missing: at least one process"},
		{"processes:\n  a:\n    cmd: []\n", "init.yaml:3: processes.a.cmd: missing"},
		{"processes:\n  a:\n    cmd: [x]\n    restart: sometimes\n", "init.yaml:4: processes.a.restart: want always, on-failure or never"},
		{"processes:\n  a:\n    cmd: [x]\n    oneshot: true\n    restart: always\n", "init.yaml:5: processes.a.restart: a oneshot cannot restart always"},
		{"processes:\n  a:\n    cmd: [x]\n    after: [{process: b}]\n", "init.yaml:4: processes.a.after.0: no process \"b\""},
		{"processes:\n  a:\n    cmd: [x]\n    after: [{process: a}]\n", "processes.a.after.0: a process cannot wait for itself"},
		{"processes:\n  a: {cmd: [x]}\n  b:\n    cmd: [x]\n    after: [{process: a, condition: completed}]\n", "init.yaml:5: processes.b.after.0: condition completed needs a to be a oneshot"},
		{"processes:\n  a: {cmd: [x]}\n  b:\n    cmd: [x]\n    after: [{process: a, condition: alive}]\n", "processes.b.after.0.condition: want started, ready, healthy or completed"},
		{"processes:\n  a:\n    cmd: [x]\n    stop: {signal: TREM}\n", "init.yaml:4: processes.a.stop.signal: unknown signal \"TREM\""},
		{"processes:\n  a:\n    cmd: [x]\n    ready: {tcp: nowhere}\n", "processes.a.ready.tcp: want host:port"},
		{"processes:\n  a:\n    cmd: [x]\n    ready: {tcp: \"127.0.0.1:1\", http: \"http://x/\"}\n", "processes.a.ready: want exactly one of tcp, http or exec"},
		{"processes:\n  a:\n    cmd: [x]\n    health: {http: \"ftp://x/\"}\n", "processes.a.health.http: want an http:// URL"},
		{"exit_code_from: b\nprocesses:\n  a: {cmd: [x]}\n", "init.yaml:1: exit_code_from: no process \"b\""},
		{"control: {listen: \"127.0.0.1:7070\"}\nprocesses:\n  a: {cmd: [x]}\n", "control.listen: a TCP control address needs control.token"},
		{"processes:\n  a: {cmd: [x], after: [{process: c}]}\n  b: {cmd: [x], after: [{process: a}]}\n  c: {cmd: [x], after: [{process: b}]}\n",
			"init.yaml:3: processes.b.after: dependency cycle: a → c → b → a"},
	} {
		_, err := ParseConfig("init.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.yaml, err, tc.want)
		}
	}
}
