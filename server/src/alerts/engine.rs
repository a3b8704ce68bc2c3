//! The alarm engine: one task that follows the registry's events (readings, devices coming and
//! going) and a one-second tick, feeds the [`Watch`] of every rule and device it concerns, and
//! stores, counts and sends what they decide.

use super::handle::Alerts;
use super::notify;
use super::watch::{Change, Input, Watch};
use crate::registry::Away;
use crate::storage::{AlarmFilter, Channel, StorageError, Store, StoredRule};
use app::model::{Alarm, LiveEvent};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use wildmatch::WildMatch;

/// How often silences, offline times and holds are checked.
const TICK: Duration = Duration::from_secs(1);

impl Alerts {
    /// Watches until `stop`.
    ///
    /// With no rule, the engine follows no event at all: every reading would otherwise be
    /// copied to it for nothing (ingest is the hub's busiest path).
    pub async fn run(self, stop: CancellationToken) {
        let mut engine = Engine {
            alerts: self.clone(),
            rules: Vec::new(),
            watches: HashMap::new(),
            online: HashMap::new(),
            up: HashMap::new(),
        };
        if let Err(err) = engine.load_rules(crate::now_ms()).await {
            tracing::error!(%err, "loading the alarm rules failed; alarms are off until they change");
        }
        let mut events = None;
        let mut taken = 0;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if engine.rules.is_empty() {
                events = None;
            } else if events.is_none() {
                events = Some(engine.follow().await);
            }
            self.inner.rules_taken.send_if_modified(|t| {
                let newer = *t < taken;
                *t = taken.max(*t);
                newer
            });
            let next = async {
                match events.as_mut() {
                    Some(events) => events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.inner.rules_changed.notified() => {
                    taken = self.inner.rules_asked.load(Ordering::SeqCst);
                    if let Err(err) = engine.load_rules(crate::now_ms()).await {
                        tracing::error!(%err, "reloading the alarm rules failed");
                    }
                }
                _ = tick.tick() => engine.every_watch(Input::Tick, crate::now_ms()).await,
                event = next => match event {
                    Ok(event) => engine.event(event, crate::now_ms()).await,
                    Err(RecvError::Lagged(missed)) => {
                        // Readings were missed; presence is taken afresh from a snapshot.
                        tracing::warn!(missed, "the alarm engine fell behind the live events");
                        events = Some(engine.follow().await);
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// A rule with its device pattern compiled.
struct Rule {
    stored: StoredRule,
    devices: WildMatch,
}

struct Watched {
    watch: Watch,
    /// The stored alarm while it is up.
    alarm: Option<i64>,
}

struct Engine {
    alerts: Alerts,
    rules: Vec<Rule>,
    /// (rule id, device id) → its watch.
    watches: HashMap<(i64, String), Watched>,
    /// Device id → (online, since when).
    online: HashMap<String, (bool, i64)>,
    /// The alarms up when the rules were loaded: (rule, device) → (alarm id, raised at), for
    /// watches made later (a device that comes back after a restart).
    up: HashMap<(i64, String), (i64, i64)>,
}

impl Engine {
    fn store(&self) -> &Store {
        &self.alerts.inner.store
    }

    /// Starts (or restarts) following the registry's events, taking who is online from a
    /// snapshot taken together with the receiver (nothing falls between the two).
    async fn follow(&mut self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        let (snapshot, events) = self
            .alerts
            .inner
            .registry
            // This hub's own devices: another hub's engine watches those it holds.
            .subscribe_local(crate::registry::Selection::Summaries);
        let now = crate::now_ms();
        for device in snapshot.devices {
            let summary = device.summary;
            let known = self.online.get(&summary.id).map(|(online, _)| *online);
            if known.is_none() {
                let since = summary.connected_since_ms.unwrap_or(summary.last_seen_ms);
                self.online
                    .insert(summary.id.clone(), (summary.online, since));
                self.ensure_watches(&summary.id, now);
            }
            if known.is_some_and(|was| was != summary.online) || known.is_none() {
                self.presence(&summary.id, summary.online, now).await;
            }
        }
        events
    }

    /// Makes the alarms pages show (the registry's) those the store has up: restored after a
    /// restart, gone when their rule was deleted.
    async fn show_up(&self, up: &[Alarm], now: i64) {
        let registry = &self.alerts.inner.registry;
        let ids: HashSet<i64> = up.iter().map(|a| a.id).collect();
        for gone in registry
            .alarms_up()
            .into_iter()
            .filter(|a| !ids.contains(&a.id))
        {
            let cleared = match self.store().alarm(gone.id).await {
                Ok(Some(alarm)) if alarm.cleared_ms.is_some() => alarm,
                _ => Alarm {
                    cleared_ms: Some(now),
                    ..gone
                },
            };
            registry.alarm_changed(cleared);
        }
        let shown: HashSet<i64> = registry.alarms_up().iter().map(|a| a.id).collect();
        for alarm in up.iter().filter(|a| !shown.contains(&a.id)) {
            registry.alarm_changed(alarm.clone());
        }
    }

    /// Tells the pages about an alarm that was raised or cleared, as stored.
    async fn show(&self, id: i64) {
        match self.store().alarm(id).await {
            Ok(Some(alarm)) => self.alerts.inner.registry.alarm_changed(alarm),
            Ok(None) => {}
            Err(err) => tracing::error!(%err, "reading an alarm to show failed"),
        }
    }

    /// Takes the rules from the store, keeping the watches of rules that stay, and the alarms
    /// that are up (so a restart does not raise them again).
    async fn load_rules(&mut self, now: i64) -> Result<(), StorageError> {
        let stored = self.store().rules().await?;
        let up = self
            .store()
            .alarms(&AlarmFilter {
                active_only: true,
                limit: 100_000,
                ..AlarmFilter::default()
            })
            .await?;
        // A watch goes on only while its rule is unchanged: an edited rule starts afresh.
        let unchanged: HashSet<i64> = stored
            .iter()
            .filter(|s| {
                self.rules
                    .iter()
                    .any(|r| r.stored.rule.id == s.rule.id && r.stored.rule == s.rule)
            })
            .map(|s| s.rule.id)
            .collect();
        // …and while its alarm is still up (a rule changed in its secret only is the same
        // rule to the engine, but the store cleared its alarms).
        let up_ids: HashSet<i64> = up.iter().map(|a| a.id).collect();
        self.watches.retain(|(rule, _), watched| {
            unchanged.contains(rule) && watched.alarm.is_none_or(|id| up_ids.contains(&id))
        });
        self.rules = stored
            .into_iter()
            .map(|stored| Rule {
                devices: WildMatch::new(&stored.rule.devices),
                stored,
            })
            .collect();
        let devices: Vec<String> = self.online.keys().cloned().collect();
        for device in devices {
            self.ensure_watches(&device, now);
        }
        self.show_up(&up, now).await;
        self.up = up
            .into_iter()
            .map(|a| ((a.rule_id, a.device_id), (a.id, a.raised_ms)))
            .collect();
        for (key, (id, raised_ms)) in &self.up {
            if let Some(watched) = self.watches.get_mut(key) {
                if watched.alarm.is_none() {
                    watched.watch.active_since = Some(*raised_ms);
                    watched.alarm = Some(*id);
                }
            }
        }
        self.publish_active_counts();
        Ok(())
    }

    /// Creates the watches of every rule that covers `device` and has none yet.
    fn ensure_watches(&mut self, device: &str, now: i64) {
        let (online, since) = self.online.get(device).copied().unwrap_or((false, now));
        for rule in &self.rules {
            if rule.devices.matches(device) {
                let key = (rule.stored.rule.id, device.to_string());
                let restored = self.up.get(&key).copied();
                self.watches.entry(key).or_insert_with(|| Watched {
                    watch: Watch::new(online, since, restored.map(|(_, at)| at)),
                    alarm: restored.map(|(id, _)| id),
                });
            }
        }
    }

    async fn event(&mut self, event: LiveEvent, now: i64) {
        match event {
            LiveEvent::Reading(reading) => {
                let device = reading.device_id.to_string();
                if !self.online.get(&device).is_some_and(|(online, _)| *online) {
                    self.presence(&device, true, now).await;
                }
                self.ensure_watches(&device, now);
                let mut changes = Vec::new();
                for rule in &self.rules {
                    let key = (rule.stored.rule.id, device.clone());
                    let Some(watched) = self.watches.get_mut(&key) else {
                        continue;
                    };
                    let value = rule.stored.rule.condition.field().and_then(|field| {
                        reading
                            .values
                            .iter()
                            .find(|v| &*v.field == field)
                            .map(|v| v.value)
                    });
                    let input = Input::Reading(value);
                    if let Some(change) =
                        watched.watch.step(&rule.stored.rule.condition, input, now)
                    {
                        changes.push((key, change));
                    }
                }
                self.apply(changes, now).await;
            }
            LiveEvent::Device(summary) => {
                let was = self.online.get(&summary.id).map(|(online, _)| *online);
                if was != Some(summary.online) {
                    self.presence(&summary.id, summary.online, now).await;
                }
            }
            LiveEvent::Removed { device_id } => {
                self.online.remove(&device_id);
                self.watches.retain(|(_, device), _| *device != device_id);
                self.up.retain(|(_, device), _| *device != device_id);
            }
            _ => {}
        }
    }

    async fn presence(&mut self, device: &str, online: bool, now: i64) {
        self.online.insert(device.to_string(), (online, now));
        self.ensure_watches(device, now);
        let input = if online {
            Input::Online
        } else {
            Input::Offline
        };
        let mut changes = Vec::new();
        for rule in &self.rules {
            let key = (rule.stored.rule.id, device.to_string());
            if let Some(watched) = self.watches.get_mut(&key) {
                if let Some(change) = watched.watch.step(&rule.stored.rule.condition, input, now) {
                    changes.push((key, change));
                }
            }
        }
        self.apply(changes, now).await;
    }

    async fn every_watch(&mut self, input: Input, now: i64) {
        let mut changes = Vec::new();
        // A device another hub holds now (`--cluster-nats`) is that hub's engine's to watch:
        // time does not run out for it here (it may have been listed offline from the store
        // before that hub told of it). One whose hub died is this hub's to watch if the
        // registry says so (one hub does).
        let elsewhere = match input {
            Input::Tick => self.elsewhere(now).await,
            _ => HashSet::new(),
        };
        for rule in &self.rules {
            for ((rule_id, device), watched) in self.watches.iter_mut() {
                if *rule_id != rule.stored.rule.id || elsewhere.contains(device) {
                    continue;
                }
                if let Some(change) = watched.watch.step(&rule.stored.rule.condition, input, now) {
                    changes.push(((*rule_id, device.clone()), change));
                }
            }
        }
        self.apply(changes, now).await;
    }

    /// The devices other hubs watch (`--cluster-nats`), after bringing what this engine knows
    /// of their presence up to date: online on another hub clears what this hub raised while
    /// their hub was gone; orphaned (their hub died) they count as offline since it died.
    async fn elsewhere(&mut self, now: i64) -> HashSet<String> {
        let away = self.alerts.inner.registry.held_elsewhere();
        let mut watched_elsewhere = HashSet::with_capacity(away.len());
        for (device, away) in away {
            let known = self.online.get(&device).copied();
            match away {
                Away::Online if known.map(|(online, _)| online) != Some(true) => {
                    self.presence(&device, true, now).await;
                }
                Away::Orphaned { since_ms } => {
                    if known != Some((false, since_ms)) {
                        self.presence(&device, false, since_ms).await;
                    }
                    continue;
                }
                _ => {}
            }
            watched_elsewhere.insert(device);
        }
        watched_elsewhere
    }

    /// Stores, counts and sends what the watches decided.
    async fn apply(&mut self, changes: Vec<((i64, String), Change)>, now: i64) {
        if changes.is_empty() {
            return;
        }
        for ((rule_id, device), change) in changes {
            let Some(rule) = self.rules.iter().find(|r| r.stored.rule.id == rule_id) else {
                continue;
            };
            let stored = rule.stored.clone();
            let Some(watched) = self.watches.get_mut(&(rule_id, device.clone())) else {
                continue;
            };
            let (event, alarm_id) = match change {
                Change::Raised { value } => {
                    match self
                        .alerts
                        .inner
                        .store
                        .raise_alarm(rule_id, &device, now, value)
                        .await
                    {
                        Ok(id) => {
                            watched.alarm = Some(id);
                            tracing::warn!(rule = %stored.rule.name, device, ?value, "alarm raised");
                            ("raised", id)
                        }
                        Err(err) => {
                            tracing::error!(%err, "storing a raised alarm failed");
                            continue;
                        }
                    }
                }
                Change::Cleared { value } => {
                    let Some(id) = watched.alarm.take() else {
                        continue;
                    };
                    self.up.remove(&(rule_id, device.clone()));
                    if let Err(err) = self.alerts.inner.store.clear_alarm(id, now, value).await {
                        tracing::error!(%err, "storing a cleared alarm failed");
                    }
                    tracing::info!(rule = %stored.rule.name, device, ?value, "alarm cleared");
                    ("cleared", id)
                }
            };
            self.show(alarm_id).await;
            self.notify(&stored, event, alarm_id).await;
            let action = match event {
                "raised" => &stored.rule.on_raised,
                _ => &stored.rule.on_cleared,
            };
            if let Some(action) = action {
                let source = format!("rule {} {event}", stored.rule.id);
                self.alerts.run_action(&source, action, Some(&device)).await;
            }
        }
        self.publish_active_counts();
    }

    async fn notify(&self, stored: &StoredRule, event: &'static str, alarm_id: i64) {
        let inner = &self.alerts.inner;
        let rule = &stored.rule;
        let mut targets = Vec::new();
        if let (Some(url), Some(secret)) = (&rule.webhook_url, &stored.webhook_secret) {
            targets.push(notify::Target::Webhook {
                url: url.clone(),
                secret: secret.clone(),
            });
        }
        if let Some(url) = &rule.ntfy_url {
            targets.push(notify::Target::Ntfy { url: url.clone() });
        }
        if let Some(to) = &rule.email_to {
            match &inner.mailer {
                Some(mailer) => targets.push(notify::Target::Email {
                    to: to.clone(),
                    mailer: Box::new(mailer.clone()),
                }),
                None => {
                    let why = format!("{event}: not sent, the hub has no --smtp-url");
                    let _ = self
                        .store()
                        .note_delivery(alarm_id, Channel::Email, &why)
                        .await;
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        let alarm = match self.store().alarm(alarm_id).await {
            Ok(Some(alarm)) => alarm,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(%err, "reading an alarm to send failed");
                return;
            }
        };
        for target in targets {
            inner.tasks.spawn(notify::deliver(
                inner.http.clone(),
                inner.store.clone(),
                target,
                event,
                alarm.clone(),
                rule.clone(),
            ));
        }
    }

    fn publish_active_counts(&self) {
        for rule in &self.rules {
            let active = self
                .watches
                .iter()
                .filter(|((id, _), w)| *id == rule.stored.rule.id && w.watch.is_active())
                .count();
            metrics::gauge!(crate::metrics::ALARMS_ACTIVE, "rule" => rule.stored.rule.name.clone())
                .set(active as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, RegistryConfig};
    use app::model::Condition;
    use app::model::NewRule;
    use tokio_util::task::TaskTracker;

    async fn eventually_count(registry: &Registry, expected: usize) {
        for _ in 0..200 {
            if registry.subscriber_count() == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{} subscribers, not {expected}",
            registry.subscriber_count()
        );
    }

    #[tokio::test]
    async fn without_rules_the_engine_follows_no_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(crate::storage::StoreConfig {
            database: crate::storage::Database::Sqlite(dir.path().join("hub.db")),
            flush_interval: Duration::from_millis(50),
            flush_rows: 100,
        })
        .await
        .unwrap();
        let registry = Registry::new(RegistryConfig {
            recent_per_device: 10,
            event_capacity: 100,
            command_timeout: Duration::from_secs(5),
            max_devices: 100,
        });
        let alerts = Alerts::new(store.clone(), registry.clone(), None, TaskTracker::new());
        let stop = CancellationToken::new();
        let engine = tokio::spawn(alerts.clone().run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            registry.subscriber_count(),
            0,
            "no rule: no copy of every reading"
        );
        let rule = alerts
            .create_rule(NewRule {
                name: "gone".into(),
                devices: "*".into(),
                condition: Condition::Offline { after_s: 60 },
                webhook_url: None,
                webhook_secret: None,
                ntfy_url: None,
                email_to: None,
                on_raised: None,
                on_cleared: None,
            })
            .await
            .unwrap();
        eventually_count(&registry, 1).await;
        alerts.delete_rule(rule.id).await.unwrap();
        eventually_count(&registry, 0).await;
        stop.cancel();
        engine.await.unwrap();
        store.close().await;
    }
}
