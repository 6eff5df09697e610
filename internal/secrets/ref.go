package secrets

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Scheme names where a secret comes from.
type Scheme string

// Schemes.
const (
	SchemeInline Scheme = "inline" // the value itself, written in the config
	SchemeEnv    Scheme = "env"    // env:NAME
	SchemeFile   Scheme = "file"   // file:/path
	SchemeAWS    Scheme = "aws-sm" // aws-sm:NAME[#field]
	SchemeVault  Scheme = "vault"  // vault:MOUNT/PATH#field
)

// ErrInlineSecret is returned when an inline secret is used in production mode.
var ErrInlineSecret = errors.New("inline secret refused in production mode: use env:, file:, aws-sm: or vault:")

// Ref is a parsed secret reference.
type Ref struct {
	Scheme Scheme
	// Name is the environment variable (env), the file path (file), the
	// secret ID or ARN (aws-sm) or the path under the mount (vault).
	Name string
	// Mount is the KV v2 mount (vault only).
	Mount string
	// Field selects a key of a JSON secret (aws-sm, optional) or of the KV
	// data (vault, required).
	Field string

	inline Secret
}

// ParseRef parses a secret reference. A string without a known scheme is an
// inline secret; "inline:VALUE" writes one explicitly (for a value that itself
// contains a colon). A lowercase word before a colon that is not a known
// scheme is an error, so a typo such as "evn:KEY" is not taken as a value.
func ParseRef(s string) (Ref, error) {
	scheme, rest, found := strings.Cut(s, ":")
	if !found || !looksLikeScheme(scheme) {
		if s == "" {
			return Ref{}, errors.New("empty secret")
		}
		return Ref{Scheme: SchemeInline, inline: NewSecret([]byte(s))}, nil
	}
	switch Scheme(scheme) {
	case SchemeInline:
		if rest == "" {
			return Ref{}, errors.New("inline: empty secret")
		}
		return Ref{Scheme: SchemeInline, inline: NewSecret([]byte(rest))}, nil
	case SchemeEnv:
		if !validEnvName(rest) {
			return Ref{}, fmt.Errorf("env: %q is not an environment variable name", rest)
		}
		return Ref{Scheme: SchemeEnv, Name: rest}, nil
	case SchemeFile:
		if rest == "" || strings.ContainsRune(rest, 0) {
			return Ref{}, errors.New("file: path is empty or contains NUL")
		}
		return Ref{Scheme: SchemeFile, Name: rest}, nil
	case SchemeAWS:
		name, field, hasField := strings.Cut(rest, "#")
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			return Ref{}, fmt.Errorf("aws-sm: %q is not a secret name", name)
		}
		if hasField && field == "" {
			return Ref{}, errors.New("aws-sm: empty field after #")
		}
		return Ref{Scheme: SchemeAWS, Name: name, Field: field}, nil
	case SchemeVault:
		p, field, hasField := strings.Cut(rest, "#")
		if !hasField || field == "" {
			return Ref{}, errors.New("vault: a #field is required (vault:MOUNT/PATH#field)")
		}
		mount, path, ok := strings.Cut(p, "/")
		if !ok || mount == "" || path == "" || !validVaultPath(mount) || !validVaultPath(path) {
			return Ref{}, fmt.Errorf("vault: %q is not MOUNT/PATH", p)
		}
		return Ref{Scheme: SchemeVault, Mount: mount, Name: strings.Trim(path, "/"), Field: field}, nil
	}
	return Ref{}, fmt.Errorf("unknown secret scheme %q (known: env, file, aws-sm, vault; write inline:VALUE for a literal)", scheme)
}

// looksLikeScheme reports whether s is shaped like a scheme word.
func looksLikeScheme(s string) bool {
	if len(s) < 2 || len(s) > 16 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c == '-' || (c >= '0' && c <= '9')):
		default:
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

func validVaultPath(s string) bool {
	for _, seg := range strings.Split(strings.Trim(s, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for _, c := range s {
		if c < 0x21 || c == 0x7f || c == '?' || c == '%' {
			return false
		}
	}
	return true
}

// IsInline reports whether the reference is a literal value.
func (r Ref) IsInline() bool { return r.Scheme == SchemeInline }

// Inline returns the literal value of an inline reference.
func (r Ref) Inline() Secret { return r.inline }

// Allowed returns ErrInlineSecret for an inline secret in production mode and
// nil otherwise. Development mode accepts inline secrets; callers warn.
func (r Ref) Allowed(production bool) error {
	if production && r.IsInline() {
		return ErrInlineSecret
	}
	return nil
}

// String renders the reference; an inline value is redacted.
func (r Ref) String() string {
	switch r.Scheme {
	case SchemeInline:
		return "inline:" + Redacted
	case SchemeVault:
		return "vault:" + r.Mount + "/" + r.Name + "#" + r.Field
	case SchemeAWS:
		if r.Field != "" {
			return "aws-sm:" + r.Name + "#" + r.Field
		}
		return "aws-sm:" + r.Name
	}
	return string(r.Scheme) + ":" + r.Name
}

// LogValue logs the redacted String form.
func (r Ref) LogValue() slog.Value { return slog.StringValue(r.String()) }
