package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAPIErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short, long := file("short", "abc\n"), file("long", "0123456789abcdef\n")
	svc := "services:\n  - {name: echo, listen: 127.0.0.1:5454, image: img, port: 7777}\n"
	tests := []struct{ name, api, want string }{
		{"short token", "{token: s3cret}", `t.yaml:1: api.token: 6 characters; want at least 16`},
		{"short read token", "{read_token: r34d}", `t.yaml:1: api.read_token: 4 characters; want at least 16`},
		{"short token file", "{token_file: " + short + "}", `t.yaml:1: api.token_file: the token in ` + short + ` is 3 characters; want at least 16`},
		{"short read token file", "{read_token_file: " + short + "}", `t.yaml:1: api.read_token_file: the token in ` + short + ` is 3`},
		{"same tokens", "{token: 0123456789abcdef, read_token: 0123456789abcdef}", `t.yaml:1: api.read_token: must differ from api.token`},
		{"same tokens, one from a file", "{token: 0123456789abcdef, read_token_file: " + long + "}", `t.yaml:1: api.read_token_file: must differ from api.token`},
		{"read token twice", "{read_token: 0123456789abcdef, read_token_file: " + long + "}", `t.yaml:1: api.read_token_file: give read_token or read_token_file, not both`},
		{"missing read token file", "{read_token_file: /nope/token}", `t.yaml:1: api.read_token_file: cannot read /nope/token`},
		{"host with a scheme", "{hosts: [ok.example, 'http://x.example']}", `t.yaml:1: api.hosts[1]: want a host name or address, with a port or not`},
		{"host with a path", "{hosts: [x.example/status]}", `t.yaml:1: api.hosts[0]: want a host name or address`},
		{"host with a bad port", "{hosts: ['x.example:http']}", `t.yaml:1: api.hosts[0]: want a host name or address`},
		{"host with port 0", "{hosts: ['x.example:0']}", `t.yaml:1: api.hosts[0]: want a host name or address`},
		{"empty host", "{hosts: ['']}", `t.yaml:1: api.hosts[0]: want a host name or address`},
		{"no connections", "{max_connections: 0}", `t.yaml:1: api.max_connections: want at least 1, got 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte("api: "+tt.api+"\n"+svc))
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

func TestAPIValid(t *testing.T) {
	dir := t.TempDir()
	tokenFile, readFile := filepath.Join(dir, "token"), filepath.Join(dir, "read")
	os.WriteFile(tokenFile, []byte("0123456789abcdef\n"), 0o600)
	os.WriteFile(readFile, []byte("fedcba9876543210\n"), 0o600)
	y := `api:
  token_file: ` + tokenFile + `
  read_token_file: ` + readFile + `
  hosts: [ganger.example.com, "proxy.example:8080", 10.0.0.5, "[fd00::1]:5480", "fd00::2", ganger_api]
services:
  - {name: echo, listen: 127.0.0.1:5454, image: img, port: 7777}
`
	cfg, err := Parse("t.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.MaxConnections != DefaultAPIMaxConnections || cfg.API.PublicRead {
		t.Fatalf("api %+v; want max_connections %d and public_read false by default", cfg.API, DefaultAPIMaxConnections)
	}
	token, read, err := cfg.API.Tokens()
	if err != nil || token != "0123456789abcdef" || read != "fedcba9876543210" {
		t.Fatalf("Tokens() = %q, %q, %v", token, read, err)
	}
}

// A change to the api block, hosts included, is one that needs a restart.
func TestAPIChangesNeedARestart(t *testing.T) {
	a, b := defaultConfig(), defaultConfig()
	b.API.Hosts = []string{"ganger.example.com"}
	if got := RestartChanges(&a, &b); !slices.Contains(got, "api") {
		t.Fatalf("hosts changed: %v; want api", got)
	}
	b.API.Hosts = []string{}
	if got := RestartChanges(&a, &b); slices.Contains(got, "api") {
		t.Fatalf("no hosts and an empty list: %v; want no change", got)
	}
}
