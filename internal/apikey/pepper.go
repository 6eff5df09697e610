package apikey

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
)

// MinPepperLen is the shortest pepper accepted, in bytes.
const MinPepperLen = 32

// Verification errors.
var (
	ErrMismatch           = errors.New("apikey: key does not match its hash")
	ErrUnknownPepper      = errors.New("apikey: hash made with an unknown pepper version")
	errPepperTooShort     = fmt.Errorf("apikey: pepper shorter than %d bytes", MinPepperLen)
	errPepperVersion      = errors.New("apikey: pepper version must be positive")
	errDuplicatePepperVer = errors.New("apikey: duplicate pepper version")
)

// Pepper is one version of the server-side HMAC key. It is secret: String
// and LogValue show only the version.
type Pepper struct {
	Version int
	Secret  []byte
}

// String redacts the secret.
func (p Pepper) String() string { return "pepper v" + strconv.Itoa(p.Version) + " [redacted]" }

// GoString redacts the secret.
func (p Pepper) GoString() string {
	return "apikey.Pepper{Version: " + strconv.Itoa(p.Version) + ", Secret: [redacted]}"
}

// LogValue implements slog.LogValuer without the secret.
func (p Pepper) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("version", p.Version))
}

// pepperState holds the HMAC-SHA256 pads precomputed from a pepper so a
// verification needs no allocation.
type pepperState struct {
	version    int
	ipad, opad [sha256.BlockSize]byte
}

func newPepperState(p Pepper) (*pepperState, error) {
	if p.Version <= 0 {
		return nil, errPepperVersion
	}
	if len(p.Secret) < MinPepperLen {
		return nil, errPepperTooShort
	}
	key := p.Secret
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	s := &pepperState{version: p.Version}
	copy(s.ipad[:], key)
	copy(s.opad[:], key)
	for i := range s.ipad {
		s.ipad[i] ^= 0x36
		s.opad[i] ^= 0x5c
	}
	return s, nil
}

// mac computes HMAC-SHA256(pepper, body) into a stack array.
func (s *pepperState) mac(body string) [sha256.Size]byte {
	var in [sha256.BlockSize + bodyLen]byte
	copy(in[:], s.ipad[:])
	copy(in[sha256.BlockSize:], body)
	inner := sha256.Sum256(in[:])
	var out [sha256.BlockSize + sha256.Size]byte
	copy(out[:], s.opad[:])
	copy(out[sha256.BlockSize:], inner[:])
	return sha256.Sum256(out[:])
}

// Keyring holds the current pepper, used for new hashes, and previous
// peppers, still accepted for verification during a pepper rotation.
// It is safe for concurrent use, and Replace swaps its peppers atomically
// while requests are being verified.
type Keyring struct {
	state atomic.Pointer[keyringState]
}

type keyringState struct {
	current *pepperState
	all     map[int]*pepperState
}

// NewKeyring returns a keyring hashing with current and verifying hashes
// made with current or any of previous.
func NewKeyring(current Pepper, previous ...Pepper) (*Keyring, error) {
	st, err := newKeyringState(current, previous)
	if err != nil {
		return nil, err
	}
	k := &Keyring{}
	k.state.Store(st)
	return k, nil
}

// Replace makes current the pepper for new hashes and accepts hashes made
// with current or any of previous from now on; on error nothing changes.
func (k *Keyring) Replace(current Pepper, previous ...Pepper) error {
	st, err := newKeyringState(current, previous)
	if err != nil {
		return err
	}
	k.state.Store(st)
	return nil
}

func newKeyringState(current Pepper, previous []Pepper) (*keyringState, error) {
	cur, err := newPepperState(current)
	if err != nil {
		return nil, fmt.Errorf("current pepper: %w", err)
	}
	st := &keyringState{current: cur, all: map[int]*pepperState{cur.version: cur}}
	for _, p := range previous {
		s, err := newPepperState(p)
		if err != nil {
			return nil, fmt.Errorf("previous pepper v%d: %w", p.Version, err)
		}
		if _, dup := st.all[s.version]; dup {
			return nil, fmt.Errorf("pepper v%d: %w", s.version, errDuplicatePepperVer)
		}
		st.all[s.version] = s
	}
	return st, nil
}

// VersionFromID maps a secret manager's version ID (an AWS VersionId, a
// Vault version, a content fingerprint) to the positive pepper version
// stored next to each hash. Every instance computes the same number.
func VersionFromID(id string) int {
	sum := sha256.Sum256([]byte("rampart pepper version\x00" + id))
	return int(binary.BigEndian.Uint32(sum[:4])&0x7fffffff) | 1
}

// CurrentVersion is the version of the pepper new hashes are made with.
func (k *Keyring) CurrentVersion() int { return k.state.Load().current.version }

// Hash returns HMAC-SHA256 of the key under the current pepper, and that
// pepper's version, for storing in a Record.
func (k *Keyring) Hash(key Key) (hash []byte, version int) {
	cur := k.state.Load().current
	sum := cur.mac(key.body())
	return sum[:], cur.version
}

// Verify checks key against a stored hash made with pepper version. It
// compares in constant time and returns nil, ErrMismatch or
// ErrUnknownPepper. It does not allocate.
func (k *Keyring) Verify(key Key, hash []byte, version int) error {
	if key.raw == "" {
		return ErrMismatch
	}
	st := k.state.Load()
	s := st.current
	if version != s.version {
		s = st.all[version]
		if s == nil {
			return ErrUnknownPepper
		}
	}
	sum := s.mac(key.body())
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return ErrMismatch
	}
	return nil
}

// NeedsRehash reports whether a hash made with pepper version should be
// replaced by one under the current pepper.
func (k *Keyring) NeedsRehash(version int) bool { return version != k.state.Load().current.version }
