package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// csp lets the status page apply its one inline style, named by its hash,
// and nothing else: no script, no frame, no form, no other origin. JSON
// answers carry it too: opened in a browser they can do even less.
var csp = "default-src 'none'; style-src '" + styleHash() + "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// styleHash is the CSP hash of status.html's <style> element.
func styleHash() string {
	b, err := files.ReadFile("status.html")
	if err != nil {
		panic(err)
	}
	_, rest, _ := strings.Cut(string(b), "<style>")
	css, _, ok := strings.Cut(rest, "</style>")
	if !ok {
		panic("status.html has no <style> element")
	}
	sum := sha256.Sum256([]byte(css))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// secure sets the headers every answer carries, whatever its status.
func secure(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}
