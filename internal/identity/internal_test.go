package identity

import (
	"crypto/rand"
	"testing"
)

func TestLocalPath(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"/", true},
		{"/app/agents?x=1", true},
		{"", false},
		{"app", false},
		{"//evil.example/x", false},
		{"/\\evil.example", false},
		{"https://evil.example/", false},
		{"/a\r\nSet-Cookie: x=y", false},
		{"/a\\b", false},
	}
	for _, tt := range tests {
		if got := localPath(tt.p); got != tt.ok {
			t.Errorf("localPath(%q) = %v, want %v", tt.p, got, tt.ok)
		}
	}
}

func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "//x", "/\\x", "https://x", "/a?b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !localPath(p) {
			return
		}
		if p[0] != '/' || len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
			t.Fatalf("accepted %q", p)
		}
	})
}

func FuzzParseBackupCode(f *testing.F) {
	for _, s := range []string{"abcd-efgh-ijkl-mnop", "ABCD EFGH IJKL MNOP", "abcd", "", "1111-1111-1111-1111"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseBackupCode(s)
		if ok && len(h) != 32 {
			t.Fatalf("hash of %d bytes", len(h))
		}
	})
}

func TestBackupCodeRoundTrip(t *testing.T) {
	for range 20 {
		code, hash, err := newBackupCode(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseBackupCode(code)
		if !ok || string(got) != string(hash) {
			t.Fatalf("code %q does not parse back to its hash", code)
		}
	}
}
