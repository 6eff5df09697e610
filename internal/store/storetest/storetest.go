// Package storetest holds the contract tests every key store backend must
// pass. Backends call Keys from their own tests with a function that opens a
// fresh, migrated, empty store (own SQLite file, own PostgreSQL schema).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// KeyStore is the set of key operations a backend provides. Consumers
// declare the subsets they use; this is the union the contract covers.
type KeyStore interface {
	Migrate(ctx context.Context) error
	CreateKey(ctx context.Context, rec apikey.Record) error
	LookupKey(ctx context.Context, id string) (apikey.Record, error)
	ListKeys(ctx context.Context) ([]apikey.Record, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	RotateKey(ctx context.Context, oldID string, at, graceUntil time.Time, successor apikey.Record) error
	TouchKeys(ctx context.Context, used map[string]time.Time) error
	RehashKey(ctx context.Context, id string, hash []byte, pepperVersion int) error
}

// base is a fixed instant with microsecond precision, which both backends
// keep exactly.
var base = time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC)

var counter struct {
	sync.Mutex
	n int
}

// newID returns a valid, unique key ID.
func newID() string {
	counter.Lock()
	defer counter.Unlock()
	counter.n++
	return fmt.Sprintf("T%011d", counter.n)
}

func record(name string, perm reqinfo.Permission, created time.Time) apikey.Record {
	id := newID()
	return apikey.Record{
		ID:            id,
		Name:          name,
		Hash:          []byte("h-" + id + "-0123456789abcdefghij"),
		PepperVersion: 1,
		Permissions:   perm,
		CreatedAt:     created,
		CreatedBy:     "test",
	}
}

// Keys runs the key store contract. open must return a new, empty store
// that has been migrated; Keys does not close it (use t.Cleanup in open).
func Keys(t *testing.T, open func(t *testing.T) KeyStore) {
	ctx := context.Background()

	t.Run("CreateLookup", func(t *testing.T) {
		s := open(t)
		full := record("full", reqinfo.PermRead|reqinfo.PermWrite, base)
		full.ExpiresAt = base.Add(24 * time.Hour)
		full.LastUsedAt = base.Add(time.Minute)
		full.RevokedAt = base.Add(time.Hour)
		full.RotatedFrom = "X00000000000"
		full.RotatedAt = base.Add(2 * time.Hour)
		full.GraceUntil = base.Add(3 * time.Hour)
		minimal := record("minimal", reqinfo.PermAdmin, base)
		minimal.CreatedBy = ""
		for _, want := range []apikey.Record{full, minimal} {
			if err := s.CreateKey(ctx, want); err != nil {
				t.Fatalf("CreateKey(%s): %v", want.Name, err)
			}
			got, err := s.LookupKey(ctx, want.ID)
			if err != nil {
				t.Fatalf("LookupKey(%s): %v", want.Name, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("record %s round trip (-want +got):\n%s", want.Name, diff)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Fatalf("times not in UTC: %v", got.CreatedAt.Location())
			}
		}
	})

	t.Run("TimesNormalised", func(t *testing.T) {
		s := open(t)
		rec := record("zone", reqinfo.PermRead, base.Add(789).In(time.FixedZone("X", 3600)))
		if err := s.CreateKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupKey(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(base) || got.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt = %v, want %v (UTC, microseconds)", got.CreatedAt, base)
		}
	})

	t.Run("LookupMissing", func(t *testing.T) {
		s := open(t)
		if _, err := s.LookupKey(ctx, "Missing00000"); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("LookupKey(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("CreateDuplicate", func(t *testing.T) {
		s := open(t)
		rec := record("dup", reqinfo.PermRead, base)
		if err := s.CreateKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
		rec.Name = "other"
		if err := s.CreateKey(ctx, rec); !errors.Is(err, apikey.ErrConflict) {
			t.Fatalf("duplicate CreateKey = %v, want ErrConflict", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		got, err := s.ListKeys(ctx)
		if err != nil || len(got) != 0 {
			t.Fatalf("ListKeys on empty store = %v, %v", got, err)
		}
		var want []apikey.Record
		for i := 3; i > 0; i-- {
			rec := record(fmt.Sprint("k", i), reqinfo.PermRead, base.Add(time.Duration(i)*time.Second))
			if err := s.CreateKey(ctx, rec); err != nil {
				t.Fatal(err)
			}
			want = append(want, rec)
		}
		slices.Reverse(want) // oldest first
		got, err = s.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ListKeys (-want +got):\n%s", diff)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		rec := record("rev", reqinfo.PermRead, base)
		if err := s.CreateKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Hour)
		if err := s.RevokeKey(ctx, rec.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, rec.ID, at.Add(time.Hour)); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
		got, err := s.LookupKey(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.RevokedAt.Equal(at) {
			t.Fatalf("RevokedAt = %v, want first revocation %v", got.RevokedAt, at)
		}
		if err := s.RevokeKey(ctx, "Missing00000", at); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("RevokeKey(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("Rotate", func(t *testing.T) {
		s := open(t)
		old := record("old", reqinfo.PermWrite, base)
		if err := s.CreateKey(ctx, old); err != nil {
			t.Fatal(err)
		}
		at, grace := base.Add(time.Hour), base.Add(25*time.Hour)
		next := record("old", reqinfo.PermWrite, at)
		if err := s.RotateKey(ctx, old.ID, at, grace, next); err != nil {
			t.Fatal(err)
		}
		gotOld, err := s.LookupKey(ctx, old.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantOld := old
		wantOld.RotatedAt, wantOld.GraceUntil = at, grace
		if diff := cmp.Diff(wantOld, gotOld); diff != "" {
			t.Fatalf("old key after rotate (-want +got):\n%s", diff)
		}
		gotNext, err := s.LookupKey(ctx, next.ID)
		if err != nil {
			t.Fatal(err)
		}
		next.RotatedFrom = old.ID
		if diff := cmp.Diff(next, gotNext); diff != "" {
			t.Fatalf("successor (-want +got):\n%s", diff)
		}

		again := record("again", reqinfo.PermWrite, at)
		if err := s.RotateKey(ctx, old.ID, at, grace, again); !errors.Is(err, apikey.ErrConflict) {
			t.Fatalf("rotating a rotated key = %v, want ErrConflict", err)
		}
		if _, err := s.LookupKey(ctx, again.ID); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("refused rotation left successor behind: %v", err)
		}
		if err := s.RotateKey(ctx, "Missing00000", at, grace, again); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("rotating missing key = %v, want ErrNotFound", err)
		}

		revoked := record("revoked", reqinfo.PermRead, base)
		if err := s.CreateKey(ctx, revoked); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, revoked.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := s.RotateKey(ctx, revoked.ID, at, grace, again); !errors.Is(err, apikey.ErrConflict) {
			t.Fatalf("rotating a revoked key = %v, want ErrConflict", err)
		}

		// A successor whose ID collides must leave the old key untouched.
		fresh := record("fresh", reqinfo.PermRead, base)
		if err := s.CreateKey(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		clash := record("clash", reqinfo.PermRead, at)
		clash.ID = next.ID
		if err := s.RotateKey(ctx, fresh.ID, at, grace, clash); !errors.Is(err, apikey.ErrConflict) {
			t.Fatalf("rotate with duplicate successor = %v, want ErrConflict", err)
		}
		gotFresh, err := s.LookupKey(ctx, fresh.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !gotFresh.RotatedAt.IsZero() || !gotFresh.GraceUntil.IsZero() {
			t.Fatalf("failed rotation changed the old key: %+v", gotFresh)
		}
	})

	t.Run("Touch", func(t *testing.T) {
		s := open(t)
		a := record("a", reqinfo.PermRead, base)
		b := record("b", reqinfo.PermRead, base)
		for _, r := range []apikey.Record{a, b} {
			if err := s.CreateKey(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TouchKeys(ctx, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
		t1, t2 := base.Add(time.Minute), base.Add(2*time.Minute)
		if err := s.TouchKeys(ctx, map[string]time.Time{a.ID: t2, b.ID: t1, "Missing00000": t1}); err != nil {
			t.Fatal(err)
		}
		// An older timestamp never moves last_used_at backwards.
		if err := s.TouchKeys(ctx, map[string]time.Time{a.ID: t1}); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]time.Time{a.ID: t2, b.ID: t1} {
			got, err := s.LookupKey(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastUsedAt.Equal(want) {
				t.Fatalf("LastUsedAt(%s) = %v, want %v", id, got.LastUsedAt, want)
			}
		}
	})

	t.Run("Rehash", func(t *testing.T) {
		s := open(t)
		rec := record("r", reqinfo.PermRead, base)
		if err := s.CreateKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
		newHash := []byte("new-hash-0123456789abcdef0123456")
		if err := s.RehashKey(ctx, rec.ID, newHash, 2); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupKey(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Hash) != string(newHash) || got.PepperVersion != 2 {
			t.Fatalf("after rehash: hash %q version %d", got.Hash, got.PepperVersion)
		}
		if err := s.RehashKey(ctx, "Missing00000", newHash, 2); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("RehashKey(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("MigrateIdempotent", func(t *testing.T) {
		s := open(t)
		rec := record("m", reqinfo.PermRead, base)
		if err := s.CreateKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		if _, err := s.LookupKey(ctx, rec.ID); err != nil {
			t.Fatalf("key lost after second Migrate: %v", err)
		}
	})

	t.Run("ConcurrentWrites", func(t *testing.T) {
		s := open(t)
		const n = 8
		recs := make([]apikey.Record, n)
		for i := range recs {
			recs[i] = record(fmt.Sprint("c", i), reqinfo.PermRead, base)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for _, r := range recs {
			wg.Go(func() {
				if err := s.CreateKey(ctx, r); err != nil {
					errs <- err
					return
				}
				errs <- s.TouchKeys(ctx, map[string]time.Time{r.ID: base.Add(time.Second)})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("ListKeys returned %d keys, want %d", len(got), n)
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.LookupKey(cctx, "Missing00000")
		if err == nil || errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("LookupKey with canceled context = %v, want a non-not-found error", err)
		}
	})
}
