// Package store opens the key store named by one URL: SQLite (the default,
// a file in the state directory) or PostgreSQL (several instances). The
// backends live in the sqlite and postgres sub-packages and share one
// contract, tested by storetest.
package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/rampart-security/rampart/internal/admin"
	"github.com/rampart-security/rampart/internal/store/postgres"
	"github.com/rampart-security/rampart/internal/store/sqlite"
)

// Backends.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Store is what the gateway and the commands need from a backend;
// *sqlite.Store and *postgres.Store satisfy it.
type Store interface {
	admin.Store
	Migrate(ctx context.Context) error
	Ping(ctx context.Context) error
	Close() error
}

// Location says which backend a store URL names and how to reach it.
type Location struct {
	Backend string // BackendSQLite or BackendPostgres
	Target  string // file path or PostgreSQL connection string
}

// ParseURL accepts:
//
//	sqlite:///abs/path/rampart.db   absolute path
//	sqlite://rel/rampart.db         relative path
//	sqlite:rampart.db               relative path
//	/path/rampart.db, rampart.db    a bare path means SQLite
//	postgres://... postgresql://... PostgreSQL connection URL
func ParseURL(raw string) (Location, error) {
	switch {
	case raw == "":
		return Location{}, fmt.Errorf("no store URL: want sqlite:///path/rampart.db or postgres://...")
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return Location{Backend: BackendPostgres, Target: raw}, nil
	case strings.HasPrefix(raw, "sqlite://"):
		raw = strings.TrimPrefix(raw, "sqlite://")
	case strings.HasPrefix(raw, "sqlite:"):
		raw = strings.TrimPrefix(raw, "sqlite:")
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		return Location{}, fmt.Errorf("store URL scheme %q: want sqlite or postgres", scheme)
	}
	if raw == "" {
		return Location{}, fmt.Errorf("sqlite store URL without a path")
	}
	return Location{Backend: BackendSQLite, Target: raw}, nil
}

// CheckTLS refuses a PostgreSQL URL that would talk to a host off loopback
// without sslmode=require or stronger; SQLite always passes.
func (l Location) CheckTLS() error {
	if l.Backend != BackendPostgres {
		return nil
	}
	return postgres.CheckTLS(l.Target)
}

// Open opens the store named by rawURL and applies migrations, so every
// caller sees the current schema.
func Open(ctx context.Context, rawURL string) (Store, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var s Store
	switch loc.Backend {
	case BackendPostgres:
		s, err = postgres.Open(ctx, loc.Target)
	default:
		s, err = sqlite.Open(ctx, loc.Target)
	}
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
