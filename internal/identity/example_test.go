package identity_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/store/sqlite"
)

// The integrator mounts the handler under /.rampart/ and uses
// Authenticate on routes that take people.
func ExampleService_Authenticate() {
	dir, err := os.MkdirTemp("", "rampart-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "rampart.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	svc, err := identity.New(identity.Options{
		Store: store,
		Keys:  []identity.Key{{ID: "2026-03", Secret: []byte("0123456789abcdef0123456789abcdef")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/.rampart/", svc.Handler())
	mux.HandleFunc("/agents", func(w http.ResponseWriter, r *http.Request) {
		p, err := svc.Authenticate(r)
		switch {
		case errors.Is(err, identity.ErrUnavailable):
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case errors.Is(err, identity.ErrMFARequired):
			http.Error(w, "second factor required", http.StatusForbidden)
		case err != nil:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		default:
			fmt.Fprintf(w, "hello %s (%s)\n", p.Name, p.Permissions)
		}
	})
	_ = mux // serve it on the public listener
}
