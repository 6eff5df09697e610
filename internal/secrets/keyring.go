package secrets

import (
	"crypto/sha256"
	"encoding/hex"
	"sync/atomic"
)

// Version is one version of a secret.
type Version struct {
	// ID names the version: the AWS VersionId, the Vault KV version number,
	// or for env, file and inline values a fingerprint of the value (the first
	// 64 bits of a domain-separated SHA-256), identical on every instance.
	// It is safe to publish (a JWT kid, a pepper version in a stored hash).
	ID    string
	Value Secret
}

// ContentID is the version ID derived from a value, used for sources that
// have no version numbers of their own.
func ContentID(value []byte) string {
	h := sha256.New()
	h.Write([]byte("rampart secret version\x00"))
	h.Write(value)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// ring is one immutable keyring state.
type ring struct {
	current  Version
	previous *Version
}

// Keyring holds a secret's current version and, during a rotation overlap,
// its previous one. Readers never block; a rotation swaps both atomically.
// Sign and encrypt with Current; verify and decrypt with All (or Lookup by
// the ID recorded next to the data).
type Keyring struct {
	p atomic.Pointer[ring]
}

// NewKeyring returns a keyring with current and an optional previous version.
func NewKeyring(current Version, previous *Version) *Keyring {
	k := &Keyring{}
	k.store(current, previous)
	return k
}

func (k *Keyring) store(current Version, previous *Version) {
	r := &ring{current: current}
	if previous != nil && previous.ID != current.ID {
		p := *previous
		r.previous = &p
	}
	k.p.Store(r)
}

// Rotate makes next the current version and the current one the previous.
func (k *Keyring) Rotate(next Version) {
	old := k.p.Load()
	if old == nil {
		k.store(next, nil)
		return
	}
	cur := old.current
	k.store(next, &cur)
}

// Current is the version to sign or encrypt with.
func (k *Keyring) Current() Version { return k.p.Load().current }

// Previous is the version being rotated out, if any.
func (k *Keyring) Previous() (Version, bool) {
	r := k.p.Load()
	if r.previous == nil {
		return Version{}, false
	}
	return *r.previous, true
}

// All returns the versions to accept, current first.
func (k *Keyring) All() []Version {
	r := k.p.Load()
	if r.previous == nil {
		return []Version{r.current}
	}
	return []Version{r.current, *r.previous}
}

// Lookup finds a version by ID among current and previous.
func (k *Keyring) Lookup(id string) (Version, bool) {
	r := k.p.Load()
	if r.current.ID == id {
		return r.current, true
	}
	if r.previous != nil && r.previous.ID == id {
		return *r.previous, true
	}
	return Version{}, false
}
