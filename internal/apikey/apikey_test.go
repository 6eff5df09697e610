package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

func testPepper(v int) Pepper {
	return Pepper{Version: v, Secret: bytes.Repeat([]byte{byte('a' + v)}, 32)}
}

func mustKeyring(t testing.TB, cur Pepper, prev ...Pepper) *Keyring {
	t.Helper()
	k, err := NewKeyring(cur, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustGenerate(t testing.TB, env Env) Key {
	t.Helper()
	k, err := Generate(rand.Reader, env)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateParseRoundTrip(t *testing.T) {
	for _, env := range []Env{EnvLive, EnvTest} {
		t.Run(string(env), func(t *testing.T) {
			k := mustGenerate(t, env)
			s := k.Reveal()
			if len(s) != Len {
				t.Fatalf("len = %d, want %d", len(s), Len)
			}
			if !strings.HasPrefix(s, "rk_"+string(env)+"_") {
				t.Fatalf("prefix of %q", s)
			}
			if !LeakRegexp.MatchString(s) {
				t.Fatalf("LeakPattern does not match %q", s)
			}
			if got := LeakRegexp.FindString("token=" + s + "\n"); got != s {
				t.Fatalf("LeakPattern found %q in text", got)
			}
			p, err := Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			if p.ID() != k.ID() || p.Env() != env || !ValidID(p.ID()) {
				t.Fatalf("parsed %v, want id %s env %s", p, k.ID(), env)
			}
		})
	}
}

func TestGenerateDeterministicReader(t *testing.T) {
	// Bytes >= 248 are rejected, so a reader of 0xff.. then valid bytes
	// still yields a key; a reader of only 0xff fails instead of looping.
	_, err := Generate(bytes.NewReader(bytes.Repeat([]byte{0xff}, 1<<16)), EnvLive)
	if err == nil {
		t.Fatal("all-0xff reader accepted")
	}
	seq := make([]byte, 4096)
	for i := range seq {
		seq[i] = byte(i % 256)
	}
	a, err := Generate(bytes.NewReader(seq), EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(bytes.NewReader(seq), EnvTest)
	if a.Reveal() != b.Reveal() {
		t.Fatal("same random input gave different keys")
	}
	if _, err := Generate(bytes.NewReader(nil), EnvLive); err == nil {
		t.Fatal("empty reader accepted")
	}
	if _, err := Generate(rand.Reader, Env("prod")); err == nil {
		t.Fatal("unknown env accepted")
	}
}

func TestParseRejects(t *testing.T) {
	good := mustGenerate(t, EnvLive).Reveal()
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"short", good[:Len-1], ErrMalformed},
		{"long", good + "a", ErrMalformed},
		{"wrong prefix", "xk" + good[2:], ErrMalformed},
		{"wrong env", "rk_prod" + good[7:], ErrMalformed},
		{"bad separator", good[:20] + "-" + good[21:], ErrMalformed},
		{"non base62 in id", good[:9] + "-" + good[10:], ErrMalformed},
		{"non base62 in secret", good[:30] + "+" + good[31:], ErrMalformed},
		{"typo in id", flip(10), ErrChecksum},
		{"typo in secret", flip(40), ErrChecksum},
		{"typo in checksum", flip(Len - 1), ErrChecksum},
		{"env swapped", "rk_test" + good[7:], ErrChecksum},
		{"whitespace", " " + good[1:], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := mustGenerate(t, EnvLive)
	secret := k.Reveal()[21:]
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "key", k)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "key", k, "pepper", testPepper(1))
	outputs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), k.String(), logBuf.String(),
		fmt.Sprintf("%v %#v", testPepper(1), testPepper(1)),
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, string(testPepper(1).Secret)) {
			t.Fatalf("secret in output %q", out)
		}
	}
	if !strings.Contains(logBuf.String(), k.ID()) {
		t.Fatalf("log lacks key id: %s", logBuf.String())
	}
}

func TestHashMatchesHMAC(t *testing.T) {
	long := Pepper{Version: 3, Secret: bytes.Repeat([]byte("p"), 100)}
	for _, p := range []Pepper{testPepper(1), long} {
		kr := mustKeyring(t, p)
		k := mustGenerate(t, EnvLive)
		got, v := kr.Hash(k)
		m := hmac.New(sha256.New, p.Secret)
		m.Write([]byte(k.Reveal()[:bodyLen]))
		if !bytes.Equal(got, m.Sum(nil)) || v != p.Version {
			t.Fatalf("hash differs from crypto/hmac for pepper len %d", len(p.Secret))
		}
	}
}

func TestVerify(t *testing.T) {
	old, cur := testPepper(1), testPepper(2)
	oldRing := mustKeyring(t, old)
	ring := mustKeyring(t, cur, old)
	k := mustGenerate(t, EnvLive)
	other := mustGenerate(t, EnvLive)
	hCur, vCur := ring.Hash(k)
	hOld, vOld := oldRing.Hash(k)

	tests := []struct {
		name    string
		key     Key
		hash    []byte
		version int
		want    error
		rehash  bool
	}{
		{"current", k, hCur, vCur, nil, false},
		{"previous pepper", k, hOld, vOld, nil, true},
		{"wrong key", other, hCur, vCur, ErrMismatch, false},
		{"hash of other version", k, hOld, vCur, ErrMismatch, false},
		{"unknown version", k, hCur, 9, ErrUnknownPepper, true},
		{"truncated hash", k, hCur[:16], vCur, ErrMismatch, false},
		{"empty hash", k, nil, vCur, ErrMismatch, false},
		{"zero key", Key{}, hCur, vCur, ErrMismatch, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ring.Verify(tt.key, tt.hash, tt.version); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if got := ring.NeedsRehash(tt.version); got != tt.rehash {
				t.Fatalf("NeedsRehash = %v", got)
			}
		})
	}
	// The MAC covers the ID: a hash moved to another key's row fails.
	hOther, _ := ring.Hash(other)
	if ring.Verify(k, hOther, vCur) == nil {
		t.Fatal("other key's hash verified")
	}
}

func TestNewKeyringRejects(t *testing.T) {
	tests := []struct {
		name string
		cur  Pepper
		prev []Pepper
	}{
		{"short", Pepper{Version: 1, Secret: []byte("short")}, nil},
		{"zero version", Pepper{Version: 0, Secret: bytes.Repeat([]byte("x"), 32)}, nil},
		{"duplicate", testPepper(1), []Pepper{testPepper(1)}},
		{"bad previous", testPepper(2), []Pepper{{Version: 1, Secret: []byte("x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewKeyring(tt.cur, tt.prev...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRecordStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  Record
		want Status
	}{
		{"active", Record{}, StatusActive},
		{"not yet expired", Record{ExpiresAt: now.Add(time.Second)}, StatusActive},
		{"expired at instant", Record{ExpiresAt: now}, StatusExpired},
		{"revoked", Record{RevokedAt: now.Add(-time.Hour)}, StatusRevoked},
		{"revoked wins over expired", Record{RevokedAt: now, ExpiresAt: now.Add(-time.Hour)}, StatusRevoked},
		{"grace", Record{RotatedAt: now.Add(-time.Hour), GraceUntil: now.Add(time.Hour)}, StatusGrace},
		{"retired", Record{RotatedAt: now.Add(-time.Hour), GraceUntil: now}, StatusRetired},
		{"expired during grace", Record{RotatedAt: now, GraceUntil: now.Add(time.Hour), ExpiresAt: now}, StatusExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rec.Status(now)
			if got != tt.want {
				t.Fatalf("Status = %v, want %v", got, tt.want)
			}
			if got.Usable() != (tt.want == StatusActive || tt.want == StatusGrace) {
				t.Fatal("Usable mismatch")
			}
		})
	}
}

func TestParseVerifyNoAllocs(t *testing.T) {
	ring := mustKeyring(t, testPepper(1))
	k := mustGenerate(t, EnvLive)
	h, v := ring.Hash(k)
	s := k.Reveal()
	allocs := testing.AllocsPerRun(100, func() {
		p, err := Parse(s)
		if err != nil || ring.Verify(p, h, v) != nil {
			t.Fatal("verify failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("parse+verify allocates %v times", allocs)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(mustGenerate(f, EnvLive).Reveal())
	f.Add(mustGenerate(f, EnvTest).Reveal())
	f.Add("")
	f.Add("rk_live_")
	f.Add(strings.Repeat("a", Len))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Parse(s)
		if err != nil {
			if !k.IsZero() {
				t.Fatal("non-zero key with error")
			}
			return
		}
		if k.Reveal() != s || !LeakRegexp.MatchString(s) || !ValidID(k.ID()) {
			t.Fatalf("accepted %q that does not match the documented format", s)
		}
		if strings.Contains(k.String(), s[21:]) {
			t.Fatal("String leaks secret")
		}
	})
}

func BenchmarkParseVerify(b *testing.B) {
	ring := mustKeyring(b, testPepper(1))
	k := mustGenerate(b, EnvLive)
	h, v := ring.Hash(k)
	s := k.Reveal()
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse(s)
		if err != nil || ring.Verify(p, h, v) != nil {
			b.Fatal("verify failed")
		}
	}
}

func TestParsePermissions(t *testing.T) {
	tests := []struct {
		in   string
		want reqinfo.Permission
		ok   bool
	}{
		{"read", reqinfo.PermRead, true},
		{"read,write", reqinfo.PermRead | reqinfo.PermWrite, true},
		{" admin , read ", reqinfo.PermAdmin | reqinfo.PermRead, true},
		{"", 0, false},
		{"read,", 0, false},
		{"root", 0, false},
	}
	for _, tt := range tests {
		got, err := ParsePermissions(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePermissions(%q) = %v, %v", tt.in, got, err)
		}
	}
}
