package cli

import (
	"context"

	"github.com/rampart-security/rampart/internal/store"
)

// keyStore is what the keys and migrate commands need from a backend.
type keyStore = store.Store

// openStore opens the store named by rawURL and applies migrations.
func openStore(ctx context.Context, rawURL string) (keyStore, error) {
	return store.Open(ctx, rawURL)
}
