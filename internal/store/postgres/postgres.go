// Package postgres is Rampart's shared store for several instances: a
// PostgreSQL database through a pgx connection pool. It translates driver
// errors to the sentinels in internal/apikey (ErrNotFound, ErrConflict), so
// consumers never import pgx.
//
// Tables live in the first schema of the connection's search_path; tests
// give each run its own schema by adding search_path=<schema> to the URL.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/store/migrations"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the pg_advisory_lock key serialising Migrate across
// instances starting at the same time ("rampart" in ASCII).
const migrationLock = 0x72616d70617274

// Store is a PostgreSQL-backed store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects a pool to connString (a postgres:// URL or key=value DSN)
// and checks it with a ping. It does not migrate; call Migrate. In
// production mode call CheckTLS on connString first.
func Open(ctx context.Context, connString string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse connection string: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks the database is reachable, for readiness probes.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// CheckTLS refuses a connection string that would talk to a host off
// loopback with anything weaker than sslmode=require (disable, allow and
// the libpq default prefer all permit plaintext). Loopback addresses,
// "localhost" and Unix sockets are exempt. It honours PG* environment
// variables the same way Open does. The integrator calls it in production
// mode before Open.
func CheckTLS(connString string) error {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return fmt.Errorf("postgres: parse connection string: %w", err)
	}
	type target struct {
		host string
		tls  bool
	}
	targets := []target{{cfg.Host, cfg.TLSConfig != nil}}
	for _, fb := range cfg.Fallbacks {
		targets = append(targets, target{fb.Host, fb.TLSConfig != nil})
	}
	for _, t := range targets {
		if !t.tls && !isLoopback(t.host) {
			return fmt.Errorf("postgres: host %s is not loopback and the connection allows plaintext; set sslmode=require, verify-ca or verify-full", t.host)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && addr.Unmap().IsLoopback()
}

func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFS, "migrations")
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction, holding an advisory lock
// so instances starting together do not race. It refuses a database whose
// schema is newer than this binary knows.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER     NOT NULL PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	var newest *int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil {
		return err
	}
	if known := ms[len(ms)-1].Version; newest != nil && *newest > known {
		return fmt.Errorf("database schema version %d is newer than this binary's %d", *newest, known)
	}
	for _, m := range ms {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM schema_migrations WHERE version = $1", m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.Version)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	return nil
}

const keyColumns = `id, name, hash, pepper_version, permissions, created_at, created_by,
	expires_at, last_used_at, revoked_at, rotated_from, rotated_at, grace_until`

// CreateKey inserts rec. A duplicate ID is apikey.ErrConflict.
func (s *Store) CreateKey(ctx context.Context, rec apikey.Record) error {
	if err := insertKey(ctx, s.pool, rec); err != nil {
		return fmt.Errorf("postgres: create key %s: %w", rec.ID, err)
	}
	return nil
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func insertKey(ctx context.Context, db execer, rec apikey.Record) error {
	_, err := db.Exec(ctx, `INSERT INTO api_keys (`+keyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		rec.ID, rec.Name, rec.Hash, rec.PepperVersion, int16(rec.Permissions),
		utc(rec.CreatedAt), rec.CreatedBy,
		nullTime(rec.ExpiresAt), nullTime(rec.LastUsedAt), nullTime(rec.RevokedAt),
		rec.RotatedFrom, nullTime(rec.RotatedAt), nullTime(rec.GraceUntil))
	return translate(err)
}

// LookupKey returns the key with id, or apikey.ErrNotFound.
func (s *Store) LookupKey(ctx context.Context, id string) (apikey.Record, error) {
	rec, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = $1", id))
	if err != nil {
		return apikey.Record{}, fmt.Errorf("postgres: lookup key %s: %w", id, translate(err))
	}
	return rec, nil
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]apikey.Record, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+keyColumns+" FROM api_keys ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	defer rows.Close()
	recs := []apikey.Record{}
	for rows.Next() {
		rec, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list keys: %w", err)
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	return recs, nil
}

// RevokeKey marks the key revoked at at. Revoking twice keeps the first
// time. A missing key is apikey.ErrNotFound.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		"UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2", utc(at), id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: revoke key %s: %w", id, err)
	}
	return nil
}

// RotateKey atomically marks oldID rotated at at, usable until graceUntil,
// and inserts successor with RotatedFrom set to oldID. A missing old key is
// apikey.ErrNotFound; a revoked or already rotated one, or a duplicate
// successor ID, is apikey.ErrConflict, and nothing changes.
func (s *Store) RotateKey(ctx context.Context, oldID string, at, graceUntil time.Time, successor apikey.Record) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET rotated_at = $1, grace_until = $2
			WHERE id = $3 AND revoked_at IS NULL AND rotated_at IS NULL`, utc(at), utc(graceUntil), oldID)
		if err := oneRow(tag, err); err != nil {
			if !errors.Is(err, apikey.ErrNotFound) {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM api_keys WHERE id = $1", oldID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return apikey.ErrNotFound
			}
			return apikey.ErrConflict
		}
		successor.RotatedFrom = oldID
		return insertKey(ctx, tx, successor)
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate key %s: %w", oldID, err)
	}
	return nil
}

// TouchKeys records last use for a batch of keys in one statement. A time
// older than the stored one is ignored, as are unknown IDs.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	times := make([]time.Time, 0, len(used))
	for id, at := range used {
		ids = append(ids, id)
		times = append(times, utc(at))
	}
	_, err := s.pool.Exec(ctx, `UPDATE api_keys AS k
		SET last_used_at = greatest(k.last_used_at, u.at)
		FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
		WHERE k.id = u.id`, ids, times)
	if err != nil {
		return fmt.Errorf("postgres: touch keys: %w", err)
	}
	return nil
}

// RehashKey replaces the key's hash with one made under pepperVersion.
func (s *Store) RehashKey(ctx context.Context, id string, hash []byte, pepperVersion int) error {
	tag, err := s.pool.Exec(ctx,
		"UPDATE api_keys SET hash = $1, pepper_version = $2 WHERE id = $3", hash, pepperVersion, id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: rehash key %s: %w", id, err)
	}
	return nil
}

func scanKey(row pgx.Row) (apikey.Record, error) {
	var (
		rec                                    apikey.Record
		perm                                   int16
		created                                time.Time
		expires, used, revoked, rotated, grace *time.Time
	)
	if err := row.Scan(&rec.ID, &rec.Name, &rec.Hash, &rec.PepperVersion, &perm, &created, &rec.CreatedBy,
		&expires, &used, &revoked, &rec.RotatedFrom, &rotated, &grace); err != nil {
		return apikey.Record{}, err
	}
	rec.Permissions = reqinfo.Permission(perm)
	rec.CreatedAt = created.UTC()
	rec.ExpiresAt = fromNull(expires)
	rec.LastUsedAt = fromNull(used)
	rec.RevokedAt = fromNull(revoked)
	rec.RotatedAt = fromNull(rotated)
	rec.GraceUntil = fromNull(grace)
	return rec, nil
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return utc(t)
}

// utc normalises t to UTC with microsecond precision, truncating as the
// SQLite store does (PostgreSQL itself would round).
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func oneRow(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return apikey.ErrNotFound
	}
	return nil
}

// translate maps driver errors to the apikey sentinels.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return apikey.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %w", apikey.ErrConflict, err)
	}
	return err
}
