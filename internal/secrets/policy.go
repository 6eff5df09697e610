package secrets

import (
	"fmt"
	"math"
	"strings"
)

// MinBytes is the shortest secret accepted by default: 256 bits.
const MinBytes = 32

// Problem kinds.
const (
	ProblemKnownDefault = "known_default"
	ProblemTooShort     = "too_short"
	ProblemLowEntropy   = "low_entropy"
)

// Problem is one reason a secret is weak. Message names the secret and never
// contains its value.
type Problem struct {
	Secret  string
	Kind    string
	Message string
}

func (p Problem) String() string { return p.Message }

// knownDefaults are values shipped as defaults or placeholders: both
// checklists' defaults (rideshare P0-1, OptiBid §1) and the usual suspects of
// sample .env and docker-compose files.
var knownDefaults = []string{
	"dev-api-key-change-in-production",
	"your-secret-key-here-change-in-production",
	"your-secret-key", "your-secret-key-here", "your_secret_key", "your-api-key", "your-jwt-secret",
	"changeme", "change-me", "change_me", "changeit", "replace-me",
	"secret", "secretkey", "secret-key", "secret_key", "mysecret", "mysecretkey", "topsecret",
	"supersecret", "super-secret", "supersecretkey", "s3cr3t", "secret123",
	"password", "password1", "password123", "passw0rd", "p@ssw0rd", "pass", "passwd",
	"admin", "admin123", "administrator", "root", "toor", "guest", "user",
	"default", "test", "test123", "testing", "demo", "example", "sample", "dev", "development",
	"letmein", "qwerty", "abc123", "iloveyou", "welcome",
	"jwt-secret", "jwtsecret", "jwt_secret", "apikey", "api-key", "api_key", "token",
	"postgres", "redis", "mysql", "minioadmin", "rabbitmq", "kafka", "elastic",
	"null", "none", "empty", "todo", "xxx", "placeholder",
}

// placeholderWords mark a value as a placeholder wherever they occur.
var placeholderWords = []string{
	"changeinproduction", "changeme", "replaceme", "yoursecret", "yourapikey", "yourkey",
	"yourtoken", "yourpassword", "insertyour", "putyour", "notasecret", "insecure", "placeholder",
	"changethis",
}

var defaultSet = func() map[string]bool {
	m := make(map[string]bool, len(knownDefaults))
	for _, d := range knownDefaults {
		m[normalize(d)] = true
	}
	return m
}()

// KnownDefaults lists the exact default values the policy refuses.
func KnownDefaults() []string { return append([]string(nil), knownDefaults...) }

func normalize(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(strings.TrimSpace(s)) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// IsKnownDefault reports whether value is a known default or placeholder
// (case, spaces and punctuation ignored), or a run of digits such as 123456.
func IsKnownDefault(value []byte) bool {
	for _, c := range value {
		if c < 0x20 || c > 0x7e {
			return false // binary: not something typed into a sample file
		}
	}
	n := normalize(strings.Trim(strings.TrimSpace(string(value)), `"'`))
	if n == "" {
		return false
	}
	if defaultSet[n] {
		return true
	}
	for _, w := range placeholderWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	if strings.HasPrefix(n, "12345") && strings.Trim(n, "0123456789") == "" {
		return true
	}
	return false
}

// Check applies the policy with MinBytes: a known default, shorter than 32
// bytes, or of low entropy. It returns nil for a strong secret.
func Check(name string, value []byte) []Problem { return CheckMin(name, value, MinBytes) }

// CheckMin is Check with a different minimum length (for secrets such as a
// database password whose length another system decides). The entropy bar
// scales with it, up to 96 estimated bits.
func CheckMin(name string, value []byte, minBytes int) []Problem {
	var ps []Problem
	add := func(kind, format string, a ...any) {
		ps = append(ps, Problem{Secret: name, Kind: kind, Message: fmt.Sprintf("secret %q ", name) + fmt.Sprintf(format, a...)})
	}
	if IsKnownDefault(value) {
		add(ProblemKnownDefault, "is a known default or placeholder value; generate one with `rampart secrets generate`")
		return ps
	}
	if len(value) < minBytes {
		add(ProblemTooShort, "is %d bytes, shorter than the minimum %d", len(value), minBytes)
	}
	if why := lowEntropy(value, minBytes, len(value) >= minBytes); why != "" {
		add(ProblemLowEntropy, "has low entropy (%s)", why)
	}
	return ps
}

// lowEntropy returns why value looks non-random, or "".
// total adds the estimated-bits bar, skipped for values already too short.
func lowEntropy(b []byte, minBytes int, total bool) string {
	if len(b) == 0 {
		return "empty"
	}
	if p := period(b); p > 0 {
		return fmt.Sprintf("repeats a %d-byte pattern", p)
	}
	if len(b) >= 8 && steps(b)*2 > len(b)-1 {
		return "mostly sequential or repeated characters"
	}
	h := shannon(b)
	if h < 3 {
		return fmt.Sprintf("%.1f bits per character", h)
	}
	want := math.Min(96, 3*float64(minBytes))
	if bits := h * float64(len(b)); total && bits < want {
		return fmt.Sprintf("about %.0f bits, want %.0f", bits, want)
	}
	return ""
}

// shannon is the Shannon entropy of b's byte distribution in bits per byte.
func shannon(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	h, n := 0.0, float64(len(b))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// period returns the smallest p <= len(b)/2 with b[i] == b[i-p] for all i, or 0.
func period(b []byte) int {
	for p := 1; p <= len(b)/2; p++ {
		ok := true
		for i := p; i < len(b); i++ {
			if b[i] != b[i-p] {
				ok = false
				break
			}
		}
		if ok {
			return p
		}
	}
	return 0
}

// steps counts adjacent pairs that differ by at most one (aa, ab, ba).
func steps(b []byte) int {
	n := 0
	for i := 1; i < len(b); i++ {
		d := int(b[i]) - int(b[i-1])
		if d >= -1 && d <= 1 {
			n++
		}
	}
	return n
}
