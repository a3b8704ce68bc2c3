//! API tokens: what a person's programs call the REST API with. Only hashes are stored, as for
//! sessions and device tokens; the SQL is the same on both back ends.

use super::{Backend, StorageError, Store};
use app::model::{ApiToken, Role};

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    id: i64,
    user_name: String,
    label: String,
    scope: String,
    created_ms: i64,
    expires_ms: Option<i64>,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, user_name, label, scope, created_ms, expires_ms, last_used_ms, revoked_ms";

fn token_from(row: ApiTokenRow) -> ApiToken {
    ApiToken {
        id: row.id,
        user: row.user_name,
        label: row.label,
        // Written by this module from a `Role`; anything else reads as the least it can be.
        scope: Role::parse(&row.scope).unwrap_or(Role::Viewer),
        created_ms: row.created_ms,
        expires_ms: row.expires_ms,
        last_used_ms: row.last_used_ms,
        revoked_ms: row.revoked_ms,
    }
}

/// A usable API token (not revoked, not expired, its user still there) and its user's role.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiTokenUse {
    pub id: i64,
    pub user_name: String,
    pub user_role: String,
    pub scope: String,
}

/// A new token: who it is for, what it may do, until when.
pub struct NewApiTokenRow<'a> {
    pub user: &'a str,
    pub label: &'a str,
    pub scope: Role,
    pub token_hash: &'a str,
    pub now_ms: i64,
    pub expires_ms: Option<i64>,
}

impl Store {
    pub async fn create_api_token(
        &self,
        new: NewApiTokenRow<'_>,
    ) -> Result<ApiToken, StorageError> {
        let sql = format!(
            "INSERT INTO api_tokens (user_name, label, scope, token_hash, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let row: ApiTokenRow = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(new.user)
                .bind(new.label)
                .bind(new.scope.as_str())
                .bind(new.token_hash)
                .bind(new.now_ms)
                .bind(new.expires_ms)
                .fetch_one(pool)
                .await?
        });
        Ok(token_from(row))
    }

    /// Every API token (of `user`, or of everyone), revoked ones included, newest first.
    pub async fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE CAST($1 AS TEXT) IS NULL OR user_name = $1 ORDER BY id DESC"
        );
        let rows: Vec<ApiTokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(user).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(token_from).collect())
    }

    /// Revokes a token; `None` if there is no such token or it was revoked already.
    pub async fn revoke_api_token(
        &self,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<ApiToken>, StorageError> {
        let sql = format!(
            "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL
             RETURNING {COLUMNS}"
        );
        let row: Option<ApiTokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(token_from))
    }

    /// The token with this hash, if it may be used at `now_ms`.
    pub async fn api_token_use(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<ApiTokenUse>, StorageError> {
        let sql = "SELECT t.id, t.user_name, u.role AS user_role, t.scope
                   FROM api_tokens t JOIN users u ON u.name = t.user_name
                   WHERE t.token_hash = $1 AND t.revoked_ms IS NULL
                     AND (t.expires_ms IS NULL OR t.expires_ms > $2)";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Whether token `id` may still be used at `now_ms` (and its user is still there).
    pub async fn api_token_active(&self, id: i64, now_ms: i64) -> Result<bool, StorageError> {
        let sql = "SELECT t.id FROM api_tokens t JOIN users u ON u.name = t.user_name
                   WHERE t.id = $1 AND t.revoked_ms IS NULL
                     AND (t.expires_ms IS NULL OR t.expires_ms > $2)";
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    /// Notes when a token was last used.
    pub async fn touch_api_token(&self, id: i64, now_ms: i64) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET last_used_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub(super) async fn delete_api_tokens_of(&self, user: &str) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM api_tokens WHERE user_name = $1")
                .bind(user)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
