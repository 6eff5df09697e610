package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-security/rampart/internal/store/storetest"
)

// testURL returns RAMPART_TEST_POSTGRES_URL, skipping (or failing when
// RAMPART_TEST_REQUIRE_SERVICES=1) when it is unset.
func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("RAMPART_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("RAMPART_TEST_POSTGRES_URL is unset and RAMPART_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("RAMPART_TEST_POSTGRES_URL is unset")
	}
	return u
}

// schemaURL creates a fresh schema, dropped in t.Cleanup, and returns the
// test URL with search_path pointing at it.
func schemaURL(t *testing.T) string {
	t.Helper()
	base := testURL(t)
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	schema := "rampart_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openTest(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, schemaURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeysContract(t *testing.T) {
	testURL(t)
	storetest.Keys(t, func(t *testing.T) storetest.KeyStore { return openTest(t) })
}

func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	u := schemaURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			s, err := Open(ctx, u)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			errs <- s.Migrate(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES (999)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Migrate on newer schema = %v", err)
	}
}

func TestCheckTLS(t *testing.T) {
	tests := []struct {
		name string
		conn string
		ok   bool
	}{
		{"remote require", "postgres://u:p@db.example.com/rampart?sslmode=require", true},
		{"remote verify-full", "postgres://u:p@db.example.com/rampart?sslmode=verify-full", true},
		{"remote verify-ca", "postgres://u:p@db.example.com/rampart?sslmode=verify-ca", true},
		{"remote default prefer", "postgres://u:p@db.example.com/rampart", false},
		{"remote prefer", "postgres://u:p@db.example.com/rampart?sslmode=prefer", false},
		{"remote allow", "postgres://u:p@db.example.com/rampart?sslmode=allow", false},
		{"remote disable", "postgres://u:p@10.0.0.5:5432/rampart?sslmode=disable", false},
		{"dsn disable", "host=db.example.com user=u sslmode=disable", false},
		{"dsn require", "host=db.example.com user=u sslmode=require", true},
		{"multi host one plain", "postgres://u@127.0.0.1,db.example.com/rampart?sslmode=disable", false},
		{"loopback v4 disable", "postgres://u@127.0.0.1:5432/rampart?sslmode=disable", true},
		{"loopback v6 disable", "postgres://u@[::1]:5432/rampart?sslmode=disable", true},
		{"localhost disable", "postgres://u@localhost/rampart?sslmode=disable", true},
		{"unix socket", "host=/var/run/postgresql user=u sslmode=disable", true},
		{"unparsable", "postgres://u@db.example.com/rampart?sslmode=bogus", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTLS(tt.conn)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckTLS(%q) = %v, want ok=%v", tt.conn, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), ":p@") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
