package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sealedPrefix marks a TOTP secret stored encrypted: "enc:<kid>:<base64url
// nonce||ciphertext>".
const sealedPrefix = "enc:"

// secretBox encrypts TOTP secrets at rest with AES-256-GCM under a keyring
// (the first key seals, any opens), binding each to its user ID so a
// sealed value cannot be moved to another account. A nil box stores
// secrets as they are.
type secretBox struct {
	current string
	aeads   map[string]cipher.AEAD
	rand    io.Reader
}

func newSecretBox(keys []Key, r io.Reader) (*secretBox, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	b := &secretBox{current: keys[0].ID, aeads: map[string]cipher.AEAD{}, rand: r}
	for i, k := range keys {
		if k.ID == "" || len(k.ID) > 64 || strings.Contains(k.ID, ":") {
			return nil, fmt.Errorf("TOTP key %d: id must be 1 to 64 characters without ':'", i)
		}
		if len(k.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("TOTP key %q: %d bytes, want at least %d", k.ID, len(k.Secret), MinKeyBytes)
		}
		if _, dup := b.aeads[k.ID]; dup {
			return nil, fmt.Errorf("TOTP key %q: duplicate id", k.ID)
		}
		// The AES key is derived, so secrets of any length and encoding work
		// and this key is never the raw bytes used elsewhere.
		sum := sha256.Sum256(append([]byte("rampart totp secret v1\x00"), k.Secret...))
		block, err := aes.NewCipher(sum[:])
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		b.aeads[k.ID] = aead
	}
	return b, nil
}

// seal returns what to store for plain belonging to userID.
func (b *secretBox) seal(userID, plain string) (string, error) {
	if b == nil || plain == "" {
		return plain, nil
	}
	aead := b.aeads[b.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(b.rand, nonce); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	out := aead.Seal(nonce, nonce, []byte(plain), []byte(userID))
	return sealedPrefix + b.current + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

var errSealed = errors.New("TOTP secret is encrypted but cannot be opened")

// open returns the plain secret from a stored value. Values stored before
// a key was configured are plain and returned as they are.
func (b *secretBox) open(userID, stored string) (string, error) {
	rest, sealed := strings.CutPrefix(stored, sealedPrefix)
	if !sealed {
		return stored, nil
	}
	if b == nil {
		return "", fmt.Errorf("%w: no TOTP key configured", errSealed)
	}
	kid, body, ok := strings.Cut(rest, ":")
	aead, known := b.aeads[kid]
	if !ok || !known {
		return "", fmt.Errorf("%w: unknown key %q", errSealed, kid)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: malformed", errSealed)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(userID))
	if err != nil {
		return "", fmt.Errorf("%w: %w", errSealed, err)
	}
	return string(plain), nil
}
