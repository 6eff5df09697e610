package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []string // problem kinds
	}{
		{"rideshare default", "dev-api-key-change-in-production", []string{ProblemKnownDefault}},
		{"optibid default", "your-secret-key-here-change-in-production", []string{ProblemKnownDefault}},
		{"changeme", "changeme", []string{ProblemKnownDefault}},
		{"CHANGEME upper", "CHANGEME", []string{ProblemKnownDefault}},
		{"secret", "secret", []string{ProblemKnownDefault}},
		{"password", "password", []string{ProblemKnownDefault}},
		{"admin", "admin", []string{ProblemKnownDefault}},
		{"default", "default", []string{ProblemKnownDefault}},
		{"test", "test", []string{ProblemKnownDefault}},
		{"digits", "123456789", []string{ProblemKnownDefault}},
		{"your-secret-key", "your-secret-key", []string{ProblemKnownDefault}},
		{"supersecret", "supersecret", []string{ProblemKnownDefault}},
		{"quoted default", `"changeme"`, []string{ProblemKnownDefault}},
		{"placeholder in longer text", "please-change-me-before-deploying-this-thing-0001", []string{ProblemKnownDefault}},
		{"django insecure", "django-insecure-q8x!w@3k#z9m$v2n&b5c^x7z*l1p(o0i)u", []string{ProblemKnownDefault}},
		{"short random", "k3J9xQ2mP7", []string{ProblemTooShort}},
		{"repeated", strings.Repeat("a", 40), []string{ProblemLowEntropy}},
		{"pattern", strings.Repeat("abc1", 10), []string{ProblemLowEntropy}},
		{"digits pattern", "12345678901234567890123456789012x", []string{ProblemLowEntropy}},
		{"alphabet", "abcdefghijklmnopqrstuvwxyz0123456789", []string{ProblemLowEntropy}},
		{"two letters", "abbaabababbbaabaabbbabaababbabaaabab", []string{ProblemLowEntropy}},
		{"hex 32 bytes", "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := Check("jwt_key", []byte(tt.value))
			var kinds []string
			for _, p := range ps {
				kinds = append(kinds, p.Kind)
				if p.Secret != "jwt_key" || !strings.Contains(p.Message, `"jwt_key"`) {
					t.Errorf("message does not name the secret: %q", p.Message)
				}
				if len(tt.value) >= 8 && strings.Contains(p.Message, tt.value) {
					t.Errorf("message leaks the value: %q", p.Message)
				}
			}
			if strings.Join(kinds, ",") != strings.Join(tt.want, ",") {
				t.Errorf("kinds = %v, want %v", kinds, tt.want)
			}
		})
	}
}

func TestEveryKnownDefaultRefused(t *testing.T) {
	for _, d := range KnownDefaults() {
		if ps := Check("k", []byte(d)); len(ps) == 0 || ps[0].Kind != ProblemKnownDefault {
			t.Errorf("%q: %v", d, ps)
		}
	}
}

// Random secrets as the generator makes them must always pass.
func TestRandomSecretsPass(t *testing.T) {
	for i := range 2000 {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{hex.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), string(b)} {
			if ps := Check("k", []byte(v)); len(ps) != 0 {
				t.Fatalf("round %d: random value refused: %v", i, ps)
			}
		}
	}
}

func TestCheckMin(t *testing.T) {
	// A 24-character random database password passes with MinBytes 16.
	if ps := CheckMin("db", []byte("Tq8vZr2LmX5wKp9bNc4hJd7f"), 16); len(ps) != 0 {
		t.Errorf("CheckMin 16: %v", ps)
	}
	if ps := CheckMin("db", []byte("postgres"), 1); len(ps) == 0 {
		t.Error("known default passes with a low minimum")
	}
}
