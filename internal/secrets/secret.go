package secrets

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a Secret prints in place of its value.
const Redacted = "[REDACTED]"

// Secret is a secret value. It prints, logs and marshals as Redacted; only
// Bytes gives the value.
type Secret struct {
	b []byte
}

// NewSecret returns a Secret holding a copy of b.
func NewSecret(b []byte) Secret {
	return Secret{b: append([]byte(nil), b...)}
}

// Bytes returns the value. The caller must not modify it.
func (s Secret) Bytes() []byte { return s.b }

// Len is the value's length in bytes.
func (s Secret) Len() int { return len(s.b) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares two secrets in constant time (for equal lengths).
func (s Secret) Equal(o Secret) bool {
	return len(s.b) == len(o.b) && subtle.ConstantTimeCompare(s.b, o.b) == 1
}

// String returns Redacted.
func (s Secret) String() string { return Redacted }

// GoString returns Redacted, so %#v does not show the value either.
func (s Secret) GoString() string { return Redacted }

// Format prints Redacted for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// LogValue makes slog print Redacted.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON writes Redacted, so a Secret inside a JSON document leaks nothing.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText writes Redacted.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
