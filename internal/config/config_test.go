package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

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
	want.TrustedProxies, want.Ports, want.Instance.Secrets = []string{}, []int{}, map[string]int{}
	want.Cluster.DependsOn = []ClusterDep{}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("example service differs from the defaults:\ngot  %+v\nwant %+v", s, want)
	}
	def := defaultConfig()
	def.API.PublicRead = true // on purpose: the demo's status page opens without a token, on 127.0.0.1
	if cfg.Health != def.Health || cfg.Limits != def.Limits || cfg.Reconcile != def.Reconcile || !apiEqual(cfg.API, def.API) || cfg.Store != def.Store {
		t.Fatalf("example top level differs from the defaults: health %+v limits %+v reconcile %v api %+v", cfg.Health, cfg.Limits, cfg.Reconcile, cfg.API)
	}
	d := DaemonFromEnv()
	d.applyDefaults()
	if !reflect.DeepEqual(cfg.Daemons[0], d) {
		t.Fatalf("example daemon differs from the defaults:\ngot  %+v\nwant %+v", cfg.Daemons[0], d)
	}
}

// svc is a valid services list with extra keys for its one service.
func svc(extra string) string {
	return "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: img\n    port: 7777\n" + extra
}

// utf16LE is s in UTF-16, little-endian, with its byte-order mark.
func utf16LE(s string) string {
	b := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return string(b)
}

// secretDir holds files for the token_file and password_file rows, named
// by what they are.
func secretDir(t *testing.T) string {
	dir := t.TempDir()
	for name, body := range map[string]string{"empty": "", "blank": " \n", "big": strings.Repeat("x", 5000), "ok": "a-secret-token-value\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// errorCases are files that Parse must refuse, each with a line of the
// error it must give. $DIR stands for secretDir's directory. FuzzParse
// seeds its corpus with them.
var errorCases = []struct {
	name, yaml, want string
}{
	{"unknown key", svc("    imagee: x\n"), `t.yaml:6: services[0].imagee: unknown key "imagee" (did you mean "image"?)`},
	{"unknown top-level key", "servics: []\n", `t.yaml:1: servics: unknown key "servics" (did you mean "services"?)`},
	{"wrong type", svc("    cmd: 12\n"), `t.yaml:6: services[0].cmd: want a list, got number "12"`},
	{"wrong type, value with a newline", svc("    per_ip: \"7\\n7\"\n"), `t.yaml:6: services[0].per_ip: want a whole number, got string "7\n7"`},
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

	// What yaml.v3 would drop without a word.
	{"first key indented", "  node: x\nservices: []\n", `t.yaml:2: invalid YAML: indented less than the first key (line 1, column 3): start the top-level keys in column 1`},
	{"first key indented, list", "  node: x\n" + svc(""), `t.yaml:2: invalid YAML: indented less than the first key`},
	{"second document", svc("") + "---\nnode: y\n", `t.yaml:6: a second YAML document starts here`},
	{"empty second document", svc("") + "---\n", `t.yaml:6: a second YAML document starts here`},
	{"document after end marker", svc("") + "...\nnode: y\n", `t.yaml:7: invalid YAML: more after the end of the document: a config file holds one document`},
	{"null daemon", "daemons: [~]\n" + svc(""), `t.yaml:1: daemons[0]: empty entry`},
	{"empty daemon", "daemons:\n  -\n" + svc(""), `t.yaml:2: daemons[0]: empty entry`},
	{"null in a list of strings", svc("    cmd: [a, ~, b]\n"), `t.yaml:6: services[0].cmd[1]: empty entry, which would be dropped`},
	{"empty service", "services:\n  -\n  - {name: echo, listen: 127.0.0.1:5454, image: img, port: 7777}\n", `t.yaml:2: services[0]: empty entry`},

	// YAML errors that yaml.v3 gives without a line, or a line early.
	{"NUL byte", "node: x\n" + svc("    user: a\x00b\n"), `t.yaml:7: invalid YAML: a NUL byte is not allowed`},
	{"control character", svc("    user: a\x07b\n"), `t.yaml:6: invalid YAML: control character U+0007 is not allowed`},
	{"invalid UTF-8", "node: x\nlog: {level: \xff}\n", `t.yaml:2: invalid YAML: invalid UTF-8 (byte 0xff)`},
	{"NUL in UTF-16", utf16LE("node: x\nlog: {level: a\x00}\n" + svc("")), `t.yaml:2: invalid YAML: a NUL byte is not allowed`},
	{"unpaired surrogate", "\xff\xfea\x00\n\x00\x00\xd8", `t.yaml:2: invalid YAML: invalid UTF-16 (an unpaired surrogate)`},
	{"NUL after CRLF lines", "node: x\r\nlog: {}\r\n\x00", `t.yaml:3: invalid YAML: a NUL byte`},
	{"unknown anchor", svc("    cmd: *nope\n"), `t.yaml:6: invalid YAML: unknown anchor 'nope' referenced`},
	{"mapping value on line 1", "node: a: b\n" + svc(""), `t.yaml:1: invalid YAML: mapping values are not allowed in this context`},
	{"mapping value later", svc("    image: a: b\n"), `t.yaml:6: invalid YAML: mapping values are not allowed in this context`},
	{"bad indentation", "services:\n  - name: echo\n    port: 1\n   image: x\n", `t.yaml:4: invalid YAML: did not find expected '-' indicator`},
	{"two anchors", "node: &a &b x\n" + svc(""), `t.yaml:1: invalid YAML: did not find expected key`},
	{"duplicate anchor", "node: &x a\nlog: {level: &x info}\n" + svc(""), `t.yaml:2: anchor &x is already defined at line 1`},
	{"bad binary", svc("    user: !!binary '%%%'\n"), `t.yaml:6: services[0].user: invalid YAML: !!binary value contains invalid base64 data`},
	{"tag mismatch", "health: {failures: !!int x}\n" + svc(""), `t.yaml:1: health.failures: invalid YAML: cannot decode !!str`},

	// Values that cannot work or are dangerous.
	{"size too large", svc("    limits: {memory: 9999999999G}\n"), `t.yaml:6: services[0].limits.memory: size "9999999999G" is too large`},
	{"cpus nan", svc("    limits: {cpus: .nan}\n"), `t.yaml:6: services[0].limits.cpus: want more than 0 and at most 1024, got NaN`},
	{"cpus inf", svc("    limits: {cpus: .inf}\n"), `t.yaml:6: services[0].limits.cpus: want more than 0 and at most 1024, got +Inf`},
	{"cpus negative", svc("    limits: {cpus: -1}\n"), `t.yaml:6: services[0].limits.cpus: want more than 0`},
	{"rate nan", svc("    per_ip_rate: {rate: .nan}\n"), `t.yaml:6: services[0].per_ip_rate.rate: want a number of sessions per second`},
	{"api on a service's address", "api: {listen: 127.0.0.1:5454}\n" + svc(""), `t.yaml:1: api.listen: address 127.0.0.1:5454 clashes with services[0].listen (127.0.0.1:5454)`},
	{"api on localhost", "api: {listen: localhost:5454}\n" + svc(""), `t.yaml:1: api.listen: address localhost:5454 clashes with services[0].listen`},
	{"api on every address", "api: {listen: ':5454'}\n" + svc(""), `t.yaml:1: api.listen: address :5454 clashes with services[0].listen`},
	{"api on 0.0.0.0", "api: {listen: '0.0.0.0:5454'}\n" + svc(""), `t.yaml:1: api.listen: address 0.0.0.0:5454 clashes`},
	{"service on the API's default address", strings.Replace(svc(""), "5454", "5480", 1), `t.yaml:3: services[0].listen: address 127.0.0.1:5480 clashes with the API's (api.listen, default 127.0.0.1:5480)`},
	{"service on every address", svc("  - name: two\n    listen: '[::]:5454'\n    image: img\n    port: 1\n"), `t.yaml:7: services[1].listen: address [::]:5454 is already used by services[0] (127.0.0.1:5454)`},
	{"token file is a directory", "api: {token_file: $DIR}\n" + svc(""), `t.yaml:1: api.token_file: $DIR is a directory`},
	{"token file is a device", "api: {token_file: /dev/zero}\n" + svc(""), `t.yaml:1: api.token_file: /dev/zero is not a regular file`},
	{"token file is a FIFO", "api: {token_file: $DIR/fifo}\n" + svc(""), `t.yaml:1: api.token_file: $DIR/fifo is not a regular file`},
	{"token file is empty", "api: {token_file: $DIR/empty}\n" + svc(""), `t.yaml:1: api.token_file: $DIR/empty is empty`},
	{"token file is blank", "api: {token_file: $DIR/blank}\n" + svc(""), `t.yaml:1: api.token_file: $DIR/blank is empty`},
	{"token file is big", "api: {token_file: $DIR/big}\n" + svc(""), `t.yaml:1: api.token_file: $DIR/big is larger than 4KiB`},
	{"token file missing", "api: {token_file: $DIR/nope}\n" + svc(""), `t.yaml:1: api.token_file: cannot read $DIR/nope`},
	{"password file is empty", "registries:\n  - {host: r:5000, username: u, password_file: $DIR/empty}\n" + svc(""), `t.yaml:2: registries[0].password_file: $DIR/empty is empty`},
	{"password file is a device", "registries:\n  - {host: r:5000, username: u, password_file: /dev/zero}\n" + svc(""), `t.yaml:2: registries[0].password_file: /dev/zero is not a regular file`},
	{"reconcile too often", "reconcile: 10ms\n" + svc(""), `t.yaml:1: reconcile: want 0 (off) or at least 50ms, got 10ms`},
	{"health interval too short", "health: {interval: 1ms}\n" + svc(""), `t.yaml:1: health.interval: want at least 10ms, got 1ms`},
	{"health timeout zero", "health: {timeout: 0}\n" + svc(""), `t.yaml:1: health.timeout: want at least 10ms, got 0s`},
	{"pool above max_containers", svc("    max_containers: 2\n    pool: {min: 3}\n"), `t.yaml:7: services[0].pool.min: 3 is more than the service's max_containers (2)`},
	{"pool above max_sessions", "limits: {max_sessions: 2}\n" + svc("    pool: {min: 3}\n"), `t.yaml:7: services[0].pool.min: 3 is more than limits.max_sessions (2)`},
	{"tmpfs on /proc", svc("    limits:\n      tmpfs: {/proc: size=1m}\n"), `t.yaml:7: services[0].limits.tmpfs./proc: tmpfs on /proc would hide`},
	{"tmpfs below /sys", svc("    limits:\n      tmpfs: {/sys/fs/cgroup: ''}\n"), `services[0].limits.tmpfs./sys/fs/cgroup: tmpfs on /sys/fs/cgroup would hide`},
	{"tmpfs on /dev", svc("    limits:\n      tmpfs: {/dev/: ''}\n"), `services[0].limits.tmpfs./dev/: tmpfs on /dev would hide`},
	{"tmpfs through ..", svc("    limits:\n      tmpfs: {/tmp/../dev/pts: ''}\n"), `tmpfs on /dev/pts would hide`},
	{"tmpfs on /", svc("    limits:\n      tmpfs: {/: ''}\n"), `tmpfs on / would replace`},
	{"tmpfs twice", svc("    limits:\n      tmpfs: {/tmp: '', /tmp/: ''}\n"), `services[0].limits.tmpfs./tmp/: "/tmp/" is the same mount point as "/tmp"`},
	{"node with =", "node: a=b\n" + svc(""), `t.yaml:1: node: want letters, digits, '.', '_' or '-'`},
	{"node with ,", "node: a,b\n" + svc(""), `got "a,b"`},
	{"node with a control character", `node: "a\tb"` + "\n" + svc(""), `t.yaml:1: node: want letters`},
	{"env key with a newline", svc("    env: {\"A\\nB\": x}\n"), `t.yaml:6: services[0].env."A\nB": invalid environment variable name "A\nB"`},
}

func TestErrors(t *testing.T) {
	dir := secretDir(t)
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(strings.ReplaceAll(tt.yaml, "$DIR", dir)))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v; want config.Errors", err)
			}
			if want := strings.ReplaceAll(tt.want, "$DIR", dir); !strings.Contains(err.Error(), want) {
				t.Fatalf("got:\n%v\nwant a line containing:\n%s", err, want)
			}
		})
	}
}

// validCases are files that the checks in errorCases must not refuse.
var validCases = map[string]string{
	"reconcile off":              "reconcile: 0\n" + svc(""),
	"reconcile at the minimum":   "reconcile: 50ms\n" + svc(""),
	"health at the minimum":      "health: {interval: 10ms, timeout: 10ms}\n" + svc(""),
	"every key indented alike":   "  node: x\n  " + strings.ReplaceAll(svc(""), "\n  ", "\n    "),
	"document markers":           "---\n" + svc("") + "...\n",
	"UTF-16":                     utf16LE(svc("    env: {A: \"\\u00e9\U0001F600\"}\n")),
	"comments after the end":     svc("") + "...\n# the end\n",
	"tmpfs on /tmp and /dev/shm": svc("    limits:\n      tmpfs: {/tmp: size=1m, /dev/shm: size=64m}\n"),
	"pool within the caps":       "limits: {max_sessions: 3}\n" + svc("    max_containers: 3\n    pool: {min: 3}\n"),
	"api on another port":        "api: {listen: '0.0.0.0:5455'}\n" + svc(""),
	"api on another host":        "api: {listen: '127.0.0.2:5454'}\n" + svc(""),
	"api and service on port 0":  "api: {listen: '127.0.0.1:0'}\n" + strings.Replace(svc(""), "5454", "0", 1),
	"token file":                 "api: {token_file: $DIR/ok}\n" + svc(""),
	"password file":              "registries:\n  - {host: r:5000, username: u, password_file: $DIR/ok}\n" + svc(""),
	"node with dots and dashes":  "node: Node-1.example_2\n" + svc(""),
	"anchors used once each":     "node: &n x\n" + svc("    env: {NODE: *n}\n"),
}

func TestValid(t *testing.T) {
	dir := secretDir(t)
	for name, y := range validCases {
		if _, err := Parse("t.yaml", []byte(strings.ReplaceAll(y, "$DIR", dir))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestWarnings(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(svc("    proxy_protocol: true\n    trusted_proxies: [10.0.0.0/8, 0.0.0.0/0, '::/0']\n    limits:\n      cap_add: [NET_ADMIN, cap_sys_admin]\n      no_new_privileges: false\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`t.yaml:7: services[0].trusted_proxies[1]: 0.0.0.0/0 trusts every address`,
		`t.yaml:7: services[0].trusted_proxies[2]: ::/0 trusts every address`,
		`t.yaml:9: services[0].limits.cap_add[1]: cap_sys_admin lets the container mount`,
		`t.yaml:10: services[0].limits.no_new_privileges: false lets setuid binaries`,
	}
	got := cfg.Warnings()
	if len(got) != len(want) {
		t.Fatalf("got %d warnings; want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d: got\n%s\nwant it to start\n%s", i, got[i], want[i])
		}
	}
	if cfg, err := Parse("t.yaml", []byte(minimal)); err != nil || len(cfg.Warnings()) != 0 {
		t.Fatalf("minimal config: %v, warnings %q", err, cfg.Warnings())
	}
}

// start: data on the port of a protocol whose server speaks first is
// warned of; on any other port Ganger cannot know, and says nothing.
func TestWarnStartDataServerFirst(t *testing.T) {
	ssh := "services:\n  - name: ssh\n    listen: 127.0.0.1:2222\n    image: img\n    port: 22\n    start: data\n"
	cfg, err := Parse("t.yaml", []byte(ssh))
	if err != nil {
		t.Fatal(err)
	}
	want := "t.yaml:6: services[0].start: data waits for the client's first byte, but port 22 is SSH's"
	if w := cfg.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], want) {
		t.Fatalf("warnings %q; want one starting %q", w, want)
	}
	for _, yml := range []string{strings.Replace(ssh, "start: data", "start: connect", 1), svc("    start: data\n")} {
		if cfg, err := Parse("t.yaml", []byte(yml)); err != nil || len(cfg.Warnings()) != 0 {
			t.Fatalf("%s: %v, warnings %q; want none", yml, err, cfg.Warnings())
		}
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
	for _, in := range []string{"", "m", "-1m", "12 parsecs", "1x", ".", "9999999999G", "1e3"} {
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
	// The discovery block is written in comments: uncommented, it parses,
	// and holds every key.
	var commented []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "# discovery:") || strings.HasPrefix(line, "# autoscale:") || len(commented) > 0 && strings.HasPrefix(line, "#   ") {
			commented = append(commented, strings.TrimPrefix(line, "# "))
		}
	}
	block := strings.Join(commented, "\n") + "\n"
	var bdoc yaml.Node
	if err := yaml.Unmarshal([]byte(block), &bdoc); err != nil {
		t.Fatalf("the commented discovery block: %v\n%s", err, block)
	}
	bpos, _ := index(&bdoc, reflect.TypeFor[Config]())
	for _, k := range []string{"discovery.etcd.endpoints", "discovery.etcd.prefix", "discovery.etcd.tls.ca", "discovery.etcd.username",
		"discovery.etcd.password_file", "discovery.etcd.lost_grace", "discovery.etcd.ttl", "discovery.docker_tls.key", "discovery.dial", "discovery.max_starts"} {
		if _, ok := bpos.byPath[k]; !ok {
			t.Errorf("examples/ganger.yaml's commented discovery block lacks %s", k)
		}
	}
	for name := range yamlFields(reflect.TypeFor[Discovery]()) {
		if _, ok := bpos.byPath["discovery."+name]; !ok {
			t.Errorf("examples/ganger.yaml's commented discovery block lacks discovery.%s", name)
		}
	}
	for name := range yamlFields(reflect.TypeFor[Autoscale]()) {
		if _, ok := bpos.byPath["autoscale."+name]; !ok {
			t.Errorf("examples/ganger.yaml's commented autoscale block lacks autoscale.%s", name)
		}
	}
	for name := range yamlFields(reflect.TypeFor[Etcd]()) {
		if _, ok := bpos.byPath["discovery.etcd."+name]; !ok {
			t.Errorf("examples/ganger.yaml's commented discovery block lacks discovery.etcd.%s", name)
		}
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
			if p == "discovery" || p == "autoscale" {
				// Set, they need an etcd: the example shows every key in
				// comments, checked below.
				continue
			}
			if _, ok := pos.byPath[p]; !ok {
				t.Errorf("examples/ganger.yaml lacks %s", p)
				continue
			}
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct && !decodedWhole(ft):
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

// Lines of errors that yaml.v3 does not place are counted as it counts the
// lines of nodes, whatever the line break.
func TestLinesCountedAsYAMLDoes(t *testing.T) {
	for _, brk := range []string{"\n", "\r\n", "\r", "\u0085", "\u2028", "\u2029"} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("a: 1"+brk+"b: 2"+brk+"c: 3"), &doc); err != nil {
			t.Fatal(err)
		}
		want := doc.Content[0].Content[4].Line
		if e := badChar([]byte("a: 1" + brk + "b: 2" + brk + "\x00")); e == nil || e.Line != want {
			t.Errorf("break %q: NUL on line %v; want %d", brk, e, want)
		}
		if got := syntaxLine([]byte("a: 1"+brk+"b: 2"+brk+"c: d: e"), "mapping values are not allowed in this context"); got != want {
			t.Errorf("break %q: syntax error on line %d; want %d", brk, got, want)
		}
	}
}

// A service cap that one client address can fill on its own is a warning.
func TestPerIPWarning(t *testing.T) {
	svc := func(extra string) string {
		return "services:\n  - name: echo\n    listen: 127.0.0.1:5454\n    image: img\n    port: 7777\n" + extra
	}
	cfg, err := Parse("t.yaml", []byte(svc("    max_containers: 5\n")))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "services[0].per_ip: one client address may hold all 5") {
		t.Fatalf("warnings %q; want one on per_ip", w)
	}
	if cfg, err := Parse("t.yaml", []byte(svc("    max_containers: 5\n    per_ip: 2\n"))); err != nil || len(cfg.Warnings()) != 0 {
		t.Fatalf("per_ip below the cap: %v, warnings %q", err, cfg.Warnings())
	}
}
