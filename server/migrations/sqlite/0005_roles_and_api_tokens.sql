-- Roles: viewer, operator or admin. Users from before roles existed could do everything, and
-- keep that.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';

-- API tokens: a person's programs call the REST API with one (Authorization: Bearer). Each
-- belongs to a user and acts with the lower of that user's role and its own scope. Only the
-- SHA-256 of the token is stored; revoked tokens are kept so the list shows when.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_name    TEXT    NOT NULL,
    label        TEXT    NOT NULL DEFAULT '',
    scope        TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER,
    last_used_ms INTEGER,
    revoked_ms   INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_name);
