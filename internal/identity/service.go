package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Defaults for Options. The token lifetimes are the OptiBid checklist's
// (ACCESS_TOKEN_EXPIRE_MINUTES 30, REFRESH_TOKEN_EXPIRE_DAYS 7).
const (
	DefaultIssuer           = "rampart"
	DefaultAudience         = "rampart"
	DefaultAccessTTL        = 30 * time.Minute
	DefaultRefreshTTL       = 7 * 24 * time.Hour
	DefaultSessionLifetime  = 7 * 24 * time.Hour
	DefaultIdleTimeout      = 24 * time.Hour
	DefaultMaxSessions      = 5
	DefaultLockoutThreshold = 5
	DefaultLockoutWindow    = 15 * time.Minute
	DefaultLockoutDuration  = 15 * time.Minute
	DefaultMFAIssuer        = "Rampart"
	DefaultBackupCodes      = 10
	DefaultMFAAttemptLimit  = 5
	DefaultMFAWindow        = 15 * time.Minute
	DefaultMFATokenTTL      = 5 * time.Minute
	DefaultBasePath         = "/.rampart/"
	DefaultTrustedDeviceTTL = 30 * 24 * time.Hour
	DefaultIPFailures       = 20
	DefaultLockoutDelay     = 3
)

// Errors returned by Service methods and Authenticate. Handlers map them
// to generic responses; the wrapped detail is for logs.
var (
	// ErrInvalidCredentials covers an unknown user, a wrong password, a
	// locked or disabled account and a wrong second factor alike.
	ErrInvalidCredentials = errors.New("identity: invalid credentials")
	// ErrTooManyAttempts means the MFA attempt limit for the window is
	// reached.
	ErrTooManyAttempts = errors.New("identity: too many attempts")
	// ErrUnauthenticated means no valid, live access token was presented.
	ErrUnauthenticated = errors.New("identity: not authenticated")
	// ErrMFARequired means the user's role requires a second factor that
	// this session did not present.
	ErrMFARequired = errors.New("identity: second factor required")
	// ErrUnavailable means the store failed; callers answer 503 and never
	// let the request pass.
	ErrUnavailable = errors.New("identity: store unavailable")
)

// Event is one security-relevant decision, for the audit log.
type Event struct {
	Type      string // e.g. "login.success"; see the Event* constants
	UserID    string
	Username  string
	SessionID string
	ClientIP  string
}

// Event types.
const (
	EventLoginSuccess    = "login.success"
	EventLoginFailure    = "login.failure"
	EventLockout         = "login.lockout"
	EventMFAChallenge    = "mfa.challenge"
	EventMFASuccess      = "mfa.success"
	EventMFAFailure      = "mfa.failure"
	EventMFAEnrolled     = "mfa.enrolled"
	EventRefresh         = "token.refresh"
	EventRefreshReuse    = "token.reuse"
	EventLogout          = "session.logout"
	EventSessionRevoked  = "session.revoked"
	EventSessionEvicted  = "session.evicted"
	EventPasswordChanged = "password.changed"
	EventPasswordReset   = "password.reset"
	// EventUserSessionsRevoked: every session of UserID ended, except
	// SessionID when it is set.
	EventUserSessionsRevoked = "sessions.revoked_all"
)

// Options configure a Service. Zero values take the defaults named.
type Options struct {
	// Store keeps users and sessions. Required.
	Store Store
	// Keys sign and verify access tokens: Keys[0] signs, all verify (the
	// previous keys of a rotation stay here until tokens they signed have
	// expired). Each Secret at least 32 bytes. Required.
	Keys []Key
	// TOTPKeys encrypt TOTP secrets at rest (AES-256-GCM, bound to the
	// user ID): TOTPKeys[0] seals, all open, so keep an old key until
	// every secret has been re-enrolled. Each at least 32 bytes. Empty
	// stores secrets in plain text (secrets sealed earlier then fail to
	// open, as a 503).
	TOTPKeys []Key
	// Issuer and Audience are the iss and aud of access tokens. Default
	// "rampart".
	Issuer   string
	Audience string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the randomness source for IDs, tokens, codes and TOTP
	// secrets; nil means crypto/rand. It must be safe for concurrent use.
	Rand io.Reader
	// Logger receives store errors. Nil discards.
	Logger *slog.Logger
	// OnEvent, if set, is called for each Event, on the request path.
	OnEvent func(context.Context, Event)

	// BcryptCost for password hashes. Default 12.
	BcryptCost int
	// Policy for new passwords. Default minimum length 12.
	Policy PasswordPolicy
	// Roles maps role names to permissions. Default DefaultRoles().
	Roles map[string]reqinfo.Permission
	// ResetTTL is the lifetime of a password reset token. Default 1h.
	ResetTTL time.Duration

	// AccessTTL is the access token lifetime. Default 30m.
	AccessTTL time.Duration
	// RefreshTTL is a refresh token's lifetime. Default 7 days.
	RefreshTTL time.Duration
	// SessionLifetime is a session's absolute lifetime. Default 7 days.
	SessionLifetime time.Duration
	// IdleTimeout ends a session not refreshed for this long. Default 24h.
	IdleTimeout time.Duration
	// MaxSessions is the number of live sessions per user; a new login
	// past it revokes the oldest. Default 5.
	MaxSessions int

	// LockoutThreshold failed logins within LockoutWindow lock the account
	// for LockoutDuration. Defaults 5, 15m, 15m.
	LockoutThreshold int
	LockoutWindow    time.Duration
	LockoutDuration  time.Duration
	// LockoutDelayAfter failures (below LockoutThreshold) make the account
	// wait before the next try: 1s after that many, doubling with each
	// further failure, until the threshold locks it. Tries during the wait
	// are refused unchecked. Default 3; a value at or above the threshold
	// turns the delay off.
	LockoutDelayAfter int
	// IPFailureThreshold failed logins from one client IP within
	// LockoutWindow, across accounts, start a growing block of that IP
	// (1s, 2s, 4s, ... up to LockoutDuration; answered 429). It is kept
	// in memory per instance. Default 20.
	IPFailureThreshold int

	// MFAIssuer names the service in authenticator apps. Default "Rampart".
	MFAIssuer string
	// BackupCodes is the number of backup codes issued. Default 10.
	BackupCodes int
	// MFAAttemptLimit wrong codes within MFAWindow block MFA verification
	// until the window passes. Defaults 5 and 15m.
	MFAAttemptLimit int
	MFAWindow       time.Duration
	// MFATokenTTL is the lifetime of the token between password and second
	// factor. Default 5m.
	MFATokenTTL time.Duration
	// TrustedDeviceTTL is how long a device the person chose to trust
	// skips the second factor (OptiBid's TRUSTED_DEVICE_DAYS). Default 30
	// days.
	TrustedDeviceTTL time.Duration
	// DisableTrustedDevices refuses to remember devices: every login with
	// MFA asks for a code.
	DisableTrustedDevices bool
	// MFARequiredRoles lists roles whose sessions need a second factor to
	// pass Authenticate. Nil means ["admin"]; an empty non-nil slice
	// requires it of nobody.
	MFARequiredRoles []string

	// BasePath is where the handler is mounted, with leading and trailing
	// slash. Default "/.rampart/".
	BasePath string
}

// Service logs people in and out and authenticates their requests. It is
// safe for concurrent use.
type Service struct {
	o       Options
	m       *Manager
	kr      *keyring
	access  *tokenParser
	mfa     *tokenParser
	dummy   []byte
	log     *slog.Logger
	mfaRole []string
	pages   pageSet
	ips     *ipThrottle
	box     *secretBox
}

// New checks opts, fills defaults and returns a Service.
func New(opts Options) (*Service, error) {
	o := opts
	if o.Store == nil {
		return nil, errors.New("identity: no store")
	}
	kr, err := newKeyring(o.Keys)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = DefaultBcryptCost
	}
	setDefault(&o.Issuer, DefaultIssuer)
	setDefault(&o.Audience, DefaultAudience)
	setDefault(&o.MFAIssuer, DefaultMFAIssuer)
	setDefault(&o.BasePath, DefaultBasePath)
	setDefault(&o.AccessTTL, DefaultAccessTTL)
	setDefault(&o.RefreshTTL, DefaultRefreshTTL)
	setDefault(&o.SessionLifetime, DefaultSessionLifetime)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.MaxSessions, DefaultMaxSessions)
	setDefault(&o.LockoutThreshold, DefaultLockoutThreshold)
	setDefault(&o.LockoutWindow, DefaultLockoutWindow)
	setDefault(&o.LockoutDuration, DefaultLockoutDuration)
	setDefault(&o.IPFailureThreshold, DefaultIPFailures)
	setDefault(&o.LockoutDelayAfter, DefaultLockoutDelay)
	setDefault(&o.BackupCodes, DefaultBackupCodes)
	setDefault(&o.MFAAttemptLimit, DefaultMFAAttemptLimit)
	setDefault(&o.MFAWindow, DefaultMFAWindow)
	setDefault(&o.MFATokenTTL, DefaultMFATokenTTL)
	setDefault(&o.TrustedDeviceTTL, DefaultTrustedDeviceTTL)
	var problems []error
	for name, d := range map[string]time.Duration{
		"access token lifetime": o.AccessTTL, "refresh token lifetime": o.RefreshTTL,
		"session lifetime": o.SessionLifetime, "idle timeout": o.IdleTimeout,
		"lockout window": o.LockoutWindow, "lockout duration": o.LockoutDuration,
		"MFA window": o.MFAWindow, "MFA token lifetime": o.MFATokenTTL,
		"trusted device lifetime": o.TrustedDeviceTTL,
	} {
		if d < time.Second {
			problems = append(problems, fmt.Errorf("%s %s: must be at least 1s", name, d))
		}
	}
	for name, n := range map[string]int{
		"max sessions": o.MaxSessions, "lockout threshold": o.LockoutThreshold,
		"IP failure threshold": o.IPFailureThreshold, "lockout delay after": o.LockoutDelayAfter,
		"MFA attempt limit": o.MFAAttemptLimit, "backup codes": o.BackupCodes,
	} {
		if n < 1 || n > 1000 {
			problems = append(problems, fmt.Errorf("%s %d: must be 1 to 1000", name, n))
		}
	}
	if !strings.HasPrefix(o.BasePath, "/") || !strings.HasSuffix(o.BasePath, "/") {
		problems = append(problems, fmt.Errorf("base path %q: must start and end with /", o.BasePath))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	m, err := NewManager(ManagerOptions{Store: o.Store, Now: o.Now, Rand: o.Rand, BcryptCost: o.BcryptCost,
		Policy: o.Policy, Roles: o.Roles, ResetTTL: o.ResetTTL, OnEvent: o.OnEvent})
	if err != nil {
		return nil, err
	}
	for _, r := range o.MFARequiredRoles {
		if _, ok := m.roles[r]; !ok {
			return nil, fmt.Errorf("identity: MFA required for unknown role %q", r)
		}
	}
	mfaRoles := o.MFARequiredRoles
	if mfaRoles == nil {
		mfaRoles = []string{"admin"}
	}
	// The dummy hash has the configured cost, so checking a password for
	// an unknown user takes as long as for a known one.
	dummy, err := bcrypt.GenerateFromPassword([]byte("rampart-dummy-password"), o.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("identity: dummy hash: %w", err)
	}
	box, err := newSecretBox(o.TOTPKeys, o.Rand)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		o: o, m: m, kr: kr, dummy: dummy, log: log, mfaRole: mfaRoles, pages: pages,
		ips:    newIPThrottle(o.IPFailureThreshold, o.LockoutWindow, o.LockoutDuration),
		box:    box,
		access: newTokenParser(kr, o.Issuer, o.Audience, o.Now),
		mfa:    newTokenParser(kr, o.Issuer, o.Audience+"#mfa", o.Now),
	}, nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Manager returns the account manager the service uses.
func (s *Service) Manager() *Manager { return s.m }

// ClientMeta describes the client making a request, recorded on sessions.
type ClientMeta struct {
	IP        string
	UserAgent string
	// DeviceToken is the trusted-device token the client presents, if
	// any; a valid one for the user skips the second factor at login.
	DeviceToken string
}

// Tokens is what a successful login, MFA verification or refresh returns.
type Tokens struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresIn        int64     `json:"expires_in"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresIn int64     `json:"refresh_expires_in"`
	SessionID        string    `json:"session_id"`
	AccessExpiresAt  time.Time `json:"-"`
	RefreshExpiresAt time.Time `json:"-"`
	// DeviceToken is set when VerifyMFA was asked to remember the device:
	// present it at later logins to skip the second factor until
	// DeviceExpiresAt.
	DeviceToken     string    `json:"device_token,omitempty"`
	DeviceExpiresAt time.Time `json:"-"`
}

// LoginResult is either tokens or an MFA challenge.
type LoginResult struct {
	Tokens      *Tokens
	MFARequired bool
	MFAToken    string
}

func (s *Service) emit(ctx context.Context, typ string, u User, sessionID string, meta ClientMeta) {
	if s.o.OnEvent != nil {
		s.o.OnEvent(ctx, Event{Type: typ, UserID: u.ID, Username: u.Username, SessionID: sessionID, ClientIP: meta.IP})
	}
}

// storeErr logs a store failure and returns ErrUnavailable wrapping it.
func (s *Service) storeErr(ctx context.Context, op string, err error) error {
	s.log.ErrorContext(ctx, "identity store error", slog.String("op", op), slog.Any("error", err))
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// lockedOut reports whether u may not log in now.
func (s *Service) lockedOut(u User, now time.Time) bool {
	return u.Status != StatusActive || now.Before(u.LockedUntil)
}

// Login checks a username and password. An unknown user, a wrong password
// and a locked or disabled account all return ErrInvalidCredentials after
// the same bcrypt work. Failed logins count towards the account's lockout
// and the client IP's growing block (ErrTooManyAttempts while blocked).
func (s *Service) Login(ctx context.Context, username, password string, meta ClientMeta) (LoginResult, error) {
	now := s.o.Now().UTC()
	if d := s.ips.blocked(meta.IP, now); d > 0 {
		return LoginResult{}, &throttled{after: d}
	}
	res, err := s.login(ctx, username, password, meta, now)
	if errors.Is(err, ErrInvalidCredentials) {
		s.ips.fail(meta.IP, now)
	}
	return res, err
}

func (s *Service) login(ctx context.Context, username, password string, meta ClientMeta, now time.Time) (LoginResult, error) {
	var u User
	name, nameErr := CanonicalUsername(username)
	if nameErr == nil {
		var err error
		u, err = s.o.Store.LookupUsername(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return LoginResult{}, s.storeErr(ctx, "lookup user", err)
		}
	}
	ok := checkPassword(u.PasswordHash, password, s.dummy)
	if u.ID == "" {
		s.emit(ctx, EventLoginFailure, User{Username: name}, "", meta)
		return LoginResult{}, fmt.Errorf("%w: unknown user", ErrInvalidCredentials)
	}
	if s.lockedOut(u, now) {
		s.emit(ctx, EventLoginFailure, u, "", meta)
		return LoginResult{}, fmt.Errorf("%w: account %s or locked out", ErrInvalidCredentials, u.Status)
	}
	if !ok {
		n, err := s.o.Store.CountFailure(ctx, u.ID, FailureLogin, now, s.o.LockoutWindow)
		if err != nil {
			return LoginResult{}, s.storeErr(ctx, "count failure", err)
		}
		s.emit(ctx, EventLoginFailure, u, "", meta)
		switch {
		case n >= s.o.LockoutThreshold:
			if err := s.o.Store.SetLockedUntil(ctx, u.ID, now.Add(s.o.LockoutDuration)); err != nil {
				return LoginResult{}, s.storeErr(ctx, "lock out", err)
			}
			if err := s.o.Store.ResetFailures(ctx, u.ID, FailureLogin); err != nil {
				return LoginResult{}, s.storeErr(ctx, "reset failures", err)
			}
			s.emit(ctx, EventLockout, u, "", meta)
		case n >= s.o.LockoutDelayAfter:
			delay := min(time.Second<<min(n-s.o.LockoutDelayAfter, 30), s.o.LockoutDuration)
			if err := s.o.Store.SetLockedUntil(ctx, u.ID, now.Add(delay)); err != nil {
				return LoginResult{}, s.storeErr(ctx, "delay", err)
			}
		}
		return LoginResult{}, fmt.Errorf("%w: wrong password", ErrInvalidCredentials)
	}
	if err := s.o.Store.ResetFailures(ctx, u.ID, FailureLogin); err != nil {
		return LoginResult{}, s.storeErr(ctx, "reset failures", err)
	}
	if u.MFAEnabled() {
		trusted, err := s.trustedDevice(ctx, u, meta.DeviceToken, now)
		if err != nil {
			return LoginResult{}, err
		}
		if trusted {
			t, err := s.startSession(ctx, u, true, meta, now)
			if err != nil {
				return LoginResult{}, err
			}
			s.emit(ctx, EventLoginSuccess, u, t.SessionID, meta)
			return LoginResult{Tokens: &t}, nil
		}
		tok, err := s.issueMFAToken(u, now)
		if err != nil {
			return LoginResult{}, err
		}
		s.emit(ctx, EventMFAChallenge, u, "", meta)
		return LoginResult{MFARequired: true, MFAToken: tok}, nil
	}
	t, err := s.startSession(ctx, u, false, meta, now)
	if err != nil {
		return LoginResult{}, err
	}
	s.emit(ctx, EventLoginSuccess, u, t.SessionID, meta)
	return LoginResult{Tokens: &t}, nil
}

func (s *Service) issueMFAToken(u User, now time.Time) (string, error) {
	jti, err := randomID(s.o.Rand, "", 16)
	if err != nil {
		return "", err
	}
	c := claims{Type: typMFA}
	c.Issuer, c.Subject, c.ID = s.o.Issuer, u.ID, jti
	c.Audience = []string{s.o.Audience + "#mfa"}
	c.IssuedAt, c.NotBefore = jwtTime(now), jwtTime(now)
	c.ExpiresAt = jwtTime(now.Add(s.o.MFATokenTTL))
	return s.kr.sign(c)
}

// trustedDevice reports whether tok is a live trusted-device token of u.
func (s *Service) trustedDevice(ctx context.Context, u User, tok string, now time.Time) (bool, error) {
	if tok == "" || s.o.DisableTrustedDevices {
		return false, nil
	}
	hash, err := ParseOpaque(tok, devicePrefix)
	if err != nil {
		return false, nil
	}
	d, err := s.o.Store.LookupTrustedDevice(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, s.storeErr(ctx, "lookup trusted device", err)
	}
	return d.UserID == u.ID && d.RevokedAt.IsZero() && now.Before(d.ExpiresAt), nil
}

// VerifyMFA completes a login that returned an MFA challenge, with a TOTP
// code (each time step accepted once) or an unused backup code. With
// remember (and trusted devices enabled) it also issues a device token
// that skips the second factor on this device for TrustedDeviceTTL.
func (s *Service) VerifyMFA(ctx context.Context, mfaToken, code string, remember bool, meta ClientMeta) (Tokens, error) {
	now := s.o.Now().UTC()
	c, err := s.mfa.parse(mfaToken, typMFA)
	if err != nil {
		return Tokens{}, err
	}
	u, err := s.o.Store.LookupUser(ctx, c.Subject)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	}
	if err != nil {
		return Tokens{}, s.storeErr(ctx, "lookup user", err)
	}
	if s.lockedOut(u, now) || !u.MFAEnabled() {
		return Tokens{}, fmt.Errorf("%w: account %s, locked out or without MFA", ErrInvalidCredentials, u.Status)
	}
	secret, err := s.box.open(u.ID, u.TOTPSecret)
	if err != nil {
		return Tokens{}, s.storeErr(ctx, "open TOTP secret", err)
	}
	if err := s.checkSecondFactor(ctx, u, secret, true, code, now, meta); err != nil {
		return Tokens{}, err
	}
	t, err := s.startSession(ctx, u, true, meta, now)
	if err != nil {
		return Tokens{}, err
	}
	if remember && !s.o.DisableTrustedDevices {
		tok, hash, err := newOpaque(s.o.Rand, devicePrefix)
		if err != nil {
			return Tokens{}, err
		}
		d := TrustedDevice{Hash: hash, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.o.TrustedDeviceTTL),
			UserAgent: truncate(meta.UserAgent, 256)}
		if err := s.o.Store.CreateTrustedDevice(ctx, d); err != nil {
			return Tokens{}, s.storeErr(ctx, "create trusted device", err)
		}
		t.DeviceToken, t.DeviceExpiresAt = tok, d.ExpiresAt
	}
	s.emit(ctx, EventMFASuccess, u, t.SessionID, meta)
	return t, nil
}

// ForgetDevices revokes every trusted device of the caller, so the next
// login everywhere asks for a second factor.
func (s *Service) ForgetDevices(ctx context.Context, cl Caller) error {
	if _, err := s.o.Store.RevokeTrustedDevices(ctx, cl.User.ID, s.o.Now().UTC()); err != nil {
		return s.storeErr(ctx, "revoke trusted devices", err)
	}
	return nil
}

// checkSecondFactor enforces the attempt limit and accepts a TOTP code
// for the plain secret or, when allowBackup, a backup code.
func (s *Service) checkSecondFactor(ctx context.Context, u User, secret string, allowBackup bool, code string, now time.Time, meta ClientMeta) error {
	n, err := s.o.Store.FailureCount(ctx, u.ID, FailureMFA, now, s.o.MFAWindow)
	if err != nil {
		return s.storeErr(ctx, "failure count", err)
	}
	if n >= s.o.MFAAttemptLimit {
		s.emit(ctx, EventMFAFailure, u, "", meta)
		return fmt.Errorf("%w: %d MFA failures in the window", ErrTooManyAttempts, n)
	}
	code = strings.TrimSpace(code)
	accepted := false
	if step, ok := matchTOTP(secret, code, now); ok {
		switch err := s.o.Store.UseTOTPStep(ctx, u.ID, step); {
		case err == nil:
			accepted = true
		case !errors.Is(err, ErrConflict):
			return s.storeErr(ctx, "use TOTP step", err)
		}
	} else if hash, ok := parseBackupCode(code); ok && allowBackup {
		switch err := s.o.Store.UseBackupCode(ctx, u.ID, hash, now); {
		case err == nil:
			accepted = true
		case !errors.Is(err, ErrNotFound):
			return s.storeErr(ctx, "use backup code", err)
		}
	}
	if !accepted {
		if _, err := s.o.Store.CountFailure(ctx, u.ID, FailureMFA, now, s.o.MFAWindow); err != nil {
			return s.storeErr(ctx, "count failure", err)
		}
		s.emit(ctx, EventMFAFailure, u, "", meta)
		return fmt.Errorf("%w: wrong, replayed or used code", ErrInvalidCredentials)
	}
	if err := s.o.Store.ResetFailures(ctx, u.ID, FailureMFA); err != nil {
		return s.storeErr(ctx, "reset failures", err)
	}
	return nil
}

// live reports whether sess can be used at now.
func (s *Service) live(sess Session, now time.Time) bool {
	return sess.RevokedAt.IsZero() && now.Before(sess.ExpiresAt) && now.Sub(sess.LastSeenAt) < s.o.IdleTimeout
}

// startSession creates a session for u, evicts the oldest sessions past
// MaxSessions and issues its first tokens.
func (s *Service) startSession(ctx context.Context, u User, mfa bool, meta ClientMeta, now time.Time) (Tokens, error) {
	id, err := randomID(s.o.Rand, "s_", 16)
	if err != nil {
		return Tokens{}, err
	}
	sess := Session{ID: id, UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.o.SessionLifetime),
		MFA: mfa, ClientIP: truncate(meta.IP, 64), UserAgent: truncate(meta.UserAgent, 256)}
	if err := s.o.Store.CreateSession(ctx, sess); err != nil {
		return Tokens{}, s.storeErr(ctx, "create session", err)
	}
	all, err := s.o.Store.ListSessions(ctx, u.ID)
	if err != nil {
		return Tokens{}, s.storeErr(ctx, "list sessions", err)
	}
	var others []Session
	for _, o := range all {
		if o.ID != id && s.live(o, now) {
			others = append(others, o)
		}
	}
	slices.SortFunc(others, func(a, b Session) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for len(others) >= s.o.MaxSessions {
		if err := s.o.Store.RevokeSession(ctx, others[0].ID, now); err != nil {
			return Tokens{}, s.storeErr(ctx, "evict session", err)
		}
		s.emit(ctx, EventSessionEvicted, u, others[0].ID, meta)
		others = others[1:]
	}
	if err := s.o.Store.SetLastLogin(ctx, u.ID, now); err != nil {
		return Tokens{}, s.storeErr(ctx, "set last login", err)
	}
	return s.issue(ctx, u, sess, now)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func jwtTime(t time.Time) *jwt.NumericDate { return jwt.NewNumericDate(t) }

// issue creates a refresh token and an access token for sess.
func (s *Service) issue(ctx context.Context, u User, sess Session, now time.Time) (Tokens, error) {
	rt, hash, err := newOpaque(s.o.Rand, refreshPrefix)
	if err != nil {
		return Tokens{}, err
	}
	rExp := minTime(now.Add(s.o.RefreshTTL), sess.ExpiresAt)
	if err := s.o.Store.CreateRefreshToken(ctx, RefreshToken{Hash: hash, SessionID: sess.ID, UserID: u.ID,
		IssuedAt: now, ExpiresAt: rExp}); err != nil {
		return Tokens{}, s.storeErr(ctx, "create refresh token", err)
	}
	jti, err := randomID(s.o.Rand, "", 16)
	if err != nil {
		return Tokens{}, err
	}
	aExp := minTime(now.Add(s.o.AccessTTL), sess.ExpiresAt)
	c := claims{Type: typAccess, SessionID: sess.ID, Name: u.Username, Roles: u.Roles, AMR: []string{amrPassword}}
	if sess.MFA {
		c.AMR = append(c.AMR, amrOTP)
	}
	c.Issuer, c.Subject, c.ID = s.o.Issuer, u.ID, jti
	c.Audience = []string{s.o.Audience}
	c.IssuedAt, c.NotBefore, c.ExpiresAt = jwtTime(now), jwtTime(now), jwtTime(aExp)
	at, err := s.kr.sign(c)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(aExp.Sub(now) / time.Second),
		RefreshToken: rt, RefreshExpiresIn: int64(rExp.Sub(now) / time.Second), SessionID: sess.ID,
		AccessExpiresAt: aExp, RefreshExpiresAt: rExp}, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Refresh rotates a refresh token: the presented one is used up and a new
// pair is issued. Presenting a token that was already used revokes its
// whole session (every token descended from the same login).
func (s *Service) Refresh(ctx context.Context, refreshToken string, meta ClientMeta) (Tokens, error) {
	now := s.o.Now().UTC()
	hash, err := ParseOpaque(refreshToken, refreshPrefix)
	if err != nil {
		return Tokens{}, err
	}
	rt, fresh, err := s.o.Store.ConsumeRefreshToken(ctx, hash, now)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, fmt.Errorf("%w: unknown refresh token", ErrInvalidToken)
	}
	if err != nil {
		return Tokens{}, s.storeErr(ctx, "consume refresh token", err)
	}
	if !fresh {
		if err := s.o.Store.RevokeSession(ctx, rt.SessionID, now); err != nil && !errors.Is(err, ErrNotFound) {
			return Tokens{}, s.storeErr(ctx, "revoke family", err)
		}
		s.emit(ctx, EventRefreshReuse, User{ID: rt.UserID}, rt.SessionID, meta)
		return Tokens{}, fmt.Errorf("%w: refresh token reused; session %s revoked", ErrInvalidToken, rt.SessionID)
	}
	if !now.Before(rt.ExpiresAt) {
		return Tokens{}, fmt.Errorf("%w: refresh token expired", ErrInvalidToken)
	}
	sess, err := s.o.Store.LookupSession(ctx, rt.SessionID)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, fmt.Errorf("%w: session gone", ErrInvalidToken)
	}
	if err != nil {
		return Tokens{}, s.storeErr(ctx, "lookup session", err)
	}
	if !s.live(sess, now) {
		return Tokens{}, fmt.Errorf("%w: session ended", ErrInvalidToken)
	}
	u, err := s.o.Store.LookupUser(ctx, sess.UserID)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	}
	if err != nil {
		return Tokens{}, s.storeErr(ctx, "lookup user", err)
	}
	if u.Status != StatusActive {
		return Tokens{}, fmt.Errorf("%w: account %s", ErrInvalidToken, u.Status)
	}
	if err := s.o.Store.TouchSession(ctx, sess.ID, now); err != nil {
		return Tokens{}, s.storeErr(ctx, "touch session", err)
	}
	sess.LastSeenAt = now
	t, err := s.issue(ctx, u, sess, now)
	if err != nil {
		return Tokens{}, err
	}
	s.emit(ctx, EventRefresh, u, sess.ID, meta)
	return t, nil
}

// Caller is an authenticated user of the identity API.
type Caller struct {
	User    User
	Session Session
	MFA     bool // the session presented a second factor
}

// authenticate verifies a bearer access token and that its session is
// live; it does not apply MFARequiredRoles.
func (s *Service) authenticateToken(ctx context.Context, raw string) (*claims, Session, error) {
	c, err := s.access.parse(raw, typAccess)
	if err != nil {
		return nil, Session{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	sess, err := s.o.Store.LookupSession(ctx, c.SessionID)
	if errors.Is(err, ErrNotFound) {
		return nil, Session{}, fmt.Errorf("%w: session gone", ErrUnauthenticated)
	}
	if err != nil {
		return nil, Session{}, s.storeErr(ctx, "lookup session", err)
	}
	if sess.UserID != c.Subject || !s.live(sess, s.o.Now().UTC()) {
		return nil, Session{}, fmt.Errorf("%w: session ended", ErrUnauthenticated)
	}
	return c, sess, nil
}

// caller resolves a bearer token to the user and session, for the
// identity API's own endpoints (which a session without MFA may use, so
// that a person required to enrol can do so).
func (s *Service) caller(ctx context.Context, raw string) (Caller, error) {
	c, sess, err := s.authenticateToken(ctx, raw)
	if err != nil {
		return Caller{}, err
	}
	u, err := s.o.Store.LookupUser(ctx, c.Subject)
	if errors.Is(err, ErrNotFound) {
		return Caller{}, fmt.Errorf("%w: user gone", ErrUnauthenticated)
	}
	if err != nil {
		return Caller{}, s.storeErr(ctx, "lookup user", err)
	}
	if u.Status != StatusActive {
		return Caller{}, fmt.Errorf("%w: account %s", ErrUnauthenticated, u.Status)
	}
	return Caller{User: u, Session: sess, MFA: sess.MFA}, nil
}

// AuthenticateToken verifies a bearer access token (signature with the
// pinned algorithm and a known kid, iss, aud, exp, nbf, iat, jti) and that
// its session is still live, so logout and revocation take effect at
// once. A user whose role needs MFA gets ErrMFARequired unless the
// session presented a second factor. Store failures are ErrUnavailable.
func (s *Service) AuthenticateToken(ctx context.Context, raw string) (reqinfo.Principal, error) {
	c, sess, err := s.authenticateToken(ctx, raw)
	if err != nil {
		return reqinfo.Principal{}, err
	}
	if !sess.MFA {
		for _, r := range c.Roles {
			if slices.Contains(s.mfaRole, r) {
				return reqinfo.Principal{}, fmt.Errorf("%w: role %s", ErrMFARequired, r)
			}
		}
	}
	return reqinfo.Principal{Kind: "user", ID: c.Subject, Name: c.Name,
		Permissions: s.m.Permissions(c.Roles), SessionID: sess.ID}, nil
}

// Logout revokes the session.
func (s *Service) Logout(ctx context.Context, cl Caller, meta ClientMeta) error {
	if err := s.o.Store.RevokeSession(ctx, cl.Session.ID, s.o.Now().UTC()); err != nil {
		return s.storeErr(ctx, "revoke session", err)
	}
	s.emit(ctx, EventLogout, cl.User, cl.Session.ID, meta)
	return nil
}

// Sessions returns the caller's live sessions, oldest first.
func (s *Service) Sessions(ctx context.Context, cl Caller) ([]Session, error) {
	all, err := s.o.Store.ListSessions(ctx, cl.User.ID)
	if err != nil {
		return nil, s.storeErr(ctx, "list sessions", err)
	}
	now := s.o.Now().UTC()
	live := []Session{}
	for _, x := range all {
		if s.live(x, now) {
			live = append(live, x)
		}
	}
	return live, nil
}

// RevokeSession ends one of the caller's sessions. Another user's session
// or an unknown ID is ErrNotFound.
func (s *Service) RevokeSession(ctx context.Context, cl Caller, id string, meta ClientMeta) error {
	sess, err := s.o.Store.LookupSession(ctx, id)
	if errors.Is(err, ErrNotFound) || err == nil && sess.UserID != cl.User.ID {
		return ErrNotFound
	}
	if err != nil {
		return s.storeErr(ctx, "lookup session", err)
	}
	if err := s.o.Store.RevokeSession(ctx, id, s.o.Now().UTC()); err != nil {
		return s.storeErr(ctx, "revoke session", err)
	}
	s.emit(ctx, EventSessionRevoked, cl.User, id, meta)
	return nil
}

// Enrollment is a started TOTP enrolment.
type Enrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// ErrMFAEnrolled means the user already has MFA; an operator resets it
// with `rampart users reset-mfa`.
var ErrMFAEnrolled = errors.New("identity: MFA already enrolled")

// EnrollMFA starts TOTP enrolment: it stores a pending secret and returns
// it with its otpauth:// URL. The secret is active only after ConfirmMFA.
func (s *Service) EnrollMFA(ctx context.Context, cl Caller) (Enrollment, error) {
	if cl.User.MFAEnabled() {
		return Enrollment{}, ErrMFAEnrolled
	}
	k, err := newTOTPKey(s.o.Rand, s.o.MFAIssuer, cl.User.Username)
	if err != nil {
		return Enrollment{}, err
	}
	u := cl.User
	sealed, err := s.box.seal(u.ID, k.Secret())
	if err != nil {
		return Enrollment{}, err
	}
	u.TOTPPending, u.UpdatedAt = sealed, s.o.Now().UTC()
	if err := s.o.Store.UpdateUser(ctx, u); err != nil {
		return Enrollment{}, s.storeErr(ctx, "store pending secret", err)
	}
	return Enrollment{Secret: k.Secret(), URL: totpURL(s.o.MFAIssuer, u.Username, k.Secret())}, nil
}

// pendingSecret returns the caller's pending TOTP secret in plain text.
func (s *Service) pendingSecret(ctx context.Context, cl Caller) (string, error) {
	p, err := s.box.open(cl.User.ID, cl.User.TOTPPending)
	if err != nil {
		return "", s.storeErr(ctx, "open TOTP secret", err)
	}
	return p, nil
}

// ErrNoEnrollment means ConfirmMFA was called without a pending secret.
var ErrNoEnrollment = errors.New("identity: no MFA enrolment in progress")

// ConfirmMFA activates the pending TOTP secret when code matches it and
// returns the backup codes, which are shown this once and stored hashed.
func (s *Service) ConfirmMFA(ctx context.Context, cl Caller, code string, meta ClientMeta) ([]string, error) {
	u := cl.User
	if u.MFAEnabled() {
		return nil, ErrMFAEnrolled
	}
	if u.TOTPPending == "" {
		return nil, ErrNoEnrollment
	}
	now := s.o.Now().UTC()
	pending, err := s.box.open(u.ID, u.TOTPPending)
	if err != nil {
		return nil, s.storeErr(ctx, "open TOTP secret", err)
	}
	if err := s.checkSecondFactor(ctx, u, pending, false, code, now, meta); err != nil {
		return nil, err
	}
	codes := make([]string, s.o.BackupCodes)
	hashes := make([][]byte, s.o.BackupCodes)
	for i := range codes {
		var err error
		if codes[i], hashes[i], err = newBackupCode(s.o.Rand); err != nil {
			return nil, err
		}
	}
	sealed, err := s.box.seal(u.ID, pending)
	if err != nil {
		return nil, err
	}
	u.TOTPSecret, u.TOTPPending, u.UpdatedAt = sealed, "", now
	if err := s.o.Store.UpdateUser(ctx, u); err != nil {
		return nil, s.storeErr(ctx, "activate TOTP", err)
	}
	if err := s.o.Store.ReplaceBackupCodes(ctx, u.ID, hashes); err != nil {
		return nil, s.storeErr(ctx, "store backup codes", err)
	}
	s.emit(ctx, EventMFAEnrolled, u, cl.Session.ID, meta)
	return codes, nil
}

// ChangePassword checks the current password (a wrong one counts towards
// lockout), applies the policy to the new one, and ends every other
// session of the user.
func (s *Service) ChangePassword(ctx context.Context, cl Caller, current, next string, meta ClientMeta) error {
	now := s.o.Now().UTC()
	if !checkPassword(cl.User.PasswordHash, current, s.dummy) {
		n, err := s.o.Store.CountFailure(ctx, cl.User.ID, FailureLogin, now, s.o.LockoutWindow)
		if err != nil {
			return s.storeErr(ctx, "count failure", err)
		}
		if n >= s.o.LockoutThreshold {
			if err := s.o.Store.SetLockedUntil(ctx, cl.User.ID, now.Add(s.o.LockoutDuration)); err != nil {
				return s.storeErr(ctx, "lock out", err)
			}
			s.emit(ctx, EventLockout, cl.User, cl.Session.ID, meta)
		}
		return fmt.Errorf("%w: wrong current password", ErrInvalidCredentials)
	}
	if err := s.m.setPassword(ctx, cl.User, next, cl.Session.ID); err != nil {
		if errors.Is(err, ErrWeakPassword) {
			return err
		}
		return s.storeErr(ctx, "set password", err)
	}
	s.emit(ctx, EventPasswordChanged, cl.User, cl.Session.ID, meta)
	return nil
}

// ResetPassword sets a new password with a one-time token from
// `rampart users reset-password`, ending every session of the user.
func (s *Service) ResetPassword(ctx context.Context, token, password string, meta ClientMeta) error {
	u, err := s.m.ResetPassword(ctx, token, password)
	switch {
	case err == nil:
		s.emit(ctx, EventPasswordReset, u, "", meta)
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %w", ErrInvalidToken, err)
	case errors.Is(err, ErrWeakPassword):
		return err
	}
	return s.storeErr(ctx, "reset password", err)
}

// Prune deletes sessions (with their refresh tokens) that ended more than
// keep ago, and expired reset tokens. Run it daily; keep is how long ended
// sessions stay visible in exports, e.g. 30 days.
func (s *Service) Prune(ctx context.Context, keep time.Duration) (int, error) {
	n, err := s.o.Store.PruneSessions(ctx, s.o.Now().UTC().Add(-keep))
	if err != nil {
		return 0, s.storeErr(ctx, "prune sessions", err)
	}
	return n, nil
}
