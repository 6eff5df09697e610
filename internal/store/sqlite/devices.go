package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-security/rampart/internal/identity"
)

const deviceColumns = `hash, user_id, created_at, expires_at, revoked_at, user_agent`

func scanDevice(row scanner) (identity.TrustedDevice, error) {
	var (
		d                identity.TrustedDevice
		created, expires int64
		revoked          sql.NullInt64
	)
	if err := row.Scan(&d.Hash, &d.UserID, &created, &expires, &revoked, &d.UserAgent); err != nil {
		return identity.TrustedDevice{}, err
	}
	d.CreatedAt = fromMicros(sql.NullInt64{Int64: created, Valid: true})
	d.ExpiresAt = fromMicros(sql.NullInt64{Int64: expires, Valid: true})
	d.RevokedAt = fromMicros(revoked)
	return d, nil
}

// CreateTrustedDevice stores d; an unknown user is identity.ErrNotFound.
func (s *Store) CreateTrustedDevice(ctx context.Context, d identity.TrustedDevice) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO trusted_devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		d.Hash, d.UserID, micros(d.CreatedAt).Int64, micros(d.ExpiresAt).Int64, micros(d.RevokedAt), d.UserAgent)
	if err != nil {
		return fmt.Errorf("sqlite: create trusted device for %s: %w", d.UserID, idErr(err))
	}
	return nil
}

// LookupTrustedDevice returns the device with hash, or identity.ErrNotFound.
func (s *Store) LookupTrustedDevice(ctx context.Context, hash []byte) (identity.TrustedDevice, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, "SELECT "+deviceColumns+" FROM trusted_devices WHERE hash = ?", hash))
	if err != nil {
		return identity.TrustedDevice{}, fmt.Errorf("sqlite: lookup trusted device: %w", idErr(err))
	}
	return d, nil
}

// ListTrustedDevices returns the user's devices, oldest first.
func (s *Store) ListTrustedDevices(ctx context.Context, userID string) ([]identity.TrustedDevice, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+deviceColumns+" FROM trusted_devices WHERE user_id = ? ORDER BY created_at, hash", userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list trusted devices of %s: %w", userID, err)
	}
	defer rows.Close()
	ds := []identity.TrustedDevice{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list trusted devices of %s: %w", userID, err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list trusted devices of %s: %w", userID, err)
	}
	return ds, nil
}

// RevokeTrustedDevices revokes the user's unrevoked devices.
func (s *Store) RevokeTrustedDevices(ctx context.Context, userID string, at time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE trusted_devices SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
		micros(at).Int64, userID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke trusted devices of %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke trusted devices of %s: %w", userID, err)
	}
	return int(n), nil
}
