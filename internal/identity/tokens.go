package identity

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Key is one HS256 signing key of the JWT keyring.
type Key struct {
	ID     string // the JWT "kid"
	Secret []byte // at least 32 bytes
}

// MinKeyBytes is the shortest accepted HS256 key.
const MinKeyBytes = 32

// maxTokenBytes bounds any token or code read from a client before parsing.
const maxTokenBytes = 4096

// Token types in the "typ" claim. An MFA token can never pass as an access
// token or the other way round.
const (
	typAccess = "access"
	typMFA    = "mfa"
)

// Authentication methods in the "amr" claim (RFC 8176 names).
const (
	amrPassword = "pwd"
	amrOTP      = "otp"
)

// ErrInvalidToken is returned for any token that does not verify; the
// wrapped error says why, for logs only.
var ErrInvalidToken = errors.New("identity: invalid token")

// claims are the access and MFA token claims.
type claims struct {
	jwt.RegisteredClaims
	Type      string   `json:"typ"`
	SessionID string   `json:"sid,omitempty"`
	Name      string   `json:"name,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	AMR       []string `json:"amr,omitempty"`
}

// keyring signs with its first key and verifies with any of them. Its keys
// are swapped atomically when the secret rotates.
type keyring struct {
	state atomic.Pointer[keyState]
}

type keyState struct {
	current Key
	byID    map[string][]byte
}

func newKeyring(keys []Key) (*keyring, error) {
	kr := &keyring{}
	if err := kr.replace(keys); err != nil {
		return nil, err
	}
	return kr, nil
}

// replace makes keys[0] the signing key and all of keys the verifying ones;
// on error nothing changes.
func (kr *keyring) replace(keys []Key) error {
	st, err := newKeyState(keys)
	if err != nil {
		return err
	}
	kr.state.Store(st)
	return nil
}

func newKeyState(keys []Key) (*keyState, error) {
	if len(keys) == 0 {
		return nil, errors.New("no JWT signing key")
	}
	kr := &keyState{current: keys[0], byID: make(map[string][]byte, len(keys))}
	for i, k := range keys {
		if k.ID == "" || len(k.ID) > 64 {
			return nil, fmt.Errorf("JWT key %d: id must be 1 to 64 characters", i)
		}
		if len(k.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("JWT key %q: %d bytes, want at least %d", k.ID, len(k.Secret), MinKeyBytes)
		}
		if _, dup := kr.byID[k.ID]; dup {
			return nil, fmt.Errorf("JWT key %q: duplicate id", k.ID)
		}
		kr.byID[k.ID] = slices.Clone(k.Secret)
	}
	return kr, nil
}

func (kr *keyring) sign(c claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	cur := kr.state.Load().current
	t.Header["kid"] = cur.ID
	s, err := t.SignedString(cur.Secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

func (kr *keyring) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := kr.state.Load().byID[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return k, nil
}

// tokenParser verifies tokens of one type with the algorithm pinned to
// HS256 and iss, aud, exp, nbf, iat and jti required.
type tokenParser struct {
	kr       *keyring
	parser   *jwt.Parser
	audience string
}

func newTokenParser(kr *keyring, issuer, audience string, now func() time.Time) *tokenParser {
	return &tokenParser{kr: kr, audience: audience, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)}
}

// parse verifies raw and checks it is of type typ.
func (p *tokenParser) parse(raw, typ string) (*claims, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: empty or too long", ErrInvalidToken)
	}
	c := &claims{}
	if _, err := p.parser.ParseWithClaims(raw, c, p.kr.keyFunc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case c.Type != typ:
		return nil, fmt.Errorf("%w: type %q, want %q", ErrInvalidToken, c.Type, typ)
	case c.ID == "" || c.Subject == "" || c.IssuedAt == nil:
		return nil, fmt.Errorf("%w: jti, sub or iat missing", ErrInvalidToken)
	case typ == typAccess && c.SessionID == "":
		return nil, fmt.Errorf("%w: sid missing", ErrInvalidToken)
	}
	return c, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomID returns prefix followed by n random bytes in lower-case base32.
func randomID(r io.Reader, prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return prefix + strings.ToLower(b32.EncodeToString(b)), nil
}

// Opaque token prefixes. They let secret scanners recognise leaked tokens
// and let parsers refuse garbage before any store lookup.
const (
	refreshPrefix = "rt_"
	resetPrefix   = "rst_"
	devicePrefix  = "dv_"
)

// newOpaque returns a 256-bit opaque token with prefix and its SHA-256 hash.
func newOpaque(r io.Reader, prefix string) (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", nil, fmt.Errorf("random: %w", err)
	}
	tok := prefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	return tok, h[:], nil
}

// ParseOpaque checks that tok is a well-formed opaque token with prefix
// (prefix, then 43 base64url characters encoding 32 bytes) and returns the
// SHA-256 hash the store keeps.
func ParseOpaque(tok, prefix string) ([]byte, error) {
	body, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(body) != 43 {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	h := sha256.Sum256([]byte(tok))
	return h[:], nil
}

// Backup codes: 16 characters of lower-case base32 (80 bits) shown in
// groups of four.
const backupCodeChars = 16

func newBackupCode(r io.Reader) (string, []byte, error) {
	b := make([]byte, 10)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", nil, fmt.Errorf("random: %w", err)
	}
	raw := strings.ToLower(b32.EncodeToString(b))
	h := sha256.Sum256([]byte(raw))
	return raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16], h[:], nil
}

// parseBackupCode normalises a typed backup code (case, dashes and spaces
// ignored) and returns its hash, or false when it cannot be one.
func parseBackupCode(s string) ([]byte, bool) {
	if len(s) > 64 {
		return nil, false
	}
	var sb strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c == '-' || c == ' ':
		case c >= 'a' && c <= 'z' || c >= '2' && c <= '7':
			sb.WriteRune(c)
		default:
			return nil, false
		}
	}
	if sb.Len() != backupCodeChars {
		return nil, false
	}
	h := sha256.Sum256([]byte(sb.String()))
	return h[:], true
}
