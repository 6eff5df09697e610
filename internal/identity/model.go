package identity

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Store errors. Backends (internal/store/sqlite, internal/store/postgres)
// translate their drivers' errors to these, so this package never imports a
// driver.
var (
	// ErrNotFound means no row matched: unknown user, session or token, or
	// a single-use item (backup code, reset token) already used.
	ErrNotFound = errors.New("identity: not found")
	// ErrConflict means the change clashes with what is stored: a duplicate
	// username or ID, or a TOTP time step not newer than the last one used.
	ErrConflict = errors.New("identity: conflict")
)

// Status is an account's state.
type Status string

// Account states. A locked account is locked by an operator (rampart users
// lock) until unlocked; automatic lockout after failed logins sets
// User.LockedUntil instead and ends by itself.
const (
	StatusActive   Status = "active"
	StatusLocked   Status = "locked"
	StatusDisabled Status = "disabled"
)

// Valid reports whether s is one of the defined states.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusLocked || s == StatusDisabled
}

// User is what a store keeps about one person. Zero times mean "not set".
type User struct {
	ID           string
	Username     string // lower case, unique
	Email        string
	PasswordHash []byte // bcrypt
	Status       Status
	Roles        []string
	// TOTPSecret is the confirmed base32 TOTP secret; empty when MFA is
	// not enrolled. TOTPPending holds a secret between enrol and confirm.
	TOTPSecret  string
	TOTPPending string
	// TOTPLastStep is the last RFC 6238 time step accepted, so a code is
	// never accepted twice.
	TOTPLastStep      int64
	CreatedAt         time.Time
	UpdatedAt         time.Time
	LastLoginAt       time.Time
	PasswordChangedAt time.Time
	LockedUntil       time.Time // automatic lockout end; zero when not locked out
}

// MFAEnabled reports whether the user has a confirmed TOTP secret.
func (u User) MFAEnabled() bool { return u.TOTPSecret != "" }

// LogValue implements slog.LogValuer without the hash or TOTP secrets.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.String("username", u.Username))
}

// Session is one login: the family of its refresh tokens. Revoking the
// session ends every access and refresh token issued for it.
type Session struct {
	ID         string
	UserID     string
	CreatedAt  time.Time
	LastSeenAt time.Time // last login or refresh
	ExpiresAt  time.Time // absolute end
	RevokedAt  time.Time // zero while live
	MFA        bool      // a second factor was presented
	ClientIP   string
	UserAgent  string
}

// RefreshToken is a stored refresh token. Only a SHA-256 hash of the
// opaque token is kept.
type RefreshToken struct {
	Hash      []byte
	SessionID string
	UserID    string
	IssuedAt  time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until rotated
}

// ResetToken is a one-time password reset token, stored as a SHA-256 hash.
type ResetToken struct {
	Hash      []byte
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// TrustedDevice is a device on which the user chose to skip MFA until
// ExpiresAt. Only a SHA-256 hash of its random token is stored.
type TrustedDevice struct {
	Hash      []byte
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
	UserAgent string
}

// BackupCode is one stored MFA backup code (SHA-256 hash).
type BackupCode struct {
	Hash   []byte
	UsedAt time.Time
}

// Failure counter kinds for CountFailure.
const (
	FailureLogin = "login"
	FailureMFA   = "mfa"
)

// UserStore keeps accounts and their second factors.
type UserStore interface {
	// CreateUser inserts u; a duplicate ID or username is ErrConflict.
	CreateUser(ctx context.Context, u User) error
	// LookupUser and LookupUsername return ErrNotFound for no match.
	LookupUser(ctx context.Context, id string) (User, error)
	LookupUsername(ctx context.Context, username string) (User, error)
	// ListUsers returns every user ordered by username.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser replaces username, email, password hash, status, roles,
	// TOTP secrets, updated and password-changed times of u.ID.
	UpdateUser(ctx context.Context, u User) error
	// SetLockedUntil sets (or with the zero time clears) automatic lockout.
	SetLockedUntil(ctx context.Context, userID string, until time.Time) error
	// SetLastLogin records a successful login.
	SetLastLogin(ctx context.Context, userID string, at time.Time) error
	// DeleteUser erases the user and everything that refers to it.
	DeleteUser(ctx context.Context, userID string) error
	// CountFailure atomically records one failure of kind at at and returns
	// the number of failures in the current window: the count restarts at
	// 1 when the window that began with the first counted failure is over.
	CountFailure(ctx context.Context, userID, kind string, at time.Time, window time.Duration) (int, error)
	// FailureCount returns the failures of kind still inside window at at.
	FailureCount(ctx context.Context, userID, kind string, at time.Time, window time.Duration) (int, error)
	// ResetFailures clears the counter of kind.
	ResetFailures(ctx context.Context, userID, kind string) error
	// UseTOTPStep records step as the last accepted TOTP step. A step not
	// greater than the stored one is ErrConflict (a replayed code).
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	// ReplaceBackupCodes removes the user's backup codes and stores hashes.
	ReplaceBackupCodes(ctx context.Context, userID string, hashes [][]byte) error
	// UseBackupCode marks the unused code with hash used at at; an unknown
	// or used code is ErrNotFound.
	UseBackupCode(ctx context.Context, userID string, hash []byte, at time.Time) error
	// ListBackupCodes returns the user's codes, used and unused.
	ListBackupCodes(ctx context.Context, userID string) ([]BackupCode, error)
	// CreateResetToken stores a password reset token.
	CreateResetToken(ctx context.Context, t ResetToken) error
	// ConsumeResetToken marks the unused, unexpired token with hash used at
	// at and returns it; anything else is ErrNotFound.
	ConsumeResetToken(ctx context.Context, hash []byte, at time.Time) (ResetToken, error)
	// CreateTrustedDevice stores a trusted device.
	CreateTrustedDevice(ctx context.Context, d TrustedDevice) error
	// LookupTrustedDevice returns the device with hash (revoked and
	// expired ones too), or ErrNotFound.
	LookupTrustedDevice(ctx context.Context, hash []byte) (TrustedDevice, error)
	// ListTrustedDevices returns the user's devices, oldest first.
	ListTrustedDevices(ctx context.Context, userID string) ([]TrustedDevice, error)
	// RevokeTrustedDevices revokes every unrevoked device of the user and
	// returns how many.
	RevokeTrustedDevices(ctx context.Context, userID string, at time.Time) (int, error)
}

// SessionStore keeps sessions and their refresh tokens.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error
	LookupSession(ctx context.Context, id string) (Session, error)
	// ListSessions returns every stored session of the user, revoked and
	// expired ones included, oldest first.
	ListSessions(ctx context.Context, userID string) ([]Session, error)
	// TouchSession sets LastSeenAt.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// RevokeSession marks the session revoked (the first time wins).
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeUserSessions revokes every live session of the user except
	// exceptID (empty: all) and returns how many it revoked.
	RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time) (int, error)
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// ConsumeRefreshToken atomically marks the token with hash used at at.
	// It returns the token and true when this call used it; when it had
	// been used before, the stored token (UsedAt set) and false. An
	// unknown hash is ErrNotFound.
	ConsumeRefreshToken(ctx context.Context, hash []byte, at time.Time) (RefreshToken, bool, error)
	// PruneSessions deletes sessions that expired or were revoked before
	// before, with their refresh tokens, and returns how many.
	PruneSessions(ctx context.Context, before time.Time) (int, error)
}

// Store is everything identity needs from a backend; *sqlite.Store and
// *postgres.Store satisfy it.
type Store interface {
	UserStore
	SessionStore
}
