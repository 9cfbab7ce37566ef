package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/view"
)

// The page's inline style and script, as served (html/template strips
// comments, for one), are the ones the CSP names by hash: else a browser
// drops them.
func TestPageCSPMatchesServedElements(t *testing.T) {
	a := &API{}
	rec := httptest.NewRecorder()
	a.render(rec, 200, map[string]any{"Inst": view.Instance{
		ID: "abc", Service: "redis", State: "running", Host: "127.0.0.1", Ports: map[string]int{"6379": 20001},
		Secrets: map[string]string{"password": "x"}, Connect: "redis://:x@127.0.0.1:20001", ExpiresAt: time.Now().Add(time.Hour),
	}})
	body, policy := rec.Body.String(), rec.Header().Get("Content-Security-Policy")
	for _, el := range []string{"style", "script"} {
		_, rest, _ := strings.Cut(body, "<"+el+">")
		text, _, ok := strings.Cut(rest, "</"+el+">")
		if !ok {
			t.Fatalf("no <%s> served", el)
		}
		sum := sha256.Sum256([]byte(text))
		if h := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); !strings.Contains(policy, h) {
			t.Errorf("served <%s> hashes to %s, which the policy %q does not name", el, h, policy)
		}
	}
	if !strings.Contains(body, `id="copy-connect"`) {
		t.Error("no Copy button for the connect line")
	}
}
