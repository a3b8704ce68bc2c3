//! Which hub holds which device: a JetStream key-value bucket (`<prefix>_presence`, kept in
//! the NATS server's memory), one key per device (its id in hex), whose value names the hub
//! that holds it and when the device connected there ([`Claim`]).
//!
//! A hub claims a device when it connects and renews its claims every [`RENEW_EVERY`]; the
//! bucket forgets a claim [`PRESENCE_TTL`] after it was last written, so the devices of a hub
//! that died are nobody's within that time. A command goes to the hub the bucket names. A hub
//! that sees another claim one of its devices with a newer connection lets go of it (closes
//! its connection): no two hubs hold one device for longer than a message takes.
//!
//! Renewals are conditional on the claim's last revision: a hub never writes over another's
//! newer claim. NATS 2.9 tells nobody when a claim expires; the other hubs notice a dead hub
//! by its silence instead (`LOST_AFTER`, the same time).

use super::wire::{hex, presence_bucket, unhex};
use super::LOST_AFTER;
use crate::registry::Registry;
use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long the bucket keeps a claim its hub no longer renews.
pub const PRESENCE_TTL: Duration = LOST_AFTER;
/// How often a hub renews its claims: twice within [`PRESENCE_TTL`], so one lost renewal
/// does not drop a claim.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// Claims renewed at once (each is one request to NATS).
const RENEW_AT_ONCE: usize = 64;
/// How long a request to JetStream may take before it counts as failed.
const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// A value in the bucket: who holds the device, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub hub: String,
    /// When the device connected to that hub (its `connected_since_ms`).
    pub since_ms: i64,
}

/// What the link tells the presence task of this hub's devices, as they connect and leave.
#[derive(Debug)]
pub enum Change {
    Held { device: String, since_ms: i64 },
    Released { device: String },
}

/// The bucket, once open.
#[derive(Clone)]
pub struct Presence {
    store: kv::Store,
}

impl Presence {
    /// Opens the bucket of the system `prefix`, making it if no hub did yet.
    async fn open(client: &async_nats::Client, prefix: &str) -> Result<Presence, PresenceError> {
        use async_nats::jetstream::stream;
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(JETSTREAM_TIMEOUT);
        let bucket = presence_bucket(prefix);
        // The stream behind a key-value bucket, as `create_key_value` makes it: that call
        // first reads the account's limits in a form NATS 2.9 (Debian's) does not answer in.
        let config = stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("iothub: which hub holds which device".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: PRESENCE_TTL,
            storage: stream::StorageType::Memory,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        };
        let failed = |e: &dyn std::fmt::Display| PresenceError(e.to_string());
        jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| failed(&e))?;
        let store = jetstream
            .get_key_value(bucket)
            .await
            .map_err(|e| failed(&e))?;
        Ok(Presence { store })
    }

    /// Who holds `device` now, if anybody.
    pub async fn holder(&self, device: &str) -> Result<Option<Claim>, PresenceError> {
        let entry = self
            .store
            .entry(hex(device))
            .await
            .map_err(|e| PresenceError(e.to_string()))?;
        Ok(entry.and_then(|entry| claim_of(&entry)))
    }
}

/// The bucket could not be reached or read.
#[derive(Debug, thiserror::Error)]
#[error("the presence bucket: {0}")]
pub struct PresenceError(String);

/// The claim an entry holds: none for a deleted key or a value that does not parse.
fn claim_of(entry: &kv::Entry) -> Option<Claim> {
    match entry.operation {
        kv::Operation::Put => serde_json::from_slice(&entry.value).ok(),
        kv::Operation::Delete | kv::Operation::Purge => None,
    }
}

/// This hub's side of the bucket until `stop`: opens it (trying again until NATS and
/// JetStream answer) and hands it to the link through `opened`; then claims the devices that
/// connect here, renews the claims, lets go of those that leave, and of those another hub
/// claims with a newer connection.
pub async fn run(
    client: async_nats::Client,
    prefix: String,
    hub: String,
    registry: Registry,
    mut changes: mpsc::Receiver<Change>,
    opened: Arc<OnceLock<Presence>>,
    stop: CancellationToken,
) {
    let mut tries = 0;
    let presence = loop {
        match Presence::open(&client, &prefix).await {
            Ok(presence) => break presence,
            Err(err) => {
                // Said once; then quietly tried again (commands go by what the hubs tell
                // meanwhile).
                tries += 1;
                if tries == 1 {
                    tracing::warn!(%err, "the presence bucket is not open yet (is JetStream on?)");
                } else {
                    tracing::debug!(%err, "the presence bucket is still not open");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RENEW_EVERY) => {}
                }
            }
        }
    };
    let _ = opened.set(presence.clone());
    let mut claims = Claims {
        client: client.clone(),
        prefix,
        store: presence.store,
        hub,
        registry,
        revisions: HashMap::new(),
    };
    let mut renew = tokio::time::interval(RENEW_EVERY);
    let mut watch = None;
    loop {
        if watch.is_none() {
            // Only what is written from now on: this hub's own claims are renewed anyway.
            match claims.store.watch_all().await {
                Ok(stream) => watch = Some(stream),
                Err(err) => tracing::debug!(%err, "cannot watch the presence bucket yet"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            Some(change) = changes.recv() => match change {
                Change::Held { device, since_ms } => claims.claim(&device, since_ms).await,
                Change::Released { device } => claims.release(&device).await,
            },
            _ = renew.tick() => {
                if client.connection_state() == async_nats::connection::State::Connected {
                    claims.renew().await;
                }
            }
            entry = next(&mut watch) => match entry {
                Some(Ok(entry)) => claims.heard(&entry).await,
                ended => {
                    // NATS was away, or lost the bucket (it keeps it in memory): watch
                    // again, after a breath.
                    if let Some(Err(err)) = ended {
                        tracing::debug!(%err, "the presence watch ended");
                    }
                    watch = None;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            },
        }
    }
}

/// The next entry of the watch, if there is one (never, while there is none).
async fn next(watch: &mut Option<kv::Watch>) -> Option<Result<kv::Entry, kv::WatcherError>> {
    match watch {
        Some(watch) => watch.next().await,
        None => std::future::pending().await,
    }
}

/// This hub's claims: the revision of each, as last written by this hub.
struct Claims {
    client: async_nats::Client,
    prefix: String,
    store: kv::Store,
    hub: String,
    registry: Registry,
    revisions: HashMap<String, u64>,
}

impl Claims {
    /// Claims `device` for this hub (it connected here, newer than any other claim).
    async fn claim(&mut self, device: &str, since_ms: i64) {
        let value = self.value(since_ms);
        match self.store.put(hex(device), value).await {
            Ok(revision) => {
                self.revisions.insert(device.to_string(), revision);
            }
            Err(err) => tracing::debug!(%err, device, "a presence claim was not written"),
        }
    }

    /// Gives up this hub's claim on `device` (it left), unless another hub claimed it since.
    async fn release(&mut self, device: &str) {
        let Some(revision) = self.revisions.remove(device) else {
            return;
        };
        // Fails if another hub claimed it meanwhile: then the claim is that hub's to keep.
        let _ = self
            .store
            .delete_expect_revision(hex(device), Some(revision))
            .await;
    }

    /// Renews the claims on every device this hub holds, each only if it is still this hub's
    /// last write; a claim that expired meanwhile (NATS was away) is made anew, one that
    /// another hub wrote over is settled as [`Claims::heard`] would.
    async fn renew(&mut self) {
        let held = self.registry.held_here();
        let here: HashSet<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
        self.revisions
            .retain(|device, _| here.contains(device.as_str()));
        // Owned futures: each holds its own handle on the bucket.
        let updates: Vec<_> = held
            .iter()
            .map(|(device, since_ms)| {
                let (store, value) = (self.store.clone(), self.value(*since_ms));
                let last = self.revisions.get(device).copied();
                let (device, since_ms) = (device.clone(), *since_ms);
                async move {
                    let key = hex(&device);
                    let written = match last {
                        Some(revision) => store.update(key, value, revision).await.ok(),
                        None => store.put(key, value).await.ok(),
                    };
                    (device, since_ms, written)
                }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(updates)
            .buffer_unordered(RENEW_AT_ONCE)
            .collect()
            .await;
        for (device, since_ms, written) in results {
            match written {
                Some(revision) => {
                    self.revisions.insert(device, revision);
                }
                None => self.settle(&device, since_ms).await,
            }
        }
    }

    /// A renewal of `device` failed: the claim expired, another hub wrote over it, or NATS
    /// did not answer.
    async fn settle(&mut self, device: &str, since_ms: i64) {
        self.revisions.remove(device);
        match self.store.entry(hex(device)).await {
            Ok(entry) => match entry.as_ref().and_then(claim_of) {
                Some(claim) if claim.hub != self.hub => {
                    if self.keeps(device, &claim).is_some() {
                        self.claim(device, since_ms).await;
                    }
                }
                _ => self.claim(device, since_ms).await,
            },
            Err(err) => {
                // The NATS server may have restarted without it (it keeps the bucket in
                // memory): make it again. The handles on it stay good (they name it).
                tracing::debug!(%err, device, "the presence bucket did not answer");
                if let Err(err) = Presence::open(&self.client, &self.prefix).await {
                    tracing::warn!(%err, "the presence bucket cannot be made again");
                }
            }
        }
    }

    /// Another hub wrote a claim: if it is on a device this hub holds, the newer connection
    /// keeps the device (this hub claims it again, or lets go of it).
    async fn heard(&mut self, entry: &kv::Entry) {
        let (Some(claim), Some(device)) = (claim_of(entry), unhex(&entry.key)) else {
            return;
        };
        if claim.hub == self.hub || !self.revisions.contains_key(&device) {
            return;
        }
        match self.keeps(&device, &claim) {
            Some(since_ms) => self.claim(&device, since_ms).await,
            None => {
                self.revisions.remove(&device);
            }
        }
    }

    /// Since when this hub holds `device`, if it keeps it although `claim` says another hub
    /// holds it (if not, it has let go of it now).
    fn keeps(&self, device: &str, claim: &Claim) -> Option<i64> {
        self.registry
            .claimed_elsewhere(&self.hub, &claim.hub, device, claim.since_ms)
    }

    fn value(&self, since_ms: i64) -> bytes::Bytes {
        let claim = Claim {
            hub: self.hub.clone(),
            since_ms,
        };
        serde_json::to_vec(&claim).unwrap_or_default().into()
    }
}
