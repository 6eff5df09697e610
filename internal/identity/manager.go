package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// DefaultRoles maps the built-in role names to permissions.
func DefaultRoles() map[string]reqinfo.Permission {
	return map[string]reqinfo.Permission{
		"read":  reqinfo.PermRead,
		"write": reqinfo.PermWrite,
		"admin": reqinfo.PermAdmin,
	}
}

// DefaultResetTTL is how long a password reset token stays usable.
const DefaultResetTTL = time.Hour

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Store keeps users and sessions. Required.
	Store Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the randomness source for IDs, tokens and generated
	// passwords; nil means crypto/rand.
	Rand io.Reader
	// BcryptCost for new password hashes. Default 12; tests use
	// bcrypt.MinCost.
	BcryptCost int
	// Policy for new passwords.
	Policy PasswordPolicy
	// Roles maps role names to permissions. Default DefaultRoles().
	Roles map[string]reqinfo.Permission
	// ResetTTL is the lifetime of a password reset token. Default 1h.
	ResetTTL time.Duration
	// OnEvent, if set, receives EventUserSessionsRevoked when an account
	// change (lock, disable, reset, password change, delete) ends
	// sessions, so WebSockets of those sessions can be closed.
	OnEvent func(context.Context, Event)
}

// Manager administers accounts: create, lock, unlock, reset, export and
// erase. The CLI uses it directly; the HTTP handler uses it through
// Service.
type Manager struct {
	store    Store
	now      func() time.Time
	rand     io.Reader
	cost     int
	policy   PasswordPolicy
	roles    map[string]reqinfo.Permission
	resetTTL time.Duration
	onEvent  func(context.Context, Event)
}

// NewManager checks opts and returns a Manager.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("identity: no store")
	}
	m := &Manager{store: opts.Store, now: opts.Now, rand: opts.Rand, cost: opts.BcryptCost,
		policy: opts.Policy, roles: opts.Roles, resetTTL: opts.ResetTTL, onEvent: opts.OnEvent}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.cost == 0 {
		m.cost = DefaultBcryptCost
	}
	if m.cost < 4 || m.cost > 31 {
		return nil, fmt.Errorf("identity: bcrypt cost %d outside 4..31", m.cost)
	}
	if m.policy.MinLength == 0 {
		m.policy.MinLength = DefaultMinPasswordLength
	}
	if m.policy.MinLength < 8 {
		return nil, fmt.Errorf("identity: minimum password length %d is below 8", m.policy.MinLength)
	}
	if m.roles == nil {
		m.roles = DefaultRoles()
	}
	if m.resetTTL == 0 {
		m.resetTTL = DefaultResetTTL
	}
	if m.resetTTL < 0 {
		return nil, errors.New("identity: negative reset token lifetime")
	}
	return m, nil
}

// ErrInvalid is wrapped by Manager errors about bad input (username,
// roles, e-mail, status) as opposed to store failures.
var ErrInvalid = errors.New("identity: invalid input")

// NewUser is the input to Manager.Create.
type NewUser struct {
	Username string
	Email    string
	Password string
	Roles    []string
}

// CanonicalUsername lower-cases name and checks it: 1 to 64 characters of
// a-z, 0-9, '.', '_', '-' and '@', starting with a letter or digit.
func CanonicalUsername(name string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || len(name) > 64 {
		return "", errors.New("username must be 1 to 64 characters")
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '.' || c == '_' || c == '-' || c == '@'
		}
		if !ok {
			return "", fmt.Errorf("username %q: use a-z, 0-9, '.', '_', '-', '@', starting with a letter or digit", name)
		}
	}
	return name, nil
}

// Permissions returns the permissions roles grant; unknown roles grant
// nothing.
func (m *Manager) Permissions(roles []string) reqinfo.Permission {
	var p reqinfo.Permission
	for _, r := range roles {
		p |= m.roles[r]
	}
	return p
}

// RoleNames returns the configured role names, sorted.
func (m *Manager) RoleNames() []string { return slices.Sorted(maps.Keys(m.roles)) }

func (m *Manager) checkRoles(roles []string) ([]string, error) {
	out := []string{}
	for _, r := range roles {
		r = strings.TrimSpace(strings.ToLower(r))
		if r == "" {
			continue
		}
		if _, ok := m.roles[r]; !ok {
			return nil, fmt.Errorf("unknown role %q (have %s)", r, strings.Join(m.RoleNames(), ", "))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Create checks the username, roles and password policy and stores a new
// active user. A taken username is ErrConflict.
func (m *Manager) Create(ctx context.Context, nu NewUser) (User, error) {
	name, err := CanonicalUsername(nu.Username)
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	roles, err := m.checkRoles(nu.Roles)
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(nu.Email) > 254 || strings.ContainsAny(nu.Email, " \t\r\n") {
		return User{}, fmt.Errorf("%w: e-mail address too long or contains spaces", ErrInvalid)
	}
	if err := m.policy.Check(name, nu.Password); err != nil {
		return User{}, err
	}
	hash, err := hashPassword(nu.Password, m.cost)
	if err != nil {
		return User{}, err
	}
	id, err := randomID(m.rand, "u_", 10)
	if err != nil {
		return User{}, err
	}
	now := m.now().UTC()
	u := User{ID: id, Username: name, Email: nu.Email, PasswordHash: hash, Status: StatusActive,
		Roles: roles, CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
	if err := m.store.CreateUser(ctx, u); err != nil {
		return User{}, fmt.Errorf("create user %s: %w", name, err)
	}
	return u, nil
}

// GeneratePassword returns a random 20-character password (100 bits) that
// passes the policy for username.
func (m *Manager) GeneratePassword(username string) (string, error) {
	for range 8 {
		p, err := randomID(m.rand, "", 13)
		if err != nil {
			return "", err
		}
		p = p[:20]
		if m.policy.Check(username, p) == nil {
			return p, nil
		}
	}
	return "", errors.New("could not generate a password that passes the policy")
}

// Get returns the user called username.
func (m *Manager) Get(ctx context.Context, username string) (User, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	u, err := m.store.LookupUsername(ctx, name)
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", name, err)
	}
	return u, nil
}

// List returns every user ordered by username.
func (m *Manager) List(ctx context.Context) ([]User, error) {
	us, err := m.store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// SetStatus changes the user's status. Locking or disabling revokes every
// session, so access ends at once.
func (m *Manager) SetStatus(ctx context.Context, username string, st Status) error {
	if !st.Valid() {
		return fmt.Errorf("%w: unknown status %q", ErrInvalid, st)
	}
	u, err := m.Get(ctx, username)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	u.Status = st
	u.UpdatedAt = now
	if err := m.store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("set status of %s: %w", u.Username, err)
	}
	if st != StatusActive {
		if err := m.revokeAll(ctx, u, "", now); err != nil {
			return err
		}
	}
	return nil
}

// SetRoles replaces the user's roles and ends their sessions, since access
// tokens carry the roles they were issued with.
func (m *Manager) SetRoles(ctx context.Context, username string, roles []string) error {
	rs, err := m.checkRoles(roles)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	u, err := m.Get(ctx, username)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	u.Roles, u.UpdatedAt = rs, now
	if err := m.store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("set roles of %s: %w", u.Username, err)
	}
	return m.revokeAll(ctx, u, "", now)
}

// revokeAll ends every session of u except keep and reports it.
func (m *Manager) revokeAll(ctx context.Context, u User, keep string, now time.Time) error {
	if _, err := m.store.RevokeUserSessions(ctx, u.ID, keep, now); err != nil {
		return fmt.Errorf("revoke sessions of %s: %w", u.Username, err)
	}
	m.emit(ctx, Event{Type: EventUserSessionsRevoked, UserID: u.ID, Username: u.Username, SessionID: keep})
	return nil
}

func (m *Manager) emit(ctx context.Context, ev Event) {
	if m.onEvent != nil {
		m.onEvent(ctx, ev)
	}
}

// Lock locks the account until Unlock and ends its sessions.
func (m *Manager) Lock(ctx context.Context, username string) error {
	return m.SetStatus(ctx, username, StatusLocked)
}

// Unlock makes the account active and clears automatic lockout and the
// failed login and MFA counters.
func (m *Manager) Unlock(ctx context.Context, username string) error {
	if err := m.SetStatus(ctx, username, StatusActive); err != nil {
		return err
	}
	u, err := m.Get(ctx, username)
	if err != nil {
		return err
	}
	if err := m.store.SetLockedUntil(ctx, u.ID, time.Time{}); err != nil {
		return fmt.Errorf("unlock %s: %w", u.Username, err)
	}
	for _, kind := range []string{FailureLogin, FailureMFA} {
		if err := m.store.ResetFailures(ctx, u.ID, kind); err != nil {
			return fmt.Errorf("unlock %s: %w", u.Username, err)
		}
	}
	return nil
}

// ResetMFA removes the user's TOTP secret and backup codes and ends their
// sessions; they enrol again at next login.
func (m *Manager) ResetMFA(ctx context.Context, username string) error {
	u, err := m.Get(ctx, username)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	u.TOTPSecret, u.TOTPPending, u.UpdatedAt = "", "", now
	if err := m.store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("reset MFA of %s: %w", u.Username, err)
	}
	if err := m.store.ReplaceBackupCodes(ctx, u.ID, nil); err != nil {
		return fmt.Errorf("reset MFA of %s: %w", u.Username, err)
	}
	if _, err := m.store.RevokeTrustedDevices(ctx, u.ID, now); err != nil {
		return fmt.Errorf("reset MFA of %s: %w", u.Username, err)
	}
	if err := m.revokeAll(ctx, u, "", now); err != nil {
		return err
	}
	return nil
}

// ResetPasswordToken issues a one-time password reset token for the user,
// valid for ResetTTL. The token is shown once; only its hash is stored.
func (m *Manager) ResetPasswordToken(ctx context.Context, username string) (string, time.Time, error) {
	u, err := m.Get(ctx, username)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, hash, err := newOpaque(m.rand, resetPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	now := m.now().UTC()
	rt := ResetToken{Hash: hash, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(m.resetTTL)}
	if err := m.store.CreateResetToken(ctx, rt); err != nil {
		return "", time.Time{}, fmt.Errorf("reset token for %s: %w", u.Username, err)
	}
	return tok, rt.ExpiresAt, nil
}

// setPassword checks the policy, stores a new hash, forgets trusted
// devices and ends every session of the user except keepSession.
func (m *Manager) setPassword(ctx context.Context, u User, password, keepSession string) error {
	if err := m.policy.Check(u.Username, password); err != nil {
		return err
	}
	hash, err := hashPassword(password, m.cost)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	u.PasswordHash, u.PasswordChangedAt, u.UpdatedAt = hash, now, now
	if err := m.store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("set password of %s: %w", u.Username, err)
	}
	if _, err := m.store.RevokeTrustedDevices(ctx, u.ID, now); err != nil {
		return fmt.Errorf("revoke trusted devices of %s: %w", u.Username, err)
	}
	if err := m.revokeAll(ctx, u, keepSession, now); err != nil {
		return err
	}
	return nil
}

// ResetPassword consumes a one-time reset token and sets password, ending
// every session of the user. It also clears lockout, so a locked-out
// person can get back in. An unknown, used or expired token is
// ErrNotFound. The policy rules that do not need the username are checked
// before the token is used up.
func (m *Manager) ResetPassword(ctx context.Context, token, password string) (User, error) {
	hash, err := ParseOpaque(token, resetPrefix)
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err := m.policy.Check("", password); err != nil {
		return User{}, err
	}
	rt, err := m.store.ConsumeResetToken(ctx, hash, m.now().UTC())
	if err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	u, err := m.store.LookupUser(ctx, rt.UserID)
	if err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	if err := m.setPassword(ctx, u, password, ""); err != nil {
		return User{}, err
	}
	if err := m.store.SetLockedUntil(ctx, u.ID, time.Time{}); err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	if err := m.store.ResetFailures(ctx, u.ID, FailureLogin); err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	return u, nil
}

// Export is everything Rampart's store holds about one person, for a GDPR
// access request. Secrets (password hash, TOTP secret, code hashes) are
// reported as present, not copied.
type Export struct {
	ExportedAt time.Time       `json:"exported_at"`
	User       ExportUser      `json:"user"`
	Sessions   []ExportSession `json:"sessions"`
	// BackupCodes lists when each backup code was used (null: unused).
	BackupCodes []ExportBackupCode `json:"backup_codes"`
	// TrustedDevices lists devices that skip MFA (token not included).
	TrustedDevices []ExportDevice `json:"trusted_devices"`
}

// ExportDevice is one trusted device in an Export.
type ExportDevice struct {
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	UserAgent string     `json:"user_agent"`
}

// ExportUser is the account part of an Export.
type ExportUser struct {
	ID                string     `json:"id"`
	Username          string     `json:"username"`
	Email             string     `json:"email"`
	Status            Status     `json:"status"`
	Roles             []string   `json:"roles"`
	PasswordSet       bool       `json:"password_set"`
	MFAEnabled        bool       `json:"mfa_enabled"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	LastLoginAt       *time.Time `json:"last_login_at"`
	PasswordChangedAt *time.Time `json:"password_changed_at"`
	LockedUntil       *time.Time `json:"locked_until"`
}

// ExportSession is one session in an Export.
type ExportSession struct {
	ID         string     `json:"id"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	MFA        bool       `json:"mfa"`
	ClientIP   string     `json:"client_ip"`
	UserAgent  string     `json:"user_agent"`
}

// ExportBackupCode is one backup code's use in an Export.
type ExportBackupCode struct {
	UsedAt *time.Time `json:"used_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Export gathers everything stored about the user.
func (m *Manager) Export(ctx context.Context, username string) (Export, error) {
	u, err := m.Get(ctx, username)
	if err != nil {
		return Export{}, err
	}
	sess, err := m.store.ListSessions(ctx, u.ID)
	if err != nil {
		return Export{}, fmt.Errorf("export %s: %w", u.Username, err)
	}
	codes, err := m.store.ListBackupCodes(ctx, u.ID)
	if err != nil {
		return Export{}, fmt.Errorf("export %s: %w", u.Username, err)
	}
	devices, err := m.store.ListTrustedDevices(ctx, u.ID)
	if err != nil {
		return Export{}, fmt.Errorf("export %s: %w", u.Username, err)
	}
	ex := Export{
		ExportedAt: m.now().UTC(),
		User: ExportUser{
			ID: u.ID, Username: u.Username, Email: u.Email, Status: u.Status, Roles: u.Roles,
			PasswordSet: len(u.PasswordHash) > 0, MFAEnabled: u.MFAEnabled(),
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, LastLoginAt: timePtr(u.LastLoginAt),
			PasswordChangedAt: timePtr(u.PasswordChangedAt), LockedUntil: timePtr(u.LockedUntil),
		},
		Sessions:       []ExportSession{},
		BackupCodes:    []ExportBackupCode{},
		TrustedDevices: []ExportDevice{},
	}
	for _, d := range devices {
		ex.TrustedDevices = append(ex.TrustedDevices, ExportDevice{CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt,
			RevokedAt: timePtr(d.RevokedAt), UserAgent: d.UserAgent})
	}
	for _, s := range sess {
		ex.Sessions = append(ex.Sessions, ExportSession{ID: s.ID, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt,
			ExpiresAt: s.ExpiresAt, RevokedAt: timePtr(s.RevokedAt), MFA: s.MFA, ClientIP: s.ClientIP, UserAgent: s.UserAgent})
	}
	for _, c := range codes {
		ex.BackupCodes = append(ex.BackupCodes, ExportBackupCode{UsedAt: timePtr(c.UsedAt)})
	}
	return ex, nil
}

// Delete erases the user with their sessions, tokens, codes and counters.
func (m *Manager) Delete(ctx context.Context, username string) error {
	u, err := m.Get(ctx, username)
	if err != nil {
		return err
	}
	if err := m.store.DeleteUser(ctx, u.ID); err != nil {
		return fmt.Errorf("delete %s: %w", u.Username, err)
	}
	m.emit(ctx, Event{Type: EventUserSessionsRevoked, UserID: u.ID, Username: u.Username})
	return nil
}
