package audit

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"gopkg.in/yaml.v3"
)

// KeySize is the size of every audit key: 32 bytes (HMAC-SHA256 seals and
// AES-256-GCM encryption).
const KeySize = 32

// ErrUnknownKey is returned when a sealed or encrypted record names a key
// that is not in the keyring.
var ErrUnknownKey = errors.New("audit key not in keyring")

// Key is one audit key. ID is the operator's name for it; the files never
// contain the ID, only a one-way fingerprint of the secret.
type Key struct {
	ID     string
	Secret []byte
}

// LogValue keeps the secret out of logs.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.ID) }

// String keeps the secret out of formatted output.
func (k Key) String() string { return "audit.Key(" + k.ID + ")" }

// fingerprint identifies the key in files without naming it.
func (k Key) fingerprint() string {
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte("rampart-audit-key-fingerprint-v1"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Keyring holds the current key (used for new seals or records) and previous
// keys (accepted when reading) so keys can rotate without breaking old files.
type Keyring struct {
	Current  Key
	Previous []Key
}

// Empty reports whether the keyring has no current key.
func (r Keyring) Empty() bool { return len(r.Current.Secret) == 0 }

// Validate checks key sizes and that IDs are set and unique.
func (r Keyring) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, k := range append([]Key{r.Current}, r.Previous...) {
		if k.ID == "" {
			errs = append(errs, errors.New("audit key without id"))
		}
		if len(k.Secret) != KeySize {
			errs = append(errs, fmt.Errorf("audit key %q: secret is %d bytes, want %d", k.ID, len(k.Secret), KeySize))
		}
		if seen[k.ID] {
			errs = append(errs, fmt.Errorf("audit key %q: duplicate id", k.ID))
		}
		seen[k.ID] = true
	}
	return errors.Join(errs...)
}

// lookup returns the key whose fingerprint is fp.
func (r Keyring) lookup(fp string) (Key, error) {
	for _, k := range append([]Key{r.Current}, r.Previous...) {
		if len(k.Secret) > 0 && k.fingerprint() == fp {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("%w: fingerprint %s", ErrUnknownKey, fp)
}

// Keys are the two keyrings a log directory needs: Seal signs segments and
// the prune anchor; Encryption encrypts records when encryption is on.
type Keys struct {
	Seal       Keyring
	Encryption Keyring
}

type keyFileEntry struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
}

type keyFile struct {
	Seal       []keyFileEntry `yaml:"seal_keys"`
	Encryption []keyFileEntry `yaml:"encryption_keys"`
}

// ParseKeyFile reads the key file used by `rampart audit` (YAML or JSON):
//
//	seal_keys:        # first entry is current, the rest are previous
//	  - {id: seal-2026, secret: <base64 of 32 bytes>}
//	encryption_keys:
//	  - {id: enc-2026, secret: <base64 of 32 bytes>}
func ParseKeyFile(b []byte) (Keys, error) {
	var f keyFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Keys{}, fmt.Errorf("parse audit key file: %w", err)
	}
	seal, err := keyringFrom(f.Seal)
	if err != nil {
		return Keys{}, fmt.Errorf("seal_keys: %w", err)
	}
	enc, err := keyringFrom(f.Encryption)
	if err != nil {
		return Keys{}, fmt.Errorf("encryption_keys: %w", err)
	}
	return Keys{Seal: seal, Encryption: enc}, nil
}

func keyringFrom(entries []keyFileEntry) (Keyring, error) {
	if len(entries) == 0 {
		return Keyring{}, nil
	}
	var r Keyring
	for i, e := range entries {
		s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Secret))
		if err != nil {
			return Keyring{}, fmt.Errorf("key %q: secret is not base64: %w", e.ID, err)
		}
		k := Key{ID: e.ID, Secret: s}
		if i == 0 {
			r.Current = k
		} else {
			r.Previous = append(r.Previous, k)
		}
	}
	return r, r.Validate()
}

// KeyFromSecret makes an audit key from a secret as a secret manager holds
// it: a secret of exactly KeySize bytes is used as it is; any other is
// stretched with HKDF-SHA256, so a hex or base64 text of 32 random bytes
// (what `rampart secrets generate` prints) works unchanged. serve and the
// audit commands derive keys the same way from the same configuration.
func KeyFromSecret(id string, secret []byte) (Key, error) {
	if len(secret) == KeySize {
		return Key{ID: id, Secret: bytes.Clone(secret)}, nil
	}
	if len(secret) < KeySize {
		return Key{}, fmt.Errorf("audit key %q: secret is %d bytes, want at least %d", id, len(secret), KeySize)
	}
	k, err := hkdf.Key(sha256.New, secret, nil, "rampart audit key v1", KeySize)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: id, Secret: k}, nil
}
