-- People who may use the dashboard. Only an argon2id hash (PHC string) of each password.
CREATE TABLE users (
    name          TEXT    PRIMARY KEY NOT NULL,
    password_hash TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL
);

-- Signed-in browsers. The cookie holds a random secret; only its SHA-256 is stored, so a copy
-- of the database does not sign anyone in.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY NOT NULL,
    user_name  TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);

-- Device tokens: each lets one device id connect. Only the SHA-256 of the token is stored.
-- Revoked tokens are kept (with the time) so the list shows what was revoked when.
CREATE TABLE device_tokens (
    id           INTEGER PRIMARY KEY,
    device_id    TEXT    NOT NULL,
    label        TEXT    NOT NULL DEFAULT '',
    token_hash   TEXT    NOT NULL UNIQUE,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER,
    revoked_ms   INTEGER
);
