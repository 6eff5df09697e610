package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-security/rampart/internal/identity"
)

const deviceColumns = `hash, user_id, created_at, expires_at, revoked_at, user_agent`

func scanDevice(row pgx.Row) (identity.TrustedDevice, error) {
	var (
		d                identity.TrustedDevice
		created, expires time.Time
		revoked          *time.Time
	)
	if err := row.Scan(&d.Hash, &d.UserID, &created, &expires, &revoked, &d.UserAgent); err != nil {
		return identity.TrustedDevice{}, err
	}
	d.CreatedAt, d.ExpiresAt, d.RevokedAt = created.UTC(), expires.UTC(), fromNull(revoked)
	return d, nil
}

// CreateTrustedDevice stores d; an unknown user is identity.ErrNotFound.
func (s *Store) CreateTrustedDevice(ctx context.Context, d identity.TrustedDevice) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO trusted_devices (`+deviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		d.Hash, d.UserID, utc(d.CreatedAt), utc(d.ExpiresAt), nullTime(d.RevokedAt), d.UserAgent)
	if err != nil {
		return fmt.Errorf("postgres: create trusted device for %s: %w", d.UserID, idErr(err))
	}
	return nil
}

// LookupTrustedDevice returns the device with hash, or identity.ErrNotFound.
func (s *Store) LookupTrustedDevice(ctx context.Context, hash []byte) (identity.TrustedDevice, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, "SELECT "+deviceColumns+" FROM trusted_devices WHERE hash = $1", hash))
	if err != nil {
		return identity.TrustedDevice{}, fmt.Errorf("postgres: lookup trusted device: %w", idErr(err))
	}
	return d, nil
}

// ListTrustedDevices returns the user's devices, oldest first.
func (s *Store) ListTrustedDevices(ctx context.Context, userID string) ([]identity.TrustedDevice, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+deviceColumns+" FROM trusted_devices WHERE user_id = $1 ORDER BY created_at, hash", userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list trusted devices of %s: %w", userID, err)
	}
	defer rows.Close()
	ds := []identity.TrustedDevice{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list trusted devices of %s: %w", userID, err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list trusted devices of %s: %w", userID, err)
	}
	return ds, nil
}

// RevokeTrustedDevices revokes the user's unrevoked devices.
func (s *Store) RevokeTrustedDevices(ctx context.Context, userID string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "UPDATE trusted_devices SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
		utc(at), userID)
	if err != nil {
		return 0, fmt.Errorf("postgres: revoke trusted devices of %s: %w", userID, err)
	}
	return int(tag.RowsAffected()), nil
}
