package instance

import (
	"strings"
	"testing"
)

// Secrets have the length asked for, only letters and digits, differ
// every time, and use every character about equally often.
func TestSecrets(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	counts := map[rune]int{}
	const rounds = 1000
	for range rounds {
		s, err := Secrets(map[string]int{"password": 24, "flag": 40})
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 2 || len(s["password"]) != 24 || len(s["flag"]) != 40 {
			t.Fatalf("secrets %q; want a password of 24 and a flag of 40", s)
		}
		for _, v := range s {
			if seen[v] {
				t.Fatalf("secret %q generated twice", v)
			}
			seen[v] = true
			for _, r := range v {
				if !strings.ContainsRune(alphabet, r) {
					t.Fatalf("secret %q holds %q, outside the alphabet", v, r)
				}
				counts[r]++
			}
		}
	}
	// 64,000 characters over 62: about 1,032 each; a character outside
	// ±20% of that would be a bias (or a 1e-9 fluke).
	want := float64(rounds*64) / float64(len(alphabet))
	for _, r := range alphabet {
		if n := float64(counts[r]); n < want*0.8 || n > want*1.2 {
			t.Errorf("%q drawn %d times; want about %.0f", r, counts[r], want)
		}
	}
}
