package apikey

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestKeyringReplace(t *testing.T) {
	p1 := Pepper{Version: VersionFromID("v1"), Secret: bytes.Repeat([]byte{1}, 32)}
	p2 := Pepper{Version: VersionFromID("v2"), Secret: bytes.Repeat([]byte{2}, 32)}
	k, err := NewKeyring(p1)
	if err != nil {
		t.Fatal(err)
	}
	key, err := Generate(rand.Reader, EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	h1, v1 := k.Hash(key)
	// Rotation: the new pepper is current, the old one still verifies.
	if err := k.Replace(p2, p1); err != nil {
		t.Fatal(err)
	}
	if err := k.Verify(key, h1, v1); err != nil || !k.NeedsRehash(v1) {
		t.Fatalf("old hash during overlap: %v, rehash %v", err, k.NeedsRehash(v1))
	}
	h2, v2 := k.Hash(key)
	if v2 != p2.Version || bytes.Equal(h1, h2) {
		t.Fatalf("new hash not under the new pepper: v%d", v2)
	}
	// Overlap over: the old pepper is gone.
	if err := k.Replace(p2); err != nil {
		t.Fatal(err)
	}
	if err := k.Verify(key, h1, v1); !errors.Is(err, ErrUnknownPepper) {
		t.Fatalf("old hash after overlap: %v", err)
	}
	// A bad replacement changes nothing.
	if err := k.Replace(Pepper{Version: 1, Secret: []byte("short")}); err == nil || k.CurrentVersion() != p2.Version {
		t.Fatalf("bad replace: %v, current v%d", err, k.CurrentVersion())
	}
}

func TestVersionFromID(t *testing.T) {
	seen := map[int]string{}
	for _, id := range []string{"a", "b", "AWSCURRENT-1", "3", "fp:0123456789abcdef", ""} {
		v := VersionFromID(id)
		if v <= 0 {
			t.Errorf("VersionFromID(%q) = %d, want positive", id, v)
		}
		if other, dup := seen[v]; dup {
			t.Errorf("%q and %q map to %d", id, other, v)
		}
		seen[v] = id
		if VersionFromID(id) != v {
			t.Errorf("not stable for %q", id)
		}
	}
}
