package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// access is what a call needs, and what a token grants.
type access int

const (
	read   access = iota + 1 // status page, JSON reads, metrics
	mutate                   // kill, drain, undrain, reload
)

// reading admits a read: to anyone when PublicRead, else with either token.
func (a *API) reading(h http.Handler) http.HandlerFunc {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		if err := a.authorise(w, r, read); err != nil {
			return err
		}
		h.ServeHTTP(w, r)
		return nil
	})
}

// authorise returns nil when r may make a call that needs the access
// given, else the refusal: 403 when no token could do it, 401 (with a
// challenge a browser answers with a login prompt) when r's is missing or
// wrong.
func (a *API) authorise(w http.ResponseWriter, r *http.Request, need access) *apiError {
	if need == read && a.PublicRead {
		return nil
	}
	switch {
	case need == mutate && a.Token == "":
		return &apiError{code: 403, msg: "no API token is configured: mutating calls are disabled (set api.token)"}
	case need == read && a.Token == "" && a.ReadToken == "":
		return &apiError{code: 403, msg: "reads need a token and none is configured: set api.read_token or api.token " +
			"(sent as a bearer token, or as the password of HTTP Basic auth), or api.public_read: true"}
	}
	got, ok := credential(r)
	full := ok && a.Token != "" && equal(got, a.Token)
	readOnly := ok && a.ReadToken != "" && equal(got, a.ReadToken)
	switch {
	case full, readOnly && need == read:
		return nil
	case readOnly:
		return &apiError{code: 403, msg: "the read-only token cannot make mutating calls: they need api.token"}
	}
	w.Header().Add("WWW-Authenticate", `Basic realm="ganger"`)
	w.Header().Add("WWW-Authenticate", `Bearer realm="ganger"`)
	if !ok {
		return &apiError{code: 401, msg: "a token is needed: send Authorization: Bearer <token> (or the token as the Basic auth password)"}
	}
	return &apiError{code: 401, msg: "wrong token"}
}

// credential is the token r carries: a Bearer credential, or the password
// of HTTP Basic auth (any user name) so that a browser's login prompt
// works. Schemes are matched in any case, as RFC 9110 says.
func credential(r *http.Request) (string, bool) {
	scheme, rest, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return rest, rest != ""
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, pass, ok := strings.Cut(string(b), ":")
		return pass, ok && pass != ""
	}
	return "", false
}

// equal compares in constant time; hashing first hides the length too.
func equal(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// hostPolicy says which Host headers the API answers. A DNS-rebinding page
// reaches the API under its own name, so a name must be listed; an IP
// address cannot be rebound, but only loopback addresses and the one a
// request arrived on are taken without being listed.
type hostPolicy struct {
	anyPort map[string]bool // "host" entries
	exact   map[string]bool // "host:port" entries, normalised
}

func newHostPolicy(hosts []string) hostPolicy {
	p := hostPolicy{anyPort: map[string]bool{"localhost": true}, exact: map[string]bool{}}
	for _, h := range hosts {
		host, port := splitHost(h)
		if port == "" {
			p.anyPort[host] = true
		} else {
			p.exact[net.JoinHostPort(host, port)] = true
		}
	}
	return p
}

// allows reports whether r's Host is one the API answers.
func (p hostPolicy) allows(r *http.Request) bool {
	host, port := splitHost(r.Host)
	if host == "" {
		return false
	}
	if port == "" {
		port = "80"
	}
	if p.anyPort[host] || p.exact[net.JoinHostPort(host, port)] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	la, err := netip.ParseAddrPort(local.String())
	return err == nil && la.Addr().Unmap() == ip
}

// splitHost splits "host", "host:port", "[v6]" or "[v6]:port" into a
// lower-case host (brackets removed) and the port, "" if none.
func splitHost(s string) (host, port string) {
	s = strings.ToLower(s)
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
}

// exemptFromHostCheck are the health checks: load balancers probe them
// under any name, and they tell nothing.
func exemptFromHostCheck(path string) bool {
	return path == "/healthz" || path == "/readyz" || memberCall(path)
}

// memberCall: a cluster member's own view or report, with its own token
// (no browser holds one: DNS rebinding gains nothing), from a container
// that may know the API by any name (cluster.api).
func memberCall(path string) bool {
	rest, ok := strings.CutPrefix(path, "/v1/clusters/")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "/")
	return len(parts) == 4 && parts[1] == "members" && (parts[3] == "view" || parts[3] == "report")
}
