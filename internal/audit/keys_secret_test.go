package audit

import (
	"bytes"
	"testing"
)

func TestKeyFromSecret(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, KeySize)
	k, err := KeyFromSecret("a", raw)
	if err != nil || !bytes.Equal(k.Secret, raw) {
		t.Fatalf("32 bytes are used as they are: %v", err)
	}
	hexText := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	k1, err := KeyFromSecret("b", hexText)
	if err != nil || len(k1.Secret) != KeySize || bytes.Equal(k1.Secret, hexText[:KeySize]) {
		t.Fatalf("longer secrets are stretched: %v", err)
	}
	k2, _ := KeyFromSecret("c", hexText)
	if !bytes.Equal(k1.Secret, k2.Secret) {
		t.Fatal("derivation is not deterministic")
	}
	if _, err := KeyFromSecret("d", []byte("short")); err == nil {
		t.Fatal("a short secret was accepted")
	}
}
