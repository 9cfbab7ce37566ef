package config

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// minTokenLen is the shortest API token accepted: a short one is guessed.
const minTokenLen = 16

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$`)

// Tokens returns the full and the read-only token, each read from its
// file (trailing newline cut) when given that way; "" when not set.
func (a API) Tokens() (token, readToken string, err error) {
	if token, err = secret(a.Token, a.TokenFile); err != nil {
		return "", "", fmt.Errorf("api token: %w", err)
	}
	if readToken, err = secret(a.ReadToken, a.ReadTokenFile); err != nil {
		return "", "", fmt.Errorf("api read token: %w", err)
	}
	return token, readToken, nil
}

// ReadToken returns a token given as a value or as a file (trailing
// newline cut).
func ReadToken(value, file string) (string, error) { return secret(value, file) }

func secret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	s, err := ReadSecretFile(file)
	return strings.TrimSpace(s), err
}

func (v *validator) api(a API) {
	if a.Listen != "" {
		v.listen("api.listen", a.Listen)
	}
	token, tokenKey := v.token("api.token", a.Token, a.TokenFile)
	read, readKey := v.token("api.read_token", a.ReadToken, a.ReadTokenFile)
	if token != "" && token == read {
		v.fail(readKey, "must differ from %s: the read-only token would allow mutating calls", tokenKey)
	}
	for i, h := range a.Hosts {
		if !validHost(h) {
			v.fail(fmt.Sprintf("api.hosts[%d]", i), "want a host name or address, with a port or not "+
				"(ganger.example.com, 10.0.0.5:5480, [fd00::1]:5480), got %q", h)
		}
	}
	if a.MaxConnections < 1 {
		v.fail("api.max_connections", "want at least 1, got %d", a.MaxConnections)
	}
	v.clients(a, token, read)
}

// token checks a token given as key or as key_file, and returns it (""
// when unset or unreadable) and the key that gave it.
func (v *validator) token(key, value, file string) (string, string) {
	fileKey := key + "_file"
	switch {
	case value != "" && file != "":
		v.fail(fileKey, "give %s or %s, not both", strings.TrimPrefix(key, "api."), strings.TrimPrefix(fileKey, "api."))
		return "", key
	case file != "":
		tok, err := secret(value, file)
		switch {
		case err != nil:
			v.fail(fileKey, "%v", err)
			return "", fileKey
		case tok == "":
			v.fail(fileKey, "%s is empty", file)
		case len(tok) < minTokenLen:
			v.fail(fileKey, "the token in %s is %d characters; want at least %d", file, len(tok), minTokenLen)
		}
		return tok, fileKey
	case value != "" && len(value) < minTokenLen:
		v.fail(key, "%d characters; want at least %d", len(value), minTokenLen)
	}
	return value, key
}

// validHost reports whether s is "host" or "host:port": a name or an
// address, brackets allowed around an IPv6 one.
func validHost(s string) bool {
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Zone() == ""
	}
	return hostNameRE.MatchString(host)
}

// apiEqual compares two api blocks; a missing list and an empty one are
// equal.
func apiEqual(a, b API) bool {
	if !slices.Equal(a.Hosts, b.Hosts) || !slices.Equal(a.Clients, b.Clients) || !slices.Equal(a.TrustedProxies, b.TrustedProxies) {
		return false
	}
	a.Hosts, b.Hosts, a.Clients, b.Clients, a.TrustedProxies, b.TrustedProxies = nil, nil, nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}
