-- API keys. Times are Unix microseconds (UTC); NULL means "not set".
-- The secret is never stored: hash is HMAC-SHA256(pepper, key body) made
-- with the pepper version in pepper_version.
CREATE TABLE api_keys (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    hash           BLOB    NOT NULL,
    pepper_version INTEGER NOT NULL,
    permissions    INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL DEFAULT '',
    expires_at     INTEGER,
    last_used_at   INTEGER,
    revoked_at     INTEGER,
    rotated_from   TEXT    NOT NULL DEFAULT '',
    rotated_at     INTEGER,
    grace_until    INTEGER
) STRICT;

CREATE INDEX api_keys_created_at ON api_keys (created_at, id);
