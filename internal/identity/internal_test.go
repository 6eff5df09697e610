package identity

import (
	"crypto/rand"
	"net/http"
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

func TestSecretBox(t *testing.T) {
	k1 := Key{ID: "t1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	k2 := Key{ID: "t2", Secret: []byte("fedcba9876543210fedcba9876543210")}
	old, err := newSecretBox([]Key{k1}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := newSecretBox([]Key{k2, k1}, rand.Reader)
	onlyNew, _ := newSecretBox([]Key{k2}, rand.Reader)
	var plain *secretBox

	sealed, err := old.seal("u_1", "JBSWY3DPEHPK3PXP")
	if err != nil || len(sealed) < 10 || sealed[:7] != "enc:t1:" {
		t.Fatalf("seal = %q, %v", sealed, err)
	}
	again, _ := old.seal("u_1", "JBSWY3DPEHPK3PXP")
	if again == sealed {
		t.Fatal("sealing is deterministic")
	}
	tests := []struct {
		name   string
		box    *secretBox
		user   string
		stored string
		want   string // empty: error
	}{
		{"same key", old, "u_1", sealed, "JBSWY3DPEHPK3PXP"},
		{"rotated ring opens the old key", rotated, "u_1", sealed, "JBSWY3DPEHPK3PXP"},
		{"retired key", onlyNew, "u_1", sealed, ""},
		{"other user", old, "u_2", sealed, ""},
		{"no key configured", plain, "u_1", sealed, ""},
		{"plain value passes", old, "u_1", "JBSWY3DPEHPK3PXP", "JBSWY3DPEHPK3PXP"},
		{"plain without box", plain, "u_1", "JBSWY3DPEHPK3PXP", "JBSWY3DPEHPK3PXP"},
		{"tampered", old, "u_1", sealed[:len(sealed)-2] + "AA", ""},
		{"malformed", old, "u_1", "enc:t1:!!", ""},
		{"no kid", old, "u_1", "enc:xyz", ""},
	}
	for _, tt := range tests {
		got, err := tt.box.open(tt.user, tt.stored)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s: opened to %q", tt.name, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: open = %q, %v", tt.name, got, err)
		}
	}
	if s, _ := plain.seal("u_1", "X"); s != "X" {
		t.Fatalf("nil box sealed to %q", s)
	}
	for _, bad := range [][]Key{{{ID: "a", Secret: []byte("short")}}, {{ID: "a:b", Secret: k1.Secret}}, {k1, k1}, {{Secret: k1.Secret}}} {
		if _, err := newSecretBox(bad, rand.Reader); err == nil {
			t.Errorf("newSecretBox(%v) accepted", bad)
		}
	}
}

func TestStripCookies(t *testing.T) {
	tests := []struct {
		in   []string
		want string // "" means no Cookie header
	}{
		{nil, ""},
		{[]string{"a=1; __Host-rampart_session=x; b=2"}, "a=1; b=2"},
		{[]string{"__Host-rampart_refresh=x", "__Host-rampart_csrf=y"}, ""},
		{[]string{"theme=dark", "__Host-rampart_device=z; lang=en"}, "theme=dark; lang=en"},
		{[]string{"__Host-rampart_session"}, ""},
		{[]string{"x=__Host-rampart_session"}, "x=__Host-rampart_session"},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.in {
			h.Add("Cookie", v)
		}
		StripCookies(h)
		if got := h.Get("Cookie"); got != tt.want || len(h.Values("Cookie")) > 1 {
			t.Errorf("StripCookies(%q) = %q, want %q", tt.in, h.Values("Cookie"), tt.want)
		}
	}
}
