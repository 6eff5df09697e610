package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/rampart-security/rampart/internal/admin"
	"github.com/rampart-security/rampart/internal/store/postgres"
	"github.com/rampart-security/rampart/internal/store/sqlite"
)

// keyStore is what the keys and migrate commands need from a backend;
// *sqlite.Store and *postgres.Store satisfy it.
type keyStore interface {
	admin.Store
	Migrate(ctx context.Context) error
	Close() error
}

// storeLocation says which backend a store URL names and how to reach it.
type storeLocation struct {
	backend string // "sqlite" or "postgres"
	target  string // file path or PostgreSQL connection string
}

// parseStoreURL accepts:
//
//	sqlite:///abs/path/rampart.db   absolute path
//	sqlite://rel/rampart.db         relative path
//	sqlite:rampart.db               relative path
//	/path/rampart.db, rampart.db    a bare path means SQLite
//	postgres://... postgresql://... PostgreSQL connection URL
func parseStoreURL(raw string) (storeLocation, error) {
	switch {
	case raw == "":
		return storeLocation{}, fmt.Errorf("no store: give --store (sqlite:///path/rampart.db or postgres://...) or set RAMPART_STORE_URL")
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return storeLocation{backend: "postgres", target: raw}, nil
	case strings.HasPrefix(raw, "sqlite://"):
		raw = strings.TrimPrefix(raw, "sqlite://")
	case strings.HasPrefix(raw, "sqlite:"):
		raw = strings.TrimPrefix(raw, "sqlite:")
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		return storeLocation{}, fmt.Errorf("store URL scheme %q: want sqlite or postgres", scheme)
	}
	if raw == "" {
		return storeLocation{}, fmt.Errorf("sqlite store URL without a path")
	}
	return storeLocation{backend: "sqlite", target: raw}, nil
}

// openStore opens the store named by rawURL and applies migrations, so
// every command sees the current schema.
func openStore(ctx context.Context, rawURL string) (keyStore, error) {
	loc, err := parseStoreURL(rawURL)
	if err != nil {
		return nil, err
	}
	var s keyStore
	switch loc.backend {
	case "postgres":
		s, err = postgres.Open(ctx, loc.target)
	default:
		s, err = sqlite.Open(ctx, loc.target)
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
