package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Fetched is what a provider read: the current version and, when the source
// keeps one, the previous.
type Fetched struct {
	Current  Version
	Previous *Version
}

// Provider reads the secret a reference points to.
type Provider interface {
	Fetch(ctx context.Context, ref Ref) (Fetched, error)
}

// PreviousSuffix is appended to an environment variable name or a file path
// to give the previous version for env and file references: during a
// rotation, API_PEPPER_PREVIOUS or /run/secrets/pepper.previous holds the old
// value on every instance, including ones started mid-rotation.
const (
	EnvPreviousSuffix  = "_PREVIOUS"
	FilePreviousSuffix = ".previous"
)

// EnvProvider reads env:NAME from the process environment.
type EnvProvider struct {
	// LookupEnv defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Fetch reads NAME and, when set, NAME_PREVIOUS.
func (p EnvProvider) Fetch(_ context.Context, ref Ref) (Fetched, error) {
	lookup := p.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(ref.Name)
	if !ok {
		return Fetched{}, fmt.Errorf("environment variable %s is not set", ref.Name)
	}
	if v == "" {
		return Fetched{}, fmt.Errorf("environment variable %s is empty", ref.Name)
	}
	f := Fetched{Current: contentVersion([]byte(v))}
	if pv, ok := lookup(ref.Name + EnvPreviousSuffix); ok && pv != "" {
		prev := contentVersion([]byte(pv))
		f.Previous = &prev
	}
	return f, nil
}

// FileProvider reads file:/path, as mounted by Kubernetes or Docker secrets.
// One trailing newline (LF or CRLF) is removed.
type FileProvider struct {
	// ReadFile defaults to os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// Fetch reads the file and, when it exists, the file with ".previous" appended.
func (p FileProvider) Fetch(_ context.Context, ref Ref) (Fetched, error) {
	read := p.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := read(ref.Name)
	if err != nil {
		return Fetched{}, fmt.Errorf("read secret file: %w", err)
	}
	b = trimNewline(b)
	if len(b) == 0 {
		return Fetched{}, fmt.Errorf("secret file %s is empty", ref.Name)
	}
	f := Fetched{Current: contentVersion(b)}
	pb, err := read(ref.Name + FilePreviousSuffix)
	switch {
	case err == nil:
		if pb = trimNewline(pb); len(pb) > 0 {
			prev := contentVersion(pb)
			f.Previous = &prev
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return Fetched{}, fmt.Errorf("read previous secret file: %w", err)
	}
	return f, nil
}

// InlineProvider serves inline references (development mode only; the
// manager refuses them in production before asking).
type InlineProvider struct{}

// Fetch returns the literal value.
func (InlineProvider) Fetch(_ context.Context, ref Ref) (Fetched, error) {
	if ref.inline.IsZero() {
		return Fetched{}, errors.New("empty inline secret")
	}
	return Fetched{Current: contentVersion(ref.inline.Bytes())}, nil
}

func contentVersion(b []byte) Version {
	return Version{ID: ContentID(b), Value: NewSecret(b)}
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
