package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rampart-security/rampart/internal/identity"
)

// This file implements identity.Store: users, second factors, sessions and
// their tokens. Errors are translated to identity.ErrNotFound and
// identity.ErrConflict.

const userColumns = `id, username, email, password_hash, status, roles, totp_secret, totp_pending,
	totp_last_step, created_at, updated_at, last_login_at, password_changed_at, locked_until`

// idErr maps driver errors to the identity sentinels: no row and a
// missing referenced row are ErrNotFound, a duplicate key ErrConflict.
func idErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return identity.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", identity.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", identity.ErrNotFound, err)
		}
	}
	return err
}

func idOneRow(res sql.Result, err error) error {
	if err != nil {
		return idErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return identity.ErrNotFound
	}
	return nil
}

func scanUser(row scanner) (identity.User, error) {
	var (
		u                              identity.User
		status, roles                  string
		created, updated               int64
		lastLogin, pwChanged, lockedTo sql.NullInt64
	)
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &status, &roles, &u.TOTPSecret,
		&u.TOTPPending, &u.TOTPLastStep, &created, &updated, &lastLogin, &pwChanged, &lockedTo); err != nil {
		return identity.User{}, err
	}
	u.Status = identity.Status(status)
	u.Roles = splitRoles(roles)
	u.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	u.UpdatedAt = fromMicros(sql.NullInt64{Int64: updated, Valid: true})
	u.LastLoginAt = fromMicros(lastLogin)
	u.PasswordChangedAt = fromMicros(pwChanged)
	u.LockedUntil = fromMicros(lockedTo)
	return u, nil
}

func splitRoles(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// CreateUser inserts u. A duplicate ID or username is identity.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u identity.User) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO users (`+userColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.Email, u.PasswordHash, string(u.Status), strings.Join(u.Roles, ","),
		u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, micros(u.CreatedAt).Int64, micros(u.UpdatedAt).Int64,
		micros(u.LastLoginAt), micros(u.PasswordChangedAt), micros(u.LockedUntil))
	if err != nil {
		return fmt.Errorf("sqlite: create user %s: %w", u.Username, idErr(err))
	}
	return nil
}

// LookupUser returns the user with id, or identity.ErrNotFound.
func (s *Store) LookupUser(ctx context.Context, id string) (identity.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return identity.User{}, fmt.Errorf("sqlite: lookup user %s: %w", id, idErr(err))
	}
	return u, nil
}

// LookupUsername returns the user called username, or identity.ErrNotFound.
func (s *Store) LookupUsername(ctx context.Context, username string) (identity.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE username = ?", username))
	if err != nil {
		return identity.User{}, fmt.Errorf("sqlite: lookup username: %w", idErr(err))
	}
	return u, nil
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]identity.User, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	us := []identity.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return us, nil
}

// UpdateUser replaces the mutable account fields of u.ID (not the TOTP
// last step, last login or lockout, which have their own methods).
func (s *Store) UpdateUser(ctx context.Context, u identity.User) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET username = ?, email = ?, password_hash = ?,
		status = ?, roles = ?, totp_secret = ?, totp_pending = ?, updated_at = ?, password_changed_at = ?
		WHERE id = ?`,
		u.Username, u.Email, u.PasswordHash, string(u.Status), strings.Join(u.Roles, ","),
		u.TOTPSecret, u.TOTPPending, micros(u.UpdatedAt).Int64, micros(u.PasswordChangedAt), u.ID)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: update user %s: %w", u.ID, err)
	}
	return nil
}

// SetLockedUntil sets or (zero time) clears the automatic lockout.
func (s *Store) SetLockedUntil(ctx context.Context, userID string, until time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE users SET locked_until = ? WHERE id = ?", micros(until), userID)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: lock out user %s: %w", userID, err)
	}
	return nil
}

// SetLastLogin records a successful login.
func (s *Store) SetLastLogin(ctx context.Context, userID string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE users SET last_login_at = ? WHERE id = ?", micros(at), userID)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: set last login of %s: %w", userID, err)
	}
	return nil
}

// DeleteUser erases the user; sessions, tokens, codes and counters go with
// it through ON DELETE CASCADE.
func (s *Store) DeleteUser(ctx context.Context, userID string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM users WHERE id = ?", userID)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete user %s: %w", userID, err)
	}
	return nil
}

// CountFailure records a failure and returns the count in the window.
func (s *Store) CountFailure(ctx context.Context, userID, kind string, at time.Time, window time.Duration) (int, error) {
	var n int
	cutoff := micros(at.Add(-window)).Int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO user_failures (user_id, kind, failures, window_start)
		VALUES (?, ?, 1, ?)
		ON CONFLICT (user_id, kind) DO UPDATE SET
			failures = CASE WHEN user_failures.window_start <= ? THEN 1 ELSE user_failures.failures + 1 END,
			window_start = CASE WHEN user_failures.window_start <= ? THEN excluded.window_start ELSE user_failures.window_start END
		RETURNING failures`, userID, kind, micros(at).Int64, cutoff, cutoff).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count %s failure of %s: %w", kind, userID, idErr(err))
	}
	return n, nil
}

// FailureCount returns the failures of kind inside the window ending at at.
func (s *Store) FailureCount(ctx context.Context, userID, kind string, at time.Time, window time.Duration) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT failures FROM user_failures
		WHERE user_id = ? AND kind = ? AND window_start > ?`, userID, kind, micros(at.Add(-window)).Int64).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s failures of %s: %w", kind, userID, err)
	}
	return n, nil
}

// ResetFailures clears the counter of kind.
func (s *Store) ResetFailures(ctx context.Context, userID, kind string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM user_failures WHERE user_id = ? AND kind = ?", userID, kind); err != nil {
		return fmt.Errorf("sqlite: reset %s failures of %s: %w", kind, userID, err)
	}
	return nil
}

// UseTOTPStep records step unless it is not newer than the last one
// (identity.ErrConflict) or the user is unknown (identity.ErrNotFound).
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	res, err := s.db.ExecContext(ctx,
		"UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?", step, userID, step)
	if err := idOneRow(res, err); err != nil {
		if !errors.Is(err, identity.ErrNotFound) {
			return fmt.Errorf("sqlite: use TOTP step of %s: %w", userID, err)
		}
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE id = ?", userID).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: use TOTP step of %s: %w", userID, err)
		}
		if n == 0 {
			return fmt.Errorf("sqlite: use TOTP step of %s: %w", userID, identity.ErrNotFound)
		}
		return fmt.Errorf("sqlite: use TOTP step of %s: %w", userID, identity.ErrConflict)
	}
	return nil
}

// ReplaceBackupCodes swaps the user's backup codes for hashes.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes [][]byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: replace backup codes of %s: %w", userID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM mfa_backup_codes WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("sqlite: replace backup codes of %s: %w", userID, err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, "INSERT INTO mfa_backup_codes (user_id, hash) VALUES (?, ?)", userID, h); err != nil {
			return fmt.Errorf("sqlite: replace backup codes of %s: %w", userID, idErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: replace backup codes of %s: %w", userID, err)
	}
	return nil
}

// UseBackupCode marks an unused code used; anything else is ErrNotFound.
func (s *Store) UseBackupCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE mfa_backup_codes SET used_at = ?
		WHERE user_id = ? AND hash = ? AND used_at IS NULL`, micros(at).Int64, userID, hash)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: use backup code of %s: %w", userID, err)
	}
	return nil
}

// ListBackupCodes returns the user's codes ordered by hash.
func (s *Store) ListBackupCodes(ctx context.Context, userID string) ([]identity.BackupCode, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT hash, used_at FROM mfa_backup_codes WHERE user_id = ? ORDER BY hash", userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list backup codes of %s: %w", userID, err)
	}
	defer rows.Close()
	cs := []identity.BackupCode{}
	for rows.Next() {
		var c identity.BackupCode
		var used sql.NullInt64
		if err := rows.Scan(&c.Hash, &used); err != nil {
			return nil, fmt.Errorf("sqlite: list backup codes of %s: %w", userID, err)
		}
		c.UsedAt = fromMicros(used)
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list backup codes of %s: %w", userID, err)
	}
	return cs, nil
}

// CreateResetToken stores a password reset token.
func (s *Store) CreateResetToken(ctx context.Context, t identity.ResetToken) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO password_reset_tokens (hash, user_id, created_at, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?)`, t.Hash, t.UserID, micros(t.CreatedAt).Int64, micros(t.ExpiresAt).Int64, micros(t.UsedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create reset token for %s: %w", t.UserID, idErr(err))
	}
	return nil
}

// ConsumeResetToken uses an unused, unexpired token; else ErrNotFound.
func (s *Store) ConsumeResetToken(ctx context.Context, hash []byte, at time.Time) (identity.ResetToken, error) {
	t := identity.ResetToken{Hash: hash, UsedAt: at}
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `UPDATE password_reset_tokens SET used_at = ?
		WHERE hash = ? AND used_at IS NULL AND expires_at > ?
		RETURNING user_id, created_at, expires_at`, micros(at).Int64, hash, micros(at).Int64).Scan(&t.UserID, &created, &expires)
	if err != nil {
		return identity.ResetToken{}, fmt.Errorf("sqlite: consume reset token: %w", idErr(err))
	}
	t.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	t.ExpiresAt = fromMicros(sql.NullInt64{Int64: expires, Valid: true})
	return t, nil
}

const sessionColumns = `id, user_id, created_at, last_seen_at, expires_at, revoked_at, mfa, client_ip, user_agent`

func scanSession(row scanner) (identity.Session, error) {
	var (
		x                      identity.Session
		created, seen, expires int64
		revoked                sql.NullInt64
		mfa                    int64
	)
	if err := row.Scan(&x.ID, &x.UserID, &created, &seen, &expires, &revoked, &mfa, &x.ClientIP, &x.UserAgent); err != nil {
		return identity.Session{}, err
	}
	x.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	x.LastSeenAt = fromMicros(sql.NullInt64{Int64: seen, Valid: true})
	x.ExpiresAt = fromMicros(sql.NullInt64{Int64: expires, Valid: true})
	x.RevokedAt = fromMicros(revoked)
	x.MFA = mfa != 0
	return x, nil
}

// CreateSession inserts x. An unknown user is ErrNotFound, a duplicate ID
// ErrConflict.
func (s *Store) CreateSession(ctx context.Context, x identity.Session) error {
	mfa := 0
	if x.MFA {
		mfa = 1
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		x.ID, x.UserID, micros(x.CreatedAt).Int64, micros(x.LastSeenAt).Int64, micros(x.ExpiresAt).Int64,
		micros(x.RevokedAt), mfa, x.ClientIP, x.UserAgent)
	if err != nil {
		return fmt.Errorf("sqlite: create session %s: %w", x.ID, idErr(err))
	}
	return nil
}

// LookupSession returns the session with id, or ErrNotFound.
func (s *Store) LookupSession(ctx context.Context, id string) (identity.Session, error) {
	x, err := scanSession(s.db.QueryRowContext(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = ?", id))
	if err != nil {
		return identity.Session{}, fmt.Errorf("sqlite: lookup session %s: %w", id, idErr(err))
	}
	return x, nil
}

// ListSessions returns all the user's sessions, oldest first.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]identity.Session, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE user_id = ? ORDER BY created_at, id", userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list sessions of %s: %w", userID, err)
	}
	defer rows.Close()
	xs := []identity.Session{}
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list sessions of %s: %w", userID, err)
		}
		xs = append(xs, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list sessions of %s: %w", userID, err)
	}
	return xs, nil
}

// TouchSession sets the session's last-seen time.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE sessions SET last_seen_at = ? WHERE id = ?", micros(at).Int64, id)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: touch session %s: %w", id, err)
	}
	return nil
}

// RevokeSession marks the session revoked; the first time is kept.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", micros(at).Int64, id)
	if err := idOneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: revoke session %s: %w", id, err)
	}
	return nil
}

// RevokeUserSessions revokes the user's unrevoked sessions but exceptID.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?
		WHERE user_id = ? AND revoked_at IS NULL AND id <> ?`, micros(at).Int64, userID, exceptID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke sessions of %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke sessions of %s: %w", userID, err)
	}
	return int(n), nil
}

// CreateRefreshToken stores t; an unknown session is ErrNotFound.
func (s *Store) CreateRefreshToken(ctx context.Context, t identity.RefreshToken) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, session_id, user_id, issued_at, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?, ?)`, t.Hash, t.SessionID, t.UserID, micros(t.IssuedAt).Int64, micros(t.ExpiresAt).Int64, micros(t.UsedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create refresh token for %s: %w", t.SessionID, idErr(err))
	}
	return nil
}

// ConsumeRefreshToken marks the token used at at in one immediate
// transaction, reporting whether this call was the one that used it.
func (s *Store) ConsumeRefreshToken(ctx context.Context, hash []byte, at time.Time) (identity.RefreshToken, bool, error) {
	t, fresh, err := s.consumeRefresh(ctx, hash, at)
	if err != nil {
		return identity.RefreshToken{}, false, fmt.Errorf("sqlite: consume refresh token: %w", idErr(err))
	}
	return t, fresh, nil
}

func (s *Store) consumeRefresh(ctx context.Context, hash []byte, at time.Time) (identity.RefreshToken, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return identity.RefreshToken{}, false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL", micros(at).Int64, hash)
	if err != nil {
		return identity.RefreshToken{}, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return identity.RefreshToken{}, false, err
	}
	t := identity.RefreshToken{Hash: hash}
	var issued, expires int64
	var used sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT session_id, user_id, issued_at, expires_at, used_at
		FROM refresh_tokens WHERE hash = ?`, hash).Scan(&t.SessionID, &t.UserID, &issued, &expires, &used); err != nil {
		return identity.RefreshToken{}, false, err
	}
	if err := tx.Commit(); err != nil {
		return identity.RefreshToken{}, false, err
	}
	t.IssuedAt = fromMicros(sql.NullInt64{Int64: issued, Valid: true})
	t.ExpiresAt = fromMicros(sql.NullInt64{Int64: expires, Valid: true})
	t.UsedAt = fromMicros(used)
	return t, n == 1, nil
}

// PruneSessions deletes sessions that ended before before (their refresh
// tokens go with them) and reset tokens that expired before it.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int, error) {
	b := micros(before).Int64
	res, err := s.db.ExecContext(ctx, "DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?", b, b)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune sessions: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, "DELETE FROM password_reset_tokens WHERE expires_at < ?", b); err != nil {
		return 0, fmt.Errorf("sqlite: prune reset tokens: %w", err)
	}
	return int(n), nil
}

var _ identity.Store = (*Store)(nil)
