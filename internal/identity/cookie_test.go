package identity

import "testing"

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
