package apikey

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Store errors. Key stores (internal/store/sqlite, internal/store/postgres)
// translate their drivers' errors to these, so consumers such as
// internal/auth never import a driver.
var (
	// ErrNotFound means no key has the requested ID.
	ErrNotFound = errors.New("apikey: key not found")
	// ErrConflict means the change is not allowed in the key's current
	// state: a duplicate ID on create, or rotating a key that is revoked or
	// already rotated.
	ErrConflict = errors.New("apikey: conflicting key state")
)

// Record is what a store keeps about one key. It never holds the secret;
// Hash is a keyed MAC of it (see Keyring). Zero times mean "not set".
type Record struct {
	ID            string
	Name          string
	Hash          []byte // HMAC-SHA256(pepper, key body)
	PepperVersion int
	Permissions   reqinfo.Permission
	CreatedAt     time.Time
	CreatedBy     string
	ExpiresAt     time.Time // zero: never expires
	LastUsedAt    time.Time // zero: never used (or not flushed yet)
	RevokedAt     time.Time // zero: not revoked
	RotatedFrom   string    // ID of the key this one replaced
	RotatedAt     time.Time // set on the old key when a successor is issued
	GraceUntil    time.Time // old key keeps working until then after rotation
}

// LogValue implements slog.LogValuer. The hash is left out: it is not the
// secret, but it has no business in a log.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", r.ID),
		slog.String("name", r.Name),
		slog.String("permissions", r.Permissions.String()),
	)
}

// Status is a key's state at a point in time.
type Status uint8

// Statuses, in the order checks apply: a revoked key is revoked even if it
// has also expired.
const (
	StatusActive  Status = iota // usable
	StatusGrace                 // rotated; usable until GraceUntil, deprecated
	StatusRetired               // rotated; grace period over
	StatusExpired               // past ExpiresAt
	StatusRevoked               // revoked
)

var statusNames = [...]string{"active", "grace", "retired", "expired", "revoked"}

// String returns the lowercase status name.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Usable reports whether a key in this status may authenticate.
func (s Status) Usable() bool { return s == StatusActive || s == StatusGrace }

// Status returns the record's state at now.
func (r *Record) Status(now time.Time) Status {
	switch {
	case !r.RevokedAt.IsZero():
		return StatusRevoked
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt):
		return StatusExpired
	case !r.RotatedAt.IsZero() && !now.Before(r.GraceUntil):
		return StatusRetired
	case !r.RotatedAt.IsZero():
		return StatusGrace
	}
	return StatusActive
}

// ParsePermissions parses a comma-separated list of "read", "write" and
// "admin" (e.g. "read,write"). Spaces around names are ignored; an empty
// list or an unknown name is an error.
func ParsePermissions(s string) (reqinfo.Permission, error) {
	var p reqinfo.Permission
	for name := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(name) {
		case "read":
			p |= reqinfo.PermRead
		case "write":
			p |= reqinfo.PermWrite
		case "admin":
			p |= reqinfo.PermAdmin
		default:
			return 0, fmt.Errorf("apikey: unknown permission %q (want read, write or admin)", strings.TrimSpace(name))
		}
	}
	return p, nil
}
