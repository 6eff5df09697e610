-- API keys. NULL times mean "not set". The secret is never stored: hash is
-- HMAC-SHA256(pepper, key body) made with the pepper version in
-- pepper_version.
CREATE TABLE api_keys (
    id             TEXT        NOT NULL PRIMARY KEY,
    name           TEXT        NOT NULL,
    hash           BYTEA       NOT NULL,
    pepper_version INTEGER     NOT NULL,
    permissions    SMALLINT    NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    created_by     TEXT        NOT NULL DEFAULT '',
    expires_at     TIMESTAMPTZ,
    last_used_at   TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    rotated_from   TEXT        NOT NULL DEFAULT '',
    rotated_at     TIMESTAMPTZ,
    grace_until    TIMESTAMPTZ
);

CREATE INDEX api_keys_created_at ON api_keys (created_at, id);
