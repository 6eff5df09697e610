// Package sqlite is Rampart's default store: one SQLite file in WAL mode,
// through the pure-Go modernc.org/sqlite driver so the binary stays static
// and cgo-free. It translates driver errors to the sentinels in
// internal/apikey (ErrNotFound, ErrConflict), so consumers never import it.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/store/migrations"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a SQLite-backed store. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database file at path with WAL
// journaling, a busy timeout and immediate write transactions. It does not
// migrate; call Migrate.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q contains '?' or '#'", path)
	}
	dsn := "file:" + path +
		"?_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(ON)" +
		"&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: journal mode is %q, want wal", path, mode)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database is reachable, for readiness probes.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFS, "migrations")
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction. It refuses a database
// whose schema is newer than this binary knows.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var newest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if known := ms[len(ms)-1].Version; newest.Valid && int(newest.Int64) > known {
		return fmt.Errorf("sqlite: migrate: database schema version %d is newer than this binary's %d", newest.Int64, known)
	}
	for _, m := range ms {
		if err := s.apply(ctx, m); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", m.Name, err)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, m migrations.Migration) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", m.Version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO schema_migrations (version, applied_at) VALUES (?, CAST(strftime('%s','now') AS INTEGER))", m.Version); err != nil {
		return err
	}
	return tx.Commit()
}

const keyColumns = `id, name, hash, pepper_version, permissions, created_at, created_by,
	expires_at, last_used_at, revoked_at, rotated_from, rotated_at, grace_until`

// CreateKey inserts rec. A duplicate ID is apikey.ErrConflict.
func (s *Store) CreateKey(ctx context.Context, rec apikey.Record) error {
	if err := insertKey(ctx, s.db, rec); err != nil {
		return fmt.Errorf("sqlite: create key %s: %w", rec.ID, err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertKey(ctx context.Context, db execer, rec apikey.Record) error {
	_, err := db.ExecContext(ctx, `INSERT INTO api_keys (`+keyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.ID, rec.Name, rec.Hash, rec.PepperVersion, int64(rec.Permissions),
		micros(rec.CreatedAt).Int64, rec.CreatedBy,
		micros(rec.ExpiresAt), micros(rec.LastUsedAt), micros(rec.RevokedAt),
		rec.RotatedFrom, micros(rec.RotatedAt), micros(rec.GraceUntil))
	return translate(err)
}

// LookupKey returns the key with id, or apikey.ErrNotFound.
func (s *Store) LookupKey(ctx context.Context, id string) (apikey.Record, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = ?", id)
	rec, err := scanKey(row)
	if err != nil {
		return apikey.Record{}, fmt.Errorf("sqlite: lookup key %s: %w", id, translate(err))
	}
	return rec, nil
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]apikey.Record, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+keyColumns+" FROM api_keys ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	defer rows.Close()
	recs := []apikey.Record{}
	for rows.Next() {
		rec, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", err)
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	return recs, nil
}

// RevokeKey marks the key revoked at at. Revoking twice keeps the first
// time. A missing key is apikey.ErrNotFound.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx,
		"UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", micros(at).Int64, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: revoke key %s: %w", id, err)
	}
	return nil
}

// RotateKey atomically marks oldID rotated at at, usable until graceUntil,
// and inserts successor with RotatedFrom set to oldID. A missing old key is
// apikey.ErrNotFound; a revoked or already rotated one, or a duplicate
// successor ID, is apikey.ErrConflict, and nothing changes.
func (s *Store) RotateKey(ctx context.Context, oldID string, at, graceUntil time.Time, successor apikey.Record) error {
	err := s.rotate(ctx, oldID, at, graceUntil, successor)
	if err != nil {
		return fmt.Errorf("sqlite: rotate key %s: %w", oldID, err)
	}
	return nil
}

func (s *Store) rotate(ctx context.Context, oldID string, at, graceUntil time.Time, successor apikey.Record) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE api_keys SET rotated_at = ?, grace_until = ?
		WHERE id = ? AND revoked_at IS NULL AND rotated_at IS NULL`,
		micros(at).Int64, micros(graceUntil).Int64, oldID)
	if err := oneRow(res, err); err != nil {
		if !errors.Is(err, apikey.ErrNotFound) {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM api_keys WHERE id = ?", oldID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return apikey.ErrNotFound
		}
		return apikey.ErrConflict
	}
	successor.RotatedFrom = oldID
	if err := insertKey(ctx, tx, successor); err != nil {
		return err
	}
	return tx.Commit()
}

// TouchKeys records last use for a batch of keys in one transaction. A
// time older than the stored one is ignored, as are unknown IDs.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: touch keys: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx,
		"UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?")
	if err != nil {
		return fmt.Errorf("sqlite: touch keys: %w", err)
	}
	defer stmt.Close()
	for id, at := range used {
		if _, err := stmt.ExecContext(ctx, micros(at).Int64, id); err != nil {
			return fmt.Errorf("sqlite: touch key %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: touch keys: %w", err)
	}
	return nil
}

// RehashKey replaces the key's hash with one made under pepperVersion.
func (s *Store) RehashKey(ctx context.Context, id string, hash []byte, pepperVersion int) error {
	res, err := s.db.ExecContext(ctx,
		"UPDATE api_keys SET hash = ?, pepper_version = ? WHERE id = ?", hash, pepperVersion, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: rehash key %s: %w", id, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (apikey.Record, error) {
	var (
		rec                                    apikey.Record
		perm, created                          int64
		expires, used, revoked, rotated, grace sql.NullInt64
	)
	if err := row.Scan(&rec.ID, &rec.Name, &rec.Hash, &rec.PepperVersion, &perm, &created, &rec.CreatedBy,
		&expires, &used, &revoked, &rec.RotatedFrom, &rotated, &grace); err != nil {
		return apikey.Record{}, err
	}
	rec.Permissions = reqinfo.Permission(perm)
	rec.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	rec.ExpiresAt = fromMicros(expires)
	rec.LastUsedAt = fromMicros(used)
	rec.RevokedAt = fromMicros(revoked)
	rec.RotatedAt = fromMicros(rotated)
	rec.GraceUntil = fromMicros(grace)
	return rec, nil
}

// micros stores t as Unix microseconds; the zero time is NULL.
func micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func oneRow(res sql.Result, err error) error {
	if err != nil {
		return translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return apikey.ErrNotFound
	}
	return nil
}

// translate maps driver errors to the apikey sentinels.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", apikey.ErrConflict, err)
		}
	}
	return err
}
