package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-security/rampart/internal/identity"
)

// This file implements identity.Store: users, second factors, sessions and
// their tokens. Errors are translated to identity.ErrNotFound and
// identity.ErrConflict.

var _ identity.Store = (*Store)(nil)

const userColumns = `id, username, email, password_hash, status, roles, totp_secret, totp_pending,
	totp_last_step, created_at, updated_at, last_login_at, password_changed_at, locked_until`

// idErr maps driver errors to the identity sentinels: no row and a
// missing referenced row are ErrNotFound, a duplicate key ErrConflict.
func idErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return identity.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", identity.ErrConflict, err)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: %w", identity.ErrNotFound, err)
		}
	}
	return err
}

func idOneRow(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return idErr(err)
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrNotFound
	}
	return nil
}

func scanUser(row pgx.Row) (identity.User, error) {
	var (
		u                              identity.User
		status, roles                  string
		created, updated               time.Time
		lastLogin, pwChanged, lockedTo *time.Time
	)
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &status, &roles, &u.TOTPSecret,
		&u.TOTPPending, &u.TOTPLastStep, &created, &updated, &lastLogin, &pwChanged, &lockedTo); err != nil {
		return identity.User{}, err
	}
	u.Status = identity.Status(status)
	u.Roles = []string{}
	if roles != "" {
		u.Roles = strings.Split(roles, ",")
	}
	u.CreatedAt, u.UpdatedAt = created.UTC(), updated.UTC()
	u.LastLoginAt = fromNull(lastLogin)
	u.PasswordChangedAt = fromNull(pwChanged)
	u.LockedUntil = fromNull(lockedTo)
	return u, nil
}

// CreateUser inserts u. A duplicate ID or username is identity.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u identity.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		u.ID, u.Username, u.Email, u.PasswordHash, string(u.Status), strings.Join(u.Roles, ","),
		u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, utc(u.CreatedAt), utc(u.UpdatedAt),
		nullTime(u.LastLoginAt), nullTime(u.PasswordChangedAt), nullTime(u.LockedUntil))
	if err != nil {
		return fmt.Errorf("postgres: create user %s: %w", u.Username, idErr(err))
	}
	return nil
}

// LookupUser returns the user with id, or identity.ErrNotFound.
func (s *Store) LookupUser(ctx context.Context, id string) (identity.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id))
	if err != nil {
		return identity.User{}, fmt.Errorf("postgres: lookup user %s: %w", id, idErr(err))
	}
	return u, nil
}

// LookupUsername returns the user called username, or identity.ErrNotFound.
func (s *Store) LookupUsername(ctx context.Context, username string) (identity.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE username = $1", username))
	if err != nil {
		return identity.User{}, fmt.Errorf("postgres: lookup username: %w", idErr(err))
	}
	return u, nil
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]identity.User, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	defer rows.Close()
	us := []identity.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	return us, nil
}

// UpdateUser replaces the mutable account fields of u.ID (not the TOTP
// last step, last login or lockout, which have their own methods).
func (s *Store) UpdateUser(ctx context.Context, u identity.User) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET username = $1, email = $2, password_hash = $3,
		status = $4, roles = $5, totp_secret = $6, totp_pending = $7, updated_at = $8, password_changed_at = $9
		WHERE id = $10`,
		u.Username, u.Email, u.PasswordHash, string(u.Status), strings.Join(u.Roles, ","),
		u.TOTPSecret, u.TOTPPending, utc(u.UpdatedAt), nullTime(u.PasswordChangedAt), u.ID)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: update user %s: %w", u.ID, err)
	}
	return nil
}

// SetLockedUntil sets or (zero time) clears the automatic lockout.
func (s *Store) SetLockedUntil(ctx context.Context, userID string, until time.Time) error {
	tag, err := s.pool.Exec(ctx, "UPDATE users SET locked_until = $1 WHERE id = $2", nullTime(until), userID)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: lock out user %s: %w", userID, err)
	}
	return nil
}

// SetLastLogin records a successful login.
func (s *Store) SetLastLogin(ctx context.Context, userID string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, "UPDATE users SET last_login_at = $1 WHERE id = $2", nullTime(at), userID)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: set last login of %s: %w", userID, err)
	}
	return nil
}

// DeleteUser erases the user; sessions, tokens, codes and counters go with
// it through ON DELETE CASCADE.
func (s *Store) DeleteUser(ctx context.Context, userID string) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM users WHERE id = $1", userID)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete user %s: %w", userID, err)
	}
	return nil
}

// CountFailure records a failure and returns the count in the window. The
// upsert takes the row lock, so concurrent failures all count.
func (s *Store) CountFailure(ctx context.Context, userID, kind string, at time.Time, window time.Duration) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `INSERT INTO user_failures AS f (user_id, kind, failures, window_start)
		VALUES ($1, $2, 1, $3)
		ON CONFLICT (user_id, kind) DO UPDATE SET
			failures = CASE WHEN f.window_start <= $4 THEN 1 ELSE f.failures + 1 END,
			window_start = CASE WHEN f.window_start <= $4 THEN excluded.window_start ELSE f.window_start END
		RETURNING failures`, userID, kind, utc(at), utc(at.Add(-window))).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count %s failure of %s: %w", kind, userID, idErr(err))
	}
	return n, nil
}

// FailureCount returns the failures of kind inside the window ending at at.
func (s *Store) FailureCount(ctx context.Context, userID, kind string, at time.Time, window time.Duration) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT failures FROM user_failures
		WHERE user_id = $1 AND kind = $2 AND window_start > $3`, userID, kind, utc(at.Add(-window))).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: %s failures of %s: %w", kind, userID, err)
	}
	return n, nil
}

// ResetFailures clears the counter of kind.
func (s *Store) ResetFailures(ctx context.Context, userID, kind string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM user_failures WHERE user_id = $1 AND kind = $2", userID, kind); err != nil {
		return fmt.Errorf("postgres: reset %s failures of %s: %w", kind, userID, err)
	}
	return nil
}

// UseTOTPStep records step unless it is not newer than the last one
// (identity.ErrConflict) or the user is unknown (identity.ErrNotFound).
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	tag, err := s.pool.Exec(ctx,
		"UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1", step, userID)
	if err := idOneRow(tag, err); err != nil {
		if !errors.Is(err, identity.ErrNotFound) {
			return fmt.Errorf("postgres: use TOTP step of %s: %w", userID, err)
		}
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE id = $1", userID).Scan(&n); err != nil {
			return fmt.Errorf("postgres: use TOTP step of %s: %w", userID, err)
		}
		if n == 0 {
			return fmt.Errorf("postgres: use TOTP step of %s: %w", userID, identity.ErrNotFound)
		}
		return fmt.Errorf("postgres: use TOTP step of %s: %w", userID, identity.ErrConflict)
	}
	return nil
}

// ReplaceBackupCodes swaps the user's backup codes for hashes.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes [][]byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM mfa_backup_codes WHERE user_id = $1", userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.Exec(ctx, "INSERT INTO mfa_backup_codes (user_id, hash) VALUES ($1, $2)", userID, h); err != nil {
				return idErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: replace backup codes of %s: %w", userID, err)
	}
	return nil
}

// UseBackupCode marks an unused code used; anything else is ErrNotFound.
func (s *Store) UseBackupCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE mfa_backup_codes SET used_at = $1
		WHERE user_id = $2 AND hash = $3 AND used_at IS NULL`, utc(at), userID, hash)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: use backup code of %s: %w", userID, err)
	}
	return nil
}

// ListBackupCodes returns the user's codes ordered by hash.
func (s *Store) ListBackupCodes(ctx context.Context, userID string) ([]identity.BackupCode, error) {
	rows, err := s.pool.Query(ctx, "SELECT hash, used_at FROM mfa_backup_codes WHERE user_id = $1 ORDER BY hash", userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list backup codes of %s: %w", userID, err)
	}
	defer rows.Close()
	cs := []identity.BackupCode{}
	for rows.Next() {
		var c identity.BackupCode
		var used *time.Time
		if err := rows.Scan(&c.Hash, &used); err != nil {
			return nil, fmt.Errorf("postgres: list backup codes of %s: %w", userID, err)
		}
		c.UsedAt = fromNull(used)
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list backup codes of %s: %w", userID, err)
	}
	return cs, nil
}

// CreateResetToken stores a password reset token.
func (s *Store) CreateResetToken(ctx context.Context, t identity.ResetToken) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO password_reset_tokens (hash, user_id, created_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5)`, t.Hash, t.UserID, utc(t.CreatedAt), utc(t.ExpiresAt), nullTime(t.UsedAt))
	if err != nil {
		return fmt.Errorf("postgres: create reset token for %s: %w", t.UserID, idErr(err))
	}
	return nil
}

// ConsumeResetToken uses an unused, unexpired token; else ErrNotFound.
func (s *Store) ConsumeResetToken(ctx context.Context, hash []byte, at time.Time) (identity.ResetToken, error) {
	t := identity.ResetToken{Hash: hash, UsedAt: utc(at)}
	var created, expires time.Time
	err := s.pool.QueryRow(ctx, `UPDATE password_reset_tokens SET used_at = $1
		WHERE hash = $2 AND used_at IS NULL AND expires_at > $1
		RETURNING user_id, created_at, expires_at`, utc(at), hash).Scan(&t.UserID, &created, &expires)
	if err != nil {
		return identity.ResetToken{}, fmt.Errorf("postgres: consume reset token: %w", idErr(err))
	}
	t.CreatedAt, t.ExpiresAt = created.UTC(), expires.UTC()
	return t, nil
}

const sessionColumns = `id, user_id, created_at, last_seen_at, expires_at, revoked_at, mfa, client_ip, user_agent`

func scanSession(row pgx.Row) (identity.Session, error) {
	var (
		x                      identity.Session
		created, seen, expires time.Time
		revoked                *time.Time
	)
	if err := row.Scan(&x.ID, &x.UserID, &created, &seen, &expires, &revoked, &x.MFA, &x.ClientIP, &x.UserAgent); err != nil {
		return identity.Session{}, err
	}
	x.CreatedAt, x.LastSeenAt, x.ExpiresAt = created.UTC(), seen.UTC(), expires.UTC()
	x.RevokedAt = fromNull(revoked)
	return x, nil
}

// CreateSession inserts x. An unknown user is ErrNotFound, a duplicate ID
// ErrConflict.
func (s *Store) CreateSession(ctx context.Context, x identity.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		x.ID, x.UserID, utc(x.CreatedAt), utc(x.LastSeenAt), utc(x.ExpiresAt), nullTime(x.RevokedAt), x.MFA, x.ClientIP, x.UserAgent)
	if err != nil {
		return fmt.Errorf("postgres: create session %s: %w", x.ID, idErr(err))
	}
	return nil
}

// LookupSession returns the session with id, or ErrNotFound.
func (s *Store) LookupSession(ctx context.Context, id string) (identity.Session, error) {
	x, err := scanSession(s.pool.QueryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = $1", id))
	if err != nil {
		return identity.Session{}, fmt.Errorf("postgres: lookup session %s: %w", id, idErr(err))
	}
	return x, nil
}

// ListSessions returns all the user's sessions, oldest first.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]identity.Session, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE user_id = $1 ORDER BY created_at, id", userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list sessions of %s: %w", userID, err)
	}
	defer rows.Close()
	xs := []identity.Session{}
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list sessions of %s: %w", userID, err)
		}
		xs = append(xs, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list sessions of %s: %w", userID, err)
	}
	return xs, nil
}

// TouchSession sets the session's last-seen time.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, "UPDATE sessions SET last_seen_at = $1 WHERE id = $2", utc(at), id)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: touch session %s: %w", id, err)
	}
	return nil
}

// RevokeSession marks the session revoked; the first time is kept.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, "UPDATE sessions SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2", utc(at), id)
	if err := idOneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: revoke session %s: %w", id, err)
	}
	return nil
}

// RevokeUserSessions revokes the user's unrevoked sessions but exceptID.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $1
		WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3`, utc(at), userID, exceptID)
	if err != nil {
		return 0, fmt.Errorf("postgres: revoke sessions of %s: %w", userID, err)
	}
	return int(tag.RowsAffected()), nil
}

// CreateRefreshToken stores t; an unknown session is ErrNotFound.
func (s *Store) CreateRefreshToken(ctx context.Context, t identity.RefreshToken) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, user_id, issued_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.SessionID, t.UserID, utc(t.IssuedAt), utc(t.ExpiresAt), nullTime(t.UsedAt))
	if err != nil {
		return fmt.Errorf("postgres: create refresh token for %s: %w", t.SessionID, idErr(err))
	}
	return nil
}

// ConsumeRefreshToken marks the token used at at, reporting whether this
// call was the one that used it. The conditional UPDATE takes the row
// lock, so of two concurrent calls exactly one sees it unused.
func (s *Store) ConsumeRefreshToken(ctx context.Context, hash []byte, at time.Time) (identity.RefreshToken, bool, error) {
	t := identity.RefreshToken{Hash: hash}
	var issued, expires time.Time
	var used *time.Time
	fresh := true
	err := s.pool.QueryRow(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL
		RETURNING session_id, user_id, issued_at, expires_at, used_at`, utc(at), hash).
		Scan(&t.SessionID, &t.UserID, &issued, &expires, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		fresh = false
		err = s.pool.QueryRow(ctx, `SELECT session_id, user_id, issued_at, expires_at, used_at
			FROM refresh_tokens WHERE hash = $1`, hash).Scan(&t.SessionID, &t.UserID, &issued, &expires, &used)
	}
	if err != nil {
		return identity.RefreshToken{}, false, fmt.Errorf("postgres: consume refresh token: %w", idErr(err))
	}
	t.IssuedAt, t.ExpiresAt, t.UsedAt = issued.UTC(), expires.UTC(), fromNull(used)
	return t, fresh, nil
}

// PruneSessions deletes sessions that ended before before (their refresh
// tokens go with them) and reset tokens that expired before it.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1", utc(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune sessions: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM password_reset_tokens WHERE expires_at < $1", utc(before)); err != nil {
		return 0, fmt.Errorf("postgres: prune reset tokens: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
