package instance

import (
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
)

// alphabet is what generated secrets are made of: letters and digits,
// safe in a URL, a shell word and a Redis AUTH without quoting.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Secrets generates one secret of each length named: crypto/rand, each
// character drawn uniformly from the 62 of alphabet (log2 62 ≈ 5.95 bits
// each, so 24 characters carry 142 bits).
func Secrets(lengths map[string]int) (map[string]string, error) {
	out := make(map[string]string, len(lengths))
	for _, name := range slices.Sorted(maps.Keys(lengths)) {
		s, err := randomString(lengths[name])
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
}

// randomString draws n characters of alphabet without modulo bias: bytes
// of 248 or more (4 × 62) are thrown away.
func randomString(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b >= 4*byte(len(alphabet)) {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}
