//! API tokens: a person's programs (scripts, Home Assistant, Node-RED) call the REST API with
//! `Authorization: Bearer <token>`. A token acts for its user with at most its scope, may
//! expire, and is revoked like a device token; only its SHA-256 is stored.

use super::{check_label, secret, Auth, AuthError, Principal};
use crate::storage::NewApiTokenRow;
use app::model::{ApiToken, NewApiToken, Role};
use std::time::{Duration, Instant};

/// A token's last use is written at most this often (not once per request).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl Auth {
    /// Creates a token for `user`; the secret is in the result and nowhere else.
    pub async fn create_api_token(
        &self,
        user: &str,
        label: &str,
        scope: Role,
        expires_ms: Option<i64>,
    ) -> Result<NewApiToken, AuthError> {
        let label = check_label(label)?;
        let now_ms = crate::now_ms();
        if expires_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::ExpiryInThePast);
        }
        if !self.users().await?.iter().any(|u| u.name == user) {
            return Err(AuthError::NoSuchUser(user.to_string()));
        }
        let secret = secret::new_api_token()?;
        let token = self
            .store()
            .create_api_token(NewApiTokenRow {
                user,
                label,
                scope,
                token_hash: &secret::fingerprint(&secret),
                now_ms,
                expires_ms,
            })
            .await?;
        tracing::info!(user, token = token.id, %scope, "API token created");
        Ok(NewApiToken { token, secret })
    }

    /// Every API token (of `user`, or everyone's), revoked ones too, newest first.
    pub async fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>, AuthError> {
        Ok(self.store().api_tokens(user).await?)
    }

    pub async fn revoke_api_token(&self, id: i64) -> Result<ApiToken, AuthError> {
        let token = self
            .store()
            .revoke_api_token(id, crate::now_ms())
            .await?
            .ok_or(AuthError::NoSuchApiToken(id))?;
        tracing::info!(user = %token.user, token = id, "API token revoked");
        Ok(token)
    }

    /// Who a bearer token acts for, and the token's id, if it is a usable API token: not
    /// revoked, not expired, and its user still there. The role is the lower of the user's and
    /// the token's scope.
    pub async fn api_principal(&self, bearer: &str) -> Result<Option<(Principal, i64)>, AuthError> {
        // Real tokens are 75 characters; anything far longer is not worth hashing.
        if bearer.len() > 256 || !bearer.starts_with(secret::API_TOKEN_PREFIX) {
            return Ok(None);
        }
        let now_ms = crate::now_ms();
        let Some(found) = self
            .store()
            .api_token_use(&secret::fingerprint(bearer), now_ms)
            .await?
        else {
            return Ok(None);
        };
        let user_role = Role::parse(&found.user_role).unwrap_or(Role::Viewer);
        let scope = Role::parse(&found.scope).unwrap_or(Role::Viewer);
        let due = {
            let mut touched = self.inner.api_tokens_touched.lock();
            let due = touched
                .get(&found.id)
                .is_none_or(|at| at.elapsed() >= TOUCH_EVERY);
            if due {
                touched.insert(found.id, Instant::now());
            }
            due
        };
        if due {
            if let Err(err) = self.store().touch_api_token(found.id, now_ms).await {
                tracing::warn!(%err, "could not note the API token's last use");
            }
        }
        let principal = Principal {
            user: found.user_name,
            role: user_role.min(scope),
        };
        Ok(Some((principal, found.id)))
    }

    /// Whether the API token `id` may still be used (an open event stream asks from time to
    /// time).
    pub async fn api_token_valid(&self, id: i64) -> bool {
        // The store away: keep the stream, as sessions do.
        self.store()
            .api_token_active(id, crate::now_ms())
            .await
            .unwrap_or(true)
    }
}
