package apikey

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"regexp"
)

// Env is the environment a key belongs to, carried in its prefix.
type Env string

// Environments.
const (
	EnvLive Env = "live"
	EnvTest Env = "test"
)

// Layout of a key; see the package documentation.
const (
	prefixLen   = 8  // "rk_live_"
	idLen       = 12 // public key ID
	secretLen   = 43 // 43 base62 characters carry 256.03 bits
	checksumLen = 6  // 62^6 > 2^32
	bodyLen     = prefixLen + idLen + 1 + secretLen
	// Len is the length of every key in bytes.
	Len = bodyLen + checksumLen
	// IDLen is the length of a key ID.
	IDLen = idLen
)

// LeakPattern is the regular expression that finds Rampart keys in text:
// source trees, logs, chat exports. Matches still need [Parse] to confirm
// the checksum.
const LeakPattern = `\brk_(?:live|test)_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b`

// LeakRegexp is LeakPattern compiled.
var LeakRegexp = regexp.MustCompile(LeakPattern)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Parse errors. Callers that face clients must not tell them which one
// occurred.
var (
	ErrMalformed = errors.New("apikey: malformed key")
	ErrChecksum  = errors.New("apikey: checksum mismatch")
)

// Key is a parsed or generated API key. It holds the secret: its String,
// GoString and LogValue methods redact it, and only Reveal returns it.
type Key struct {
	raw string
}

// Parse checks the format and checksum of s without any lookup or
// allocation. It returns ErrMalformed or ErrChecksum for anything that is
// not a well-formed key.
func Parse(s string) (Key, error) {
	if len(s) != Len || s[0] != 'r' || s[1] != 'k' || s[2] != '_' || s[7] != '_' || s[prefixLen+idLen] != '_' {
		return Key{}, ErrMalformed
	}
	switch s[3:7] {
	case string(EnvLive), string(EnvTest):
	default:
		return Key{}, ErrMalformed
	}
	for i := prefixLen; i < Len; i++ {
		if i == prefixLen+idLen {
			continue
		}
		if !isBase62(s[i]) {
			return Key{}, ErrMalformed
		}
	}
	var want [checksumLen]byte
	encodeChecksum(&want, checksum(s[:bodyLen]))
	if s[bodyLen:] != string(want[:]) {
		return Key{}, ErrChecksum
	}
	return Key{raw: s}, nil
}

// ValidID reports whether id has the form of a key ID. Stores and admin
// handlers use it to refuse garbage before a query.
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isBase62(id[i]) {
			return false
		}
	}
	return true
}

// Generate returns a new key for env, reading the ID and secret from rand
// (crypto/rand.Reader in production).
func Generate(rand io.Reader, env Env) (Key, error) {
	if env != EnvLive && env != EnvTest {
		return Key{}, fmt.Errorf("apikey: unknown environment %q", env)
	}
	var b [Len]byte
	copy(b[:], "rk_"+string(env)+"_")
	if err := fillBase62(rand, b[prefixLen:prefixLen+idLen]); err != nil {
		return Key{}, err
	}
	b[prefixLen+idLen] = '_'
	if err := fillBase62(rand, b[prefixLen+idLen+1:bodyLen]); err != nil {
		return Key{}, err
	}
	var sum [checksumLen]byte
	encodeChecksum(&sum, checksum(string(b[:bodyLen])))
	copy(b[bodyLen:], sum[:])
	return Key{raw: string(b[:])}, nil
}

// ID returns the public key ID. It is not secret.
func (k Key) ID() string {
	if k.raw == "" {
		return ""
	}
	return k.raw[prefixLen : prefixLen+idLen]
}

// Env returns the key's environment.
func (k Key) Env() Env {
	if k.raw == "" {
		return ""
	}
	return Env(k.raw[3:7])
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k.raw == "" }

// Reveal returns the full key text. Call it only to show a new key to its
// owner, once.
func (k Key) Reveal() string { return k.raw }

// String returns the key with its secret redacted.
func (k Key) String() string {
	if k.raw == "" {
		return ""
	}
	return k.raw[:prefixLen+idLen+1] + "[redacted]"
}

// GoString redacts like String so %#v cannot leak the secret.
func (k Key) GoString() string { return "apikey.Key(" + k.String() + ")" }

// LogValue implements slog.LogValuer: only the ID and environment.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID()), slog.String("env", string(k.Env())))
}

// body is the part covered by the checksum and the MAC.
func (k Key) body() string { return k.raw[:bodyLen] }

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// checksum is CRC-32 (IEEE) over s without converting it to []byte.
func checksum(s string) uint32 {
	tab := crc32.IEEETable
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = tab[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

func encodeChecksum(dst *[checksumLen]byte, v uint32) {
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[v%62]
		v /= 62
	}
}

// fillBase62 fills dst with uniformly random base62 characters by rejection
// sampling: bytes >= 248 (= 4*62) are dropped so every character is equally
// likely.
func fillBase62(rand io.Reader, dst []byte) error {
	var buf [64]byte
	for n, reads := 0, 0; n < len(dst); reads++ {
		if reads == 16 {
			return errors.New("apikey: random source is not uniform")
		}
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return fmt.Errorf("apikey: read random: %w", err)
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			dst[n] = alphabet[c%62]
			n++
			if n == len(dst) {
				break
			}
		}
	}
	return nil
}
