package identity_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampart-security/rampart/internal/identity"
)

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		name     string
		policy   identity.PasswordPolicy
		username string
		password string
		reason   string // empty: accepted
	}{
		{"ok", identity.PasswordPolicy{}, "alice", "correct horse battery staple", ""},
		{"exactly 12", identity.PasswordPolicy{}, "alice", "abcdefghijk!", ""},
		{"11 chars", identity.PasswordPolicy{}, "alice", "abcdefghij!", "shorter than 12"},
		{"runes not bytes", identity.PasswordPolicy{}, "alice", "ééééééééééé", "shorter than 12"},
		{"configured length", identity.PasswordPolicy{MinLength: 16}, "alice", "fifteen chars!!", "shorter than 16"},
		{"72 bytes", identity.PasswordPolicy{}, "alice", strings.Repeat("ab", 36), ""},
		{"73 bytes", identity.PasswordPolicy{}, "alice", strings.Repeat("ab", 36) + "c", "72 bytes"},
		{"multibyte over 72", identity.PasswordPolicy{}, "alice", strings.Repeat("é", 37), "72 bytes"},
		{"common", identity.PasswordPolicy{}, "alice", "1qaz2wsx3edc", "common"},
		{"common any case", identity.PasswordPolicy{}, "alice", "1QAZ2WSX3EDC", "common"},
		{"common short list entry", identity.PasswordPolicy{MinLength: 8}, "alice", "password", "common"},
		{"contains username", identity.PasswordPolicy{}, "alice", "xx-Alice-rocks-xx", "username"},
		{"short username ignored", identity.PasswordPolicy{}, "al", "almost all alpha", ""},
		{"invalid utf-8", identity.PasswordPolicy{}, "alice", "abcdefghijkl\xff", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.username, tt.password)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, identity.ErrWeakPassword) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.reason)
			}
		})
	}
}

func TestCommonPasswordList(t *testing.T) {
	for _, p := range []string{"123456", "password", "qwerty", "zzzzzzzz", "1q2w3e4r5t6y"} {
		if !identity.IsCommonPassword(p) {
			t.Errorf("%q not in the list", p)
		}
	}
	if identity.IsCommonPassword("correct horse battery staple") {
		t.Error("a long passphrase is in the list")
	}
}
