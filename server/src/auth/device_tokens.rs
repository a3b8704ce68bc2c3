//! Device tokens: creating, listing and revoking them, and admitting a device connection by
//! its token (with a limit on how often one token may reconnect).

use super::{check_label, secret, Auth, AuthError, DeviceAccess, DeviceRefusal};
use crate::protocol::DeviceId;
use app::model::{DeviceToken, NewDeviceToken};
use std::time::Instant;

/// A token may connect this often on average (one every 5 s)…
const RECONNECTS_PER_SEC: f64 = 0.2;
/// …after a burst of this many (a device rebooting a few times, a flaky network).
const RECONNECT_BURST: f64 = 10.0;

impl Auth {
    /// Creates a token for `device_id`; the secret is in the result and nowhere else.
    pub async fn create_device_token(
        &self,
        device_id: &str,
        label: &str,
    ) -> Result<NewDeviceToken, AuthError> {
        let device_id =
            DeviceId::parse(device_id).map_err(|e| AuthError::BadDeviceId(e.to_string()))?;
        let label = check_label(label)?;
        let secret = secret::new_device_token()?;
        let token = self
            .store()
            .create_device_token(
                device_id.as_str(),
                label,
                &secret::fingerprint(&secret),
                crate::now_ms(),
            )
            .await?;
        tracing::info!(device = %device_id, token = token.id, "device token created");
        Ok(NewDeviceToken { token, secret })
    }

    pub async fn revoke_device_token(&self, id: i64) -> Result<DeviceToken, AuthError> {
        let token = self
            .store()
            .revoke_device_token(id, crate::now_ms())
            .await?
            .ok_or(AuthError::NoSuchToken(id))?;
        tracing::info!(device = %token.device_id, token = id, "device token revoked");
        Ok(token)
    }

    pub async fn device_tokens(&self) -> Result<Vec<DeviceToken>, AuthError> {
        Ok(self.store().device_tokens().await?)
    }

    /// A token for `device_id` that is valid until the process ends (never stored).
    pub fn ephemeral_device_token(&self, device_id: DeviceId) -> Result<String, AuthError> {
        let secret = secret::new_device_token()?;
        self.inner
            .ephemeral_tokens
            .lock()
            .insert(secret::fingerprint(&secret), device_id);
        Ok(secret)
    }

    /// Whether a connection without a token may speak for `device`: not if the device has a
    /// token (stored and not revoked, or the bundled simulator's), whatever the transport.
    pub async fn tokenless_may_use(&self, device: &DeviceId) -> Result<(), DeviceRefusal> {
        let simulated = self
            .inner
            .ephemeral_tokens
            .lock()
            .values()
            .any(|id| id == device);
        let stored = self
            .store()
            .device_has_token(device.as_str())
            .await
            .map_err(|err| {
                tracing::error!(%err, "looking up device tokens failed");
                DeviceRefusal::Unavailable
            })?;
        if simulated || stored {
            return Err(DeviceRefusal::NeedsItsToken(device.to_string()));
        }
        Ok(())
    }

    /// Decides whether a device connection presenting `token` may proceed.
    pub async fn admit_device(&self, token: Option<&str>) -> Result<DeviceAccess, DeviceRefusal> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return if self.config().allow_tokenless_devices {
                Ok(DeviceAccess::Tokenless)
            } else {
                Err(DeviceRefusal::NoToken)
            };
        };
        // Real tokens are 68 characters; anything far longer is not worth hashing.
        if token.len() > 256 {
            return Err(DeviceRefusal::BadToken);
        }
        let fingerprint = secret::fingerprint(token);
        let ephemeral = self
            .inner
            .ephemeral_tokens
            .lock()
            .get(&fingerprint)
            .cloned();
        if let Some(device_id) = ephemeral {
            return Ok(DeviceAccess::Device {
                device_id,
                token_id: None,
            });
        }
        let stored = self
            .store()
            .device_token_by_hash(&fingerprint)
            .await
            .map_err(|err| {
                tracing::error!(%err, "looking up a device token failed");
                DeviceRefusal::Unavailable
            })?;
        let Some(stored) = stored.filter(|t| t.revoked_ms.is_none()) else {
            return Err(DeviceRefusal::BadToken);
        };
        let device_id = DeviceId::parse(&stored.device_id).map_err(|_| DeviceRefusal::BadToken)?;
        let now = Instant::now();
        let allowed = self
            .inner
            .reconnects
            .lock()
            .entry(stored.id)
            .or_insert_with(|| {
                crate::limits::RateLimit::with_burst(RECONNECTS_PER_SEC, RECONNECT_BURST, now)
            })
            .allow(now);
        if !allowed {
            return Err(DeviceRefusal::TooManyReconnects);
        }
        if let Err(err) = self
            .store()
            .touch_device_token(stored.id, crate::now_ms())
            .await
        {
            tracing::warn!(%err, "could not note the device token's last use");
        }
        Ok(DeviceAccess::Device {
            device_id,
            token_id: Some(stored.id),
        })
    }
}
