package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/rampart-security/rampart/internal/secrets"
)

func runRampart(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSecretsGenerate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		decode  func(string) ([]byte, error)
		n       int
		warning bool
	}{
		{"default hex 32", nil, hex.DecodeString, 32, false},
		{"hex 64", []string{"--bytes", "64"}, hex.DecodeString, 64, false},
		{"base64url", []string{"--format", "base64url"}, base64.RawURLEncoding.DecodeString, 32, false},
		{"short warns", []string{"--bytes", "16"}, hex.DecodeString, 16, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runRampart(t, append([]string{"secrets", "generate"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			b, err := tt.decode(strings.TrimSpace(out))
			if err != nil || len(b) != tt.n {
				t.Fatalf("output %q: %d bytes, %v", out, len(b), err)
			}
			if tt.warning != strings.Contains(errOut, "warning") {
				t.Errorf("stderr = %q", errOut)
			}
			if tt.n >= 32 {
				if ps := secrets.Check("generated", []byte(strings.TrimSpace(out))); len(ps) != 0 {
					t.Errorf("generated secret fails the policy: %v", ps)
				}
			}
		})
	}
	_, a, _ := runRampart(t, "secrets", "generate")
	_, b, _ := runRampart(t, "secrets", "generate")
	if a == b {
		t.Error("two generated secrets are equal")
	}
	for _, args := range [][]string{{"--bytes", "8"}, {"--format", "base32"}} {
		if code, _, _ := runRampart(t, append([]string{"secrets", "generate"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
