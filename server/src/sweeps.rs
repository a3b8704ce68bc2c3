//! The hub's background sweeps, each a small function run by [`every`] until shutdown: overdue
//! commands time out, expired sessions are deleted, devices whose token was revoked by another
//! process are disconnected, and old data is deleted when a retention period is set.

use crate::auth::Auth;
use crate::config::RetentionArgs;
use crate::registry::Registry;
use crate::storage::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `sweep` now and then every `period` until `stop` is cancelled. A sweep that is running
/// when `stop` comes finishes first.
pub async fn every(period: Duration, stop: CancellationToken, mut sweep: impl AsyncFnMut()) {
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => sweep().await,
        }
    }
}

/// How often unacknowledged commands are checked against their deadline.
pub const COMMAND_SWEEP: Duration = Duration::from_millis(200);

pub fn expire_commands(registry: &Registry) {
    registry.expire_overdue(crate::now_ms());
}

/// How often expired sessions are deleted (they are refused as soon as they expire anyway).
pub const SESSION_SWEEP: Duration = Duration::from_secs(3600);

pub async fn forget_expired_sessions(auth: &Auth) {
    match auth.forget_expired_sessions().await {
        Ok(0) => {}
        Ok(deleted) => tracing::debug!(deleted, "forgot expired sessions"),
        Err(err) => tracing::warn!(%err, "deleting expired sessions failed"),
    }
}

/// How often tokens revoked elsewhere are looked for.
pub const REVOCATION_SWEEP: Duration = Duration::from_secs(5);
/// How far back each look reaches beyond the previous one: a revocation stamped just before a
/// look but committed just after it is still found. Finding one twice is harmless.
const REVOCATION_OVERLAP_MS: i64 = 30_000;

/// Revoking a token or removing a device on the dashboard takes effect at once; `iothub token
/// revoke` and `iothub device remove` run in another process, so the hub looks for revocations
/// and removals in the store and follows them within a few seconds.
pub struct RevocationWatch {
    store: Store,
    registry: Registry,
    /// Where the next look starts (less the overlap).
    since_ms: i64,
}

impl RevocationWatch {
    pub fn new(store: Store, registry: Registry) -> Self {
        RevocationWatch {
            store,
            registry,
            since_ms: crate::now_ms(),
        }
    }

    pub async fn look(&mut self) {
        let now_ms = crate::now_ms();
        let since_ms = self.since_ms - REVOCATION_OVERLAP_MS;
        let found = async {
            let revoked = self.store.tokens_revoked_since(since_ms).await?;
            // Devices removed by `iothub device remove` leave the dashboard too.
            let removed = self.store.devices_removed_since(since_ms).await?;
            Ok::<_, crate::storage::StorageError>((revoked, removed))
        };
        match found.await {
            Ok((revoked, removed)) => {
                for token in revoked {
                    self.registry.token_revoked(&token.device_id, token.id);
                }
                for id in removed {
                    self.registry.forget(&id);
                }
                self.since_ms = now_ms;
            }
            // Tried again next time from the same point.
            Err(err) => {
                tracing::debug!(%err, "looking for revoked tokens and removed devices failed")
            }
        }
    }
}

/// How often old readings and aggregates are looked for, when a retention period is set.
pub const RETENTION_SWEEP: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 86_400_000;

/// Whether any retention period is set (0 days keeps everything).
pub fn retention_wanted(keep: &RetentionArgs) -> bool {
    keep.retention_days > 0 || keep.minute_retention_days > 0 || keep.hour_retention_days > 0
}

/// Deletes readings, per-minute and per-hour aggregates older than their retention period.
pub async fn apply_retention(store: &Store, keep: &RetentionArgs) {
    let now = crate::now_ms();
    if keep.retention_days > 0 {
        let cutoff = now - i64::from(keep.retention_days) * DAY_MS;
        match store.delete_older_than(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: deleted old readings"),
            Err(err) => tracing::error!(%err, "retention: deleting old readings failed"),
        }
    }
    for (days, span_ms) in [
        (keep.minute_retention_days, 60_000),
        (keep.hour_retention_days, 3_600_000),
    ] {
        if days == 0 {
            continue;
        }
        let cutoff = now - i64::from(days) * DAY_MS;
        match store.delete_rollups_older_than(span_ms, cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, span_ms, "retention: deleted old aggregates"),
            Err(err) => tracing::error!(%err, "retention: deleting old aggregates failed"),
        }
    }
}
