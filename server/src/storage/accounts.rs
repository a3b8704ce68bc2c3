//! Users, sessions and device tokens: the tables behind [`crate::auth`]. Secrets never reach
//! this module; it stores and compares hashes only.
//!
//! These are small point queries whose SQL is the same on both back ends (sqlx binds `$1` on
//! SQLite too), so each is written once and run on whichever pool the store has.

use super::{Backend, StorageError, Store};
use app::model::DeviceToken;

/// A row of `device_tokens`, as [`TOKEN_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    device_id: String,
    label: String,
    created_ms: i64,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

const TOKEN_COLUMNS: &str = "id, device_id, label, created_ms, last_used_ms, revoked_ms";

fn token_from(row: TokenRow) -> DeviceToken {
    DeviceToken {
        id: row.id,
        device_id: row.device_id,
        label: row.label,
        created_ms: row.created_ms,
        last_used_ms: row.last_used_ms,
        revoked_ms: row.revoked_ms,
    }
}

/// A person who may sign in.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub name: String,
    pub created_ms: i64,
    /// `viewer`, `operator` or `admin` (see [`app::model::Role`]).
    pub role: String,
}

/// An unexpired session, whose it is and that user's role.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    #[sqlx(rename = "user_name")]
    pub user: String,
    pub role: String,
    pub expires_ms: i64,
}

/// A revoked device token: which one, and the device that used it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RevokedToken {
    pub id: i64,
    pub device_id: String,
}

impl Store {
    pub async fn user_count(&self) -> Result<u64, StorageError> {
        let (count,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        });
        Ok(count as u64)
    }

    /// Adds a user; false if the name is taken.
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let sql =
            "INSERT INTO users (name, password_hash, created_ms, role) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (name) DO NOTHING";
        let done = on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(name)
                .bind(password_hash)
                .bind(now_ms)
                .bind(role)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Replaces a user's password hash and ends their sessions; false if there is no such user.
    pub async fn set_password(
        &self,
        name: &str,
        password_hash: &str,
    ) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE name = $1")
                .bind(name)
                .bind(password_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.delete_sessions_of(name).await?;
        Ok(done == 1)
    }

    /// Gives a user another role; false if there is no such user.
    pub async fn set_role(&self, name: &str, role: &str) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE users SET role = $2 WHERE name = $1")
                .bind(name)
                .bind(role)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Removes a user, their sessions and their API tokens; false if there is no such user.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.delete_sessions_of(name).await?;
        self.delete_api_tokens_of(name).await?;
        Ok(done == 1)
    }

    /// Every user name with its creation time, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, StorageError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT name, created_ms, role FROM users ORDER BY name")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn password_hash(&self, name: &str) -> Result<Option<String>, StorageError> {
        let row: Option<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT password_hash FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(hash,)| hash))
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), StorageError> {
        let sql = "INSERT INTO sessions (token_hash, user_name, created_ms, expires_ms)
                   VALUES ($1, $2, $3, $4)";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(token_hash)
                .bind(user)
                .bind(now_ms)
                .bind(expires_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The user of an unexpired session whose user still exists, and when it expires.
    pub async fn session_user(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<SessionRow>, StorageError> {
        let sql =
            "SELECT s.user_name, u.role, s.expires_ms FROM sessions s JOIN users u ON u.name = s.user_name
                   WHERE s.token_hash = $1 AND s.expires_ms > $2";
        let row: Option<SessionRow> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    async fn delete_sessions_of(&self, user: &str) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(user)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Forgets expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StorageError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    pub async fn create_device_token(
        &self,
        device_id: &str,
        label: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<DeviceToken, StorageError> {
        let sql = format!(
            "INSERT INTO device_tokens (device_id, label, token_hash, created_ms)
             VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
        );
        let row: TokenRow = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(device_id)
                .bind(label)
                .bind(token_hash)
                .bind(now_ms)
                .fetch_one(pool)
                .await?
        });
        Ok(token_from(row))
    }

    /// Every token, revoked ones included, newest first.
    pub async fn device_tokens(&self) -> Result<Vec<DeviceToken>, StorageError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM device_tokens ORDER BY id DESC");
        let rows: Vec<TokenRow> =
            on_pool!(self, |pool| { sqlx::query_as(&sql).fetch_all(pool).await? });
        Ok(rows.into_iter().map(token_from).collect())
    }

    /// The token with this hash, revoked or not.
    pub async fn device_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<DeviceToken>, StorageError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM device_tokens WHERE token_hash = $1");
        let row: Option<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(token_from))
    }

    /// Revokes a token; `None` if there is no such token or it was revoked already.
    pub async fn revoke_device_token(
        &self,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<DeviceToken>, StorageError> {
        let sql = format!(
            "UPDATE device_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL
             RETURNING {TOKEN_COLUMNS}"
        );
        let row: Option<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(token_from))
    }

    /// Tokens revoked at or after `since_ms` by any process using this store (the command
    /// line's `iothub token revoke` too).
    pub async fn tokens_revoked_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<RevokedToken>, StorageError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, device_id FROM device_tokens WHERE revoked_ms >= $1")
                .bind(since_ms)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Whether `device_id` has a token that is not revoked: then only that token may speak
    /// for it.
    pub async fn device_has_token(&self, device_id: &str) -> Result<bool, StorageError> {
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id FROM device_tokens WHERE device_id = $1 AND revoked_ms IS NULL LIMIT 1",
            )
            .bind(device_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.is_some())
    }

    /// Notes when a token was last used to connect.
    pub async fn touch_device_token(&self, id: i64, now_ms: i64) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE device_tokens SET last_used_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
