-- People (issue 9): users, their second factors, sessions and tokens.
-- NULL times mean "not set". Passwords are bcrypt hashes; refresh, reset
-- and backup codes are SHA-256 hashes of 256-bit (80-bit for backup codes)
-- random values, never the values.
CREATE TABLE users (
    id                  TEXT        NOT NULL PRIMARY KEY,
    username            TEXT        NOT NULL UNIQUE,
    email               TEXT        NOT NULL DEFAULT '',
    password_hash       BYTEA       NOT NULL,
    status              TEXT        NOT NULL,
    roles               TEXT        NOT NULL DEFAULT '',
    totp_secret         TEXT        NOT NULL DEFAULT '',
    totp_pending        TEXT        NOT NULL DEFAULT '',
    totp_last_step      BIGINT      NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    last_login_at       TIMESTAMPTZ,
    password_changed_at TIMESTAMPTZ,
    locked_until        TIMESTAMPTZ
);

-- Failed login and MFA attempts in the current window, per user and kind.
CREATE TABLE user_failures (
    user_id      TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT        NOT NULL,
    failures     INTEGER     NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, kind)
);

CREATE TABLE mfa_backup_codes (
    user_id TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash    BYTEA       NOT NULL,
    used_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, hash)
);

-- A session is one login and the family of its refresh tokens.
CREATE TABLE sessions (
    id           TEXT        NOT NULL PRIMARY KEY,
    user_id      TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    mfa          BOOLEAN     NOT NULL DEFAULT false,
    client_ip    TEXT        NOT NULL DEFAULT '',
    user_agent   TEXT        NOT NULL DEFAULT ''
);

CREATE INDEX sessions_user ON sessions (user_id, created_at);

CREATE TABLE refresh_tokens (
    hash       BYTEA       NOT NULL PRIMARY KEY,
    session_id TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    TEXT        NOT NULL,
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE password_reset_tokens (
    hash       BYTEA       NOT NULL PRIMARY KEY,
    user_id    TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

-- Devices on which a person chose to skip MFA for a while; the cookie holds
-- a random token, only its SHA-256 hash is kept, so it can be revoked.
CREATE TABLE trusted_devices (
    hash       BYTEA       NOT NULL PRIMARY KEY,
    user_id    TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    user_agent TEXT        NOT NULL DEFAULT ''
);

CREATE INDEX trusted_devices_user ON trusted_devices (user_id);
