// Package admin is the API key lifecycle: create (the secret is shown
// once), list, show, revoke, rotate with a grace period, and the periodic
// access review. Manager holds the operations, shared by the `rampart keys`
// commands and by the JSON admin API that Handler serves.
package admin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Store is the key store the lifecycle needs. Errors wrap
// apikey.ErrNotFound and apikey.ErrConflict where they apply.
type Store interface {
	CreateKey(ctx context.Context, rec apikey.Record) error
	LookupKey(ctx context.Context, id string) (apikey.Record, error)
	ListKeys(ctx context.Context) ([]apikey.Record, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	RotateKey(ctx context.Context, oldID string, at, graceUntil time.Time, successor apikey.Record) error
}

// Change describes a lifecycle change, for cache invalidation across
// instances and for audit.
type Change struct {
	Action   string // "create", "revoke" or "rotate"
	KeyID    string // the key created, revoked or rotated
	NewKeyID string // the successor, for "rotate"
	Actor    string // who did it, as recorded in created_by
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	Store   Store           // required
	Keyring *apikey.Keyring // required to create and rotate keys
	Rand    io.Reader       // nil means crypto/rand.Reader
	Now     func() time.Time
	Env     apikey.Env // prefix of new keys; default apikey.EnvLive
	// OnChange runs after a successful change. The integrator uses it to
	// call auth.Authenticator.Invalidate, publish the ID to other
	// instances and write an audit event.
	OnChange func(ctx context.Context, c Change)
	// MaxGrace bounds rotation grace periods. Default 30 days.
	MaxGrace time.Duration
}

// Manager runs key lifecycle operations.
type Manager struct {
	store    Store
	keyring  *apikey.Keyring
	rand     io.Reader
	now      func() time.Time
	env      apikey.Env
	onChange func(ctx context.Context, c Change)
	maxGrace time.Duration
}

// Errors returned by Manager besides the store's.
var (
	ErrInvalid = errors.New("admin: invalid request")
	// ErrNoKeyring means the manager was built without a keyring and cannot
	// create or rotate keys.
	ErrNoKeyring = errors.New("admin: no pepper configured")
)

// NewManager returns a Manager.
func NewManager(o ManagerOptions) (*Manager, error) {
	if o.Store == nil {
		return nil, errors.New("admin: ManagerOptions.Store is required")
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Env == "" {
		o.Env = apikey.EnvLive
	}
	if o.Env != apikey.EnvLive && o.Env != apikey.EnvTest {
		return nil, fmt.Errorf("admin: unknown key environment %q", o.Env)
	}
	if o.MaxGrace == 0 {
		o.MaxGrace = 30 * 24 * time.Hour
	}
	return &Manager{store: o.Store, keyring: o.Keyring, rand: o.Rand, now: o.Now, env: o.Env, onChange: o.OnChange, maxGrace: o.MaxGrace}, nil
}

// Issued is a newly created key: its record and the key itself, which
// must be shown to its owner once and then forgotten. String and LogValue
// never include the secret.
type Issued struct {
	Record apikey.Record
	Key    apikey.Key
}

// LogValue implements slog.LogValuer without the secret.
func (i Issued) LogValue() slog.Value { return i.Record.LogValue() }

// String identifies the key without its secret.
func (i Issued) String() string { return "issued key " + i.Record.ID }

// CreateParams describe a new key.
type CreateParams struct {
	Name        string
	Permissions reqinfo.Permission
	ExpiresAt   time.Time // zero: never expires (flagged by the review)
	CreatedBy   string
}

const maxNameLen = 128

func validName(name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%w: name is required", ErrInvalid)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: name longer than %d bytes", ErrInvalid, maxNameLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: name contains control characters", ErrInvalid)
		}
	}
	return nil
}

// Create issues a new key.
func (m *Manager) Create(ctx context.Context, p CreateParams) (Issued, error) {
	if err := validName(p.Name); err != nil {
		return Issued{}, err
	}
	if p.Permissions == 0 || p.Permissions&^(reqinfo.PermRead|reqinfo.PermWrite|reqinfo.PermAdmin) != 0 {
		return Issued{}, fmt.Errorf("%w: permissions must be a non-empty set of read, write, admin", ErrInvalid)
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	if !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now) {
		return Issued{}, fmt.Errorf("%w: expiry is in the past", ErrInvalid)
	}
	iss, err := m.issue(p.Name, p.Permissions, now, p.ExpiresAt, p.CreatedBy)
	if err != nil {
		return Issued{}, err
	}
	if err := m.store.CreateKey(ctx, iss.Record); err != nil {
		return Issued{}, fmt.Errorf("create key: %w", err)
	}
	m.changed(ctx, Change{Action: "create", KeyID: iss.Record.ID, Actor: p.CreatedBy})
	return iss, nil
}

func (m *Manager) issue(name string, perm reqinfo.Permission, now, expires time.Time, by string) (Issued, error) {
	if m.keyring == nil {
		return Issued{}, ErrNoKeyring
	}
	key, err := apikey.Generate(m.rand, m.env)
	if err != nil {
		return Issued{}, fmt.Errorf("generate key: %w", err)
	}
	hash, version := m.keyring.Hash(key)
	rec := apikey.Record{
		ID:            key.ID(),
		Name:          name,
		Hash:          hash,
		PepperVersion: version,
		Permissions:   perm,
		CreatedAt:     now,
		CreatedBy:     by,
	}
	if !expires.IsZero() {
		rec.ExpiresAt = expires.UTC().Truncate(time.Microsecond)
	}
	return Issued{Record: rec, Key: key}, nil
}

func (m *Manager) changed(ctx context.Context, c Change) {
	if m.onChange != nil {
		m.onChange(ctx, c)
	}
}

// List returns every key, oldest first.
func (m *Manager) List(ctx context.Context) ([]apikey.Record, error) {
	recs, err := m.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return recs, nil
}

// Show returns one key. A malformed ID is apikey.ErrNotFound.
func (m *Manager) Show(ctx context.Context, id string) (apikey.Record, error) {
	if !apikey.ValidID(id) {
		return apikey.Record{}, fmt.Errorf("show key: %w", apikey.ErrNotFound)
	}
	rec, err := m.store.LookupKey(ctx, id)
	if err != nil {
		return apikey.Record{}, fmt.Errorf("show key: %w", err)
	}
	return rec, nil
}

// Revoke revokes a key at once and returns its record. Revoking a revoked
// key keeps the first revocation time.
func (m *Manager) Revoke(ctx context.Context, id, actor string) (apikey.Record, error) {
	if !apikey.ValidID(id) {
		return apikey.Record{}, fmt.Errorf("revoke key: %w", apikey.ErrNotFound)
	}
	if err := m.store.RevokeKey(ctx, id, m.now().UTC()); err != nil {
		return apikey.Record{}, fmt.Errorf("revoke key: %w", err)
	}
	m.changed(ctx, Change{Action: "revoke", KeyID: id, Actor: actor})
	rec, err := m.store.LookupKey(ctx, id)
	if err != nil {
		return apikey.Record{}, fmt.Errorf("revoke key: %w", err)
	}
	return rec, nil
}

// RotateParams describe a rotation.
type RotateParams struct {
	// Grace is how long the old key keeps working. Zero retires it at once.
	Grace time.Duration
	// ExpiresAt is the successor's expiry. Zero gives it the old key's
	// lifetime (ExpiresAt - CreatedAt) from now, or no expiry if the old
	// key had none.
	ExpiresAt time.Time
	Actor     string
}

// Rotate issues a successor with the old key's name and permissions and
// lets the old key work until the grace period ends. Only an active key
// can be rotated; otherwise the error wraps apikey.ErrConflict.
func (m *Manager) Rotate(ctx context.Context, id string, p RotateParams) (successor Issued, old apikey.Record, err error) {
	if p.Grace < 0 || p.Grace > m.maxGrace {
		return Issued{}, apikey.Record{}, fmt.Errorf("%w: grace must be between 0 and %s", ErrInvalid, m.maxGrace)
	}
	old, err = m.Show(ctx, id)
	if err != nil {
		return Issued{}, apikey.Record{}, fmt.Errorf("rotate key: %w", err)
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	if st := old.Status(now); st != apikey.StatusActive {
		return Issued{}, apikey.Record{}, fmt.Errorf("rotate key %s: key is %s: %w", id, st, apikey.ErrConflict)
	}
	expires := p.ExpiresAt
	if expires.IsZero() && !old.ExpiresAt.IsZero() {
		expires = now.Add(old.ExpiresAt.Sub(old.CreatedAt))
	}
	if !expires.IsZero() && !expires.After(now) {
		return Issued{}, apikey.Record{}, fmt.Errorf("%w: expiry is in the past", ErrInvalid)
	}
	successor, err = m.issue(old.Name, old.Permissions, now, expires, p.Actor)
	if err != nil {
		return Issued{}, apikey.Record{}, err
	}
	successor.Record.RotatedFrom = old.ID
	graceUntil := now.Add(p.Grace)
	if err := m.store.RotateKey(ctx, old.ID, now, graceUntil, successor.Record); err != nil {
		return Issued{}, apikey.Record{}, fmt.Errorf("rotate key: %w", err)
	}
	m.changed(ctx, Change{Action: "rotate", KeyID: old.ID, NewKeyID: successor.Record.ID, Actor: p.Actor})
	old.RotatedAt, old.GraceUntil = now, graceUntil
	return successor, old, nil
}

// ReviewParams set the thresholds of an access review.
type ReviewParams struct {
	UnusedDays   int // flag keys not used for this many days (0: default 90)
	ExpiringDays int // flag keys expiring within this many days (0: default 30)
}

// Finding kinds.
const (
	FindingUnused   = "unused"    // not used for UnusedDays (or never, and older than that)
	FindingExpiring = "expiring"  // expires within ExpiringDays
	FindingAdmin    = "admin"     // holds admin permission
	FindingNoExpiry = "no_expiry" // never expires
	FindingInGrace  = "in_grace"  // rotated; old key still works
)

// Finding is one item of an access review.
type Finding struct {
	KeyID  string `json:"key_id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Review is the result of an access review over the usable keys.
type Review struct {
	GeneratedAt  time.Time `json:"generated_at"`
	UnusedDays   int       `json:"unused_days"`
	ExpiringDays int       `json:"expiring_days"`
	ActiveKeys   int       `json:"active_keys"`
	Findings     []Finding `json:"findings"`
}

// Review lists what a periodic access review must look at: keys unused
// for UnusedDays, expiring within ExpiringDays, admin keys, keys without
// expiry, and rotated keys still in their grace period. Revoked, expired
// and retired keys are not reviewed: they cannot be used.
func (m *Manager) Review(ctx context.Context, p ReviewParams) (Review, error) {
	if p.UnusedDays < 0 || p.ExpiringDays < 0 {
		return Review{}, fmt.Errorf("%w: day counts must not be negative", ErrInvalid)
	}
	if p.UnusedDays == 0 {
		p.UnusedDays = 90
	}
	if p.ExpiringDays == 0 {
		p.ExpiringDays = 30
	}
	recs, err := m.List(ctx)
	if err != nil {
		return Review{}, err
	}
	now := m.now().UTC()
	day := 24 * time.Hour
	unusedCut := now.Add(-time.Duration(p.UnusedDays) * day)
	expiringCut := now.Add(time.Duration(p.ExpiringDays) * day)
	rv := Review{GeneratedAt: now, UnusedDays: p.UnusedDays, ExpiringDays: p.ExpiringDays, Findings: []Finding{}}
	for _, r := range recs {
		st := r.Status(now)
		if !st.Usable() {
			continue
		}
		rv.ActiveKeys++
		add := func(kind, detail string) {
			rv.Findings = append(rv.Findings, Finding{KeyID: r.ID, Name: r.Name, Kind: kind, Detail: detail})
		}
		switch {
		case r.LastUsedAt.IsZero() && r.CreatedAt.Before(unusedCut):
			add(FindingUnused, fmt.Sprintf("never used since creation on %s", r.CreatedAt.Format(time.DateOnly)))
		case !r.LastUsedAt.IsZero() && r.LastUsedAt.Before(unusedCut):
			add(FindingUnused, fmt.Sprintf("last used %s, over %d days ago", r.LastUsedAt.Format(time.DateOnly), p.UnusedDays))
		}
		if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(expiringCut) {
			add(FindingExpiring, fmt.Sprintf("expires %s", r.ExpiresAt.Format(time.RFC3339)))
		}
		if r.ExpiresAt.IsZero() {
			add(FindingNoExpiry, "never expires")
		}
		if r.Permissions&reqinfo.PermAdmin != 0 {
			add(FindingAdmin, "holds admin permission")
		}
		if st == apikey.StatusGrace {
			add(FindingInGrace, fmt.Sprintf("rotated; old key works until %s", r.GraceUntil.Format(time.RFC3339)))
		}
	}
	sort.SliceStable(rv.Findings, func(i, j int) bool { return rv.Findings[i].Kind < rv.Findings[j].Kind })
	return rv, nil
}
