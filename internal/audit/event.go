package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Event types. The names are stable: alert rules and investigations match on them.
const (
	TypeAuthSuccess        = "auth.success"
	TypeAuthFailure        = "auth.failure"
	TypeAuthzFailure       = "authz.failure"
	TypeRequest            = "request"
	TypeKeyCreated         = "key.created"
	TypeKeyRevoked         = "key.revoked"
	TypeKeyRotated         = "key.rotated"
	TypeUserCreated        = "user.created"
	TypeUserUpdated        = "user.updated"
	TypeUserLocked         = "user.locked"
	TypeUserUnlocked       = "user.unlocked"
	TypeUserDeleted        = "user.deleted"
	TypeUserExported       = "user.exported"
	TypeSessionCreated     = "session.created"
	TypeSessionRevoked     = "session.revoked"
	TypeSessionExpired     = "session.expired"
	TypeMFAEnrolled        = "mfa.enrolled"
	TypeMFASuccess         = "mfa.success"
	TypeMFAFailure         = "mfa.failure"
	TypeMFAReset           = "mfa.reset"
	TypeMFABackupCodeUsed  = "mfa.backup_code_used"
	TypeConfigLoaded       = "config.loaded"
	TypeConfigReloaded     = "config.reloaded"
	TypeRateLimitViolation = "ratelimit.violation"
	TypeWSOpened           = "ws.opened"
	TypeWSClosed           = "ws.closed"
	TypeSecretRotated      = "secret.rotated"
	TypeAuditPruned        = "audit.pruned"
)

// Outcomes used when the caller has no more specific reason.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// ErrInvalidEvent is returned by Logger.Record for an event that cannot be
// recorded (no type, or details that do not encode as JSON).
var ErrInvalidEvent = errors.New("invalid audit event")

// Event is one audit record. The JSON field names follow the rideshare
// checklist's example (timestamp, event_type, user, source_ip, details) plus
// request_id, route and outcome. User is a principal identifier (a key ID, a
// key-hash prefix or a user ID), never a credential. Details never carry a
// request or response body or a secret.
type Event struct {
	Timestamp time.Time      `json:"timestamp"`
	Type      string         `json:"event_type"`
	User      string         `json:"user,omitempty"`
	SourceIP  netip.Addr     `json:"source_ip,omitzero"`
	RequestID string         `json:"request_id,omitempty"`
	Route     string         `json:"route,omitempty"`
	Outcome   string         `json:"outcome,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// Entry is an event as sinks receive it: the event and its canonical JSON
// encoding (what the chain hashes and what Export returns).
type Entry struct {
	Event Event
	JSON  []byte
}

// NewEvent returns an event of type typ filled from the request's Info (request
// ID, client IP, route, principal, outcome). info may be nil.
func NewEvent(typ string, info *reqinfo.Info) Event {
	ev := Event{Type: typ}
	if info == nil {
		return ev
	}
	ev.RequestID = info.ID
	ev.SourceIP = info.ClientIP
	ev.Route = info.Route
	ev.Outcome = info.Outcome
	ev.User = info.Principal.ID
	return ev
}

// encode validates ev, sets a missing timestamp from now and returns its entry.
func encode(ev Event, now func() time.Time) (Entry, error) {
	if ev.Type == "" {
		return Entry{}, fmt.Errorf("%w: empty event_type", ErrInvalidEvent)
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now()
	}
	ev.Timestamp = ev.Timestamp.UTC()
	b, err := json.Marshal(ev)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return Entry{Event: ev, JSON: b}, nil
}

// Masked replaces secret setting values in configuration events.
const Masked = "<masked>"

// SettingChange is one changed setting in a config.loaded or config.reloaded event.
type SettingChange struct {
	Setting string `json:"setting"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`
}

// IsSecretSetting reports whether a flattened setting name (for example
// "auth.jwt_secret" or "store.postgres_url") names a secret-bearing value.
// It is the default masking rule of ConfigEvent.
func IsSecretSetting(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"secret", "password", "passwd", "token", "pepper", "key", "dsn", "url", "credential", "private"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// ConfigEvent builds a config.loaded (old == nil) or config.reloaded event
// listing the settings that changed between two flattened configurations.
// Values of settings for which isSecret returns true are replaced by Masked
// (a nil isSecret means IsSecretSetting); a changed secret shows only that it
// changed.
func ConfigEvent(old, cur map[string]string, isSecret func(string) bool) Event {
	if isSecret == nil {
		isSecret = IsSecretSetting
	}
	typ := TypeConfigReloaded
	if old == nil {
		typ = TypeConfigLoaded
	}
	names := map[string]struct{}{}
	for k := range old {
		names[k] = struct{}{}
	}
	for k := range cur {
		names[k] = struct{}{}
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	changes := []SettingChange{}
	for _, k := range sorted {
		o, hadOld := old[k]
		n, hasNew := cur[k]
		if hadOld == hasNew && o == n {
			continue
		}
		c := SettingChange{Setting: k, Old: o, New: n}
		if isSecret(k) {
			if hadOld && o != "" {
				c.Old = Masked
			}
			if hasNew && n != "" {
				c.New = Masked
			}
		}
		changes = append(changes, c)
	}
	return Event{Type: typ, Outcome: OutcomeOK, Details: map[string]any{"changed": changes}}
}
