//! The alarms' handle ([`Alerts`]): what the REST API and the pages manage rules and
//! acknowledge alarms through, and what the engine (`engine.rs`) runs on.

use super::notify;
use crate::registry::Registry;
use crate::storage::{AlarmFilter, StorageError, Store};
use app::model::{Alarm, AlarmRule, NewRule};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

/// How long a change of the rules waits for the engine to take it up before answering anyway.
const RULES_TAKEN_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Invalid(String),
    #[error("there is no alarm rule {0}")]
    NoSuchRule(i64),
    #[error("there is no alarm {0}")]
    NoSuchAlarm(i64),
    #[error("there is no schedule {0}")]
    NoSuchSchedule(i64),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The handle: cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: Store,
    pub(super) registry: Registry,
    /// Told when the rules change.
    pub(super) rules_changed: Notify,
    /// Rule changes asked for, and (sent by the engine) those taken up: a rule is watched once
    /// its change is, so that a reading right after creating it is not missed.
    pub(super) rules_asked: AtomicU64,
    pub(super) rules_taken: tokio::sync::watch::Sender<u64>,
    /// Told when the schedules change.
    pub(super) schedules_changed: Notify,
    pub(super) http: reqwest::Client,
    /// The mail server, if `--smtp-url` is set.
    pub(super) mailer: Option<notify::Mailer>,
    pub(super) tasks: TaskTracker,
}

impl Alerts {
    pub fn new(
        store: Store,
        registry: Registry,
        mailer: Option<notify::Mailer>,
        tasks: TaskTracker,
    ) -> Alerts {
        Alerts {
            inner: Arc::new(Inner {
                store,
                registry,
                rules_changed: Notify::new(),
                rules_asked: AtomicU64::new(0),
                rules_taken: tokio::sync::watch::Sender::new(0),
                schedules_changed: Notify::new(),
                http: reqwest::Client::new(),
                mailer,
                tasks,
            }),
        }
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(super) fn schedules_changed(&self) -> &Notify {
        &self.inner.schedules_changed
    }

    pub async fn create_rule(&self, new: NewRule) -> Result<AlarmRule, AlertError> {
        new.validate().map_err(AlertError::Invalid)?;
        let stored = self.inner.store.create_rule(&new, crate::now_ms()).await?;
        tracing::info!(rule = stored.rule.id, name = %stored.rule.name, "alarm rule created");
        self.rules_changed().await;
        Ok(stored.rule)
    }

    /// Tells the engine the rules changed and waits (briefly: the engine may be busy or not
    /// running) until it follows them.
    async fn rules_changed(&self) {
        let asked = self.inner.rules_asked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut taken = self.inner.rules_taken.subscribe();
        self.inner.rules_changed.notify_one();
        let _ = tokio::time::timeout(RULES_TAKEN_WAIT, taken.wait_for(|t| *t >= asked)).await;
    }

    /// Changes a rule. A webhook kept without a new secret keeps the stored one. Its alarms
    /// that are up clear, and are raised again if the new definition holds.
    pub async fn update_rule(&self, id: i64, mut new: NewRule) -> Result<AlarmRule, AlertError> {
        let stored = self.inner.store.rules().await?;
        let old = stored
            .iter()
            .find(|s| s.rule.id == id)
            .ok_or(AlertError::NoSuchRule(id))?;
        if new.webhook_url.is_some() && new.webhook_secret.is_none() {
            new.webhook_secret = old.webhook_secret.clone();
        }
        new.validate().map_err(AlertError::Invalid)?;
        let updated = self
            .inner
            .store
            .update_rule(id, &new, crate::now_ms())
            .await?
            .ok_or(AlertError::NoSuchRule(id))?;
        tracing::info!(rule = id, name = %updated.rule.name, "alarm rule changed");
        self.rules_changed().await;
        Ok(updated.rule)
    }

    /// Deletes a rule; its alarms that are up clear, and stay in the history.
    pub async fn delete_rule(&self, id: i64) -> Result<(), AlertError> {
        if !self.inner.store.delete_rule(id, crate::now_ms()).await? {
            return Err(AlertError::NoSuchRule(id));
        }
        self.rules_changed().await;
        Ok(())
    }

    pub async fn rules(&self) -> Result<Vec<AlarmRule>, AlertError> {
        Ok(self
            .inner
            .store
            .rules()
            .await?
            .into_iter()
            .map(|s| s.rule)
            .collect())
    }

    pub async fn alarms(&self, filter: &AlarmFilter) -> Result<Vec<Alarm>, AlertError> {
        Ok(self.inner.store.alarms(filter).await?)
    }

    /// A person acknowledged the alarm (it stays up until its condition is over).
    pub async fn acknowledge(&self, id: i64, user: &str) -> Result<Alarm, AlertError> {
        let alarm = self
            .inner
            .store
            .ack_alarm(id, user, crate::now_ms())
            .await?
            .ok_or(AlertError::NoSuchAlarm(id))?;
        tracing::info!(alarm = id, user, "alarm acknowledged");
        self.inner.registry.alarm_changed(alarm.clone());
        Ok(alarm)
    }
}
