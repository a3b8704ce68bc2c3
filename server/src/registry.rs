//! Who is connected, what they last sent, and who wants to know.
//!
//! One [`Registry`] is shared by every transport. A connection [`Registry::attach`]es under a
//! device id and gets an [`Attachment`]; dropping it marks the device offline (unless a newer
//! connection has replaced it meanwhile). Every change is published on a bounded broadcast
//! channel: a subscriber that falls behind loses events (and is told so), but never slows
//! ingest or other subscribers.

use crate::now_ms;
use crate::protocol::DeviceId;
use app::model::{
    DashboardSnapshot, DeviceSnapshot, DeviceSummary, FieldValue, LiveEvent, Reading,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};

/// What the registry (or another part of the server) asks a connection to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// Send this text line to the device.
    Line(String),
    /// Close the connection, telling the device why.
    Close(String),
}

#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

struct Shared {
    // A std Mutex: it is never held across an `.await`, and every critical section is a few
    // map operations, so an async mutex would only add overhead.
    state: Mutex<State>,
    events: broadcast::Sender<LiveEvent>,
    recent_per_device: usize,
}

#[derive(Default)]
struct State {
    devices: HashMap<DeviceId, Entry>,
    /// Number of the last published reading; see [`Reading::seq`].
    seq: u64,
    next_connection: u64,
}

struct Entry {
    summary: DeviceSummary,
    recent: VecDeque<Reading>,
    connection: Option<Connection>,
}

struct Connection {
    id: u64,
    outbound: mpsc::Sender<Outbound>,
}

/// Proof that a connection speaks for a device. Dropping it marks the device offline.
pub struct Attachment {
    registry: Registry,
    device: DeviceId,
    connection: u64,
}

impl Attachment {
    pub fn device(&self) -> &DeviceId {
        &self.device
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.registry.detach(&self.device, self.connection);
    }
}

impl Registry {
    /// `recent_per_device`: readings kept in memory per device for the live charts;
    /// `event_capacity`: how far a live subscriber may fall behind before it lags.
    pub fn new(recent_per_device: usize, event_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(event_capacity);
        Registry {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                events,
                recent_per_device: recent_per_device.max(1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the hub, so a poisoned lock is simply taken over.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // Events are published while the state lock is held, so that `subscribe` (which takes
    // the lock) sees each event either in its snapshot or in its receiver, never both or neither.
    fn publish(&self, event: LiveEvent) {
        // An error only means nobody is listening right now.
        let _ = self.shared.events.send(event);
    }

    /// Makes `device` online on this connection. An earlier connection for the same device is
    /// told to close: the newest connection wins.
    pub fn attach(
        &self,
        device: DeviceId,
        transport: String,
        outbound: mpsc::Sender<Outbound>,
    ) -> Attachment {
        let now = now_ms();
        let mut state = self.lock();
        state.next_connection += 1;
        let connection = state.next_connection;
        let entry = state
            .devices
            .entry(device.clone())
            .or_insert_with(|| Entry {
                summary: DeviceSummary {
                    id: device.to_string(),
                    online: false,
                    transport: String::new(),
                    connected_since_ms: None,
                    last_seen_ms: now,
                    readings: 0,
                    errors: 0,
                    latest: Vec::new(),
                },
                recent: VecDeque::new(),
                connection: None,
            });
        if let Some(old) = entry.connection.replace(Connection {
            id: connection,
            outbound,
        }) {
            // If the old connection's queue is full it is stuck anyway; dropping its sender
            // (with `old`) still ends it once it drains.
            let _ = old
                .outbound
                .try_send(Outbound::Close("replaced by a newer connection".into()));
        }
        entry.summary.online = true;
        entry.summary.transport = transport;
        entry.summary.connected_since_ms = Some(now);
        entry.summary.last_seen_ms = now;
        let summary = entry.summary.clone();
        self.publish(LiveEvent::Device(summary));
        drop(state);
        Attachment {
            registry: self.clone(),
            device,
            connection,
        }
    }

    /// Stamps a reading with the receive time and the next sequence number, updates the device
    /// and publishes the reading.
    pub fn record(&self, attachment: &Attachment, values: Vec<FieldValue>) -> Reading {
        let now = now_ms();
        let recent_cap = self.shared.recent_per_device;
        let mut state = self.lock();
        state.seq += 1;
        let reading = Reading {
            seq: state.seq,
            device_id: attachment.device.to_string(),
            received_ms: now,
            values,
        };
        if let Some(entry) = state.devices.get_mut(&attachment.device) {
            entry.summary.last_seen_ms = now;
            entry.summary.readings += 1;
            entry.summary.latest = reading.values.clone();
            if entry.recent.len() >= recent_cap {
                entry.recent.pop_front();
            }
            entry.recent.push_back(reading.clone());
        }
        self.publish(LiveEvent::Reading(reading.clone()));
        reading
    }

    /// Counts a bad line from this device.
    pub fn record_error(&self, attachment: &Attachment) {
        if let Some(entry) = self.lock().devices.get_mut(&attachment.device) {
            entry.summary.errors += 1;
        }
    }

    fn detach(&self, device: &DeviceId, connection: u64) {
        let mut state = self.lock();
        let Some(entry) = state.devices.get_mut(device) else {
            return;
        };
        // A replaced connection closing late must not take the new one offline.
        if entry
            .connection
            .as_ref()
            .is_some_and(|c| c.id == connection)
        {
            entry.connection = None;
            entry.summary.online = false;
            entry.summary.connected_since_ms = None;
            let summary = entry.summary.clone();
            self.publish(LiveEvent::Device(summary));
        }
    }

    pub fn snapshot(&self) -> DashboardSnapshot {
        snapshot_of(&self.lock())
    }

    pub fn subscribe(&self) -> (DashboardSnapshot, broadcast::Receiver<LiveEvent>) {
        let state = self.lock();
        (snapshot_of(&state), self.shared.events.subscribe())
    }

    pub fn summary(&self, device: &DeviceId) -> Option<DeviceSummary> {
        self.lock().devices.get(device).map(|e| e.summary.clone())
    }
}

fn snapshot_of(state: &State) -> DashboardSnapshot {
    let mut devices: Vec<DeviceSnapshot> = state
        .devices
        .values()
        .map(|e| DeviceSnapshot {
            summary: e.summary.clone(),
            recent: e.recent.iter().cloned().collect(),
        })
        .collect();
    devices.sort_by(|a, b| a.summary.id.cmp(&b.summary.id));
    DashboardSnapshot {
        seq: state.seq,
        devices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    fn temp(v: f64) -> Vec<FieldValue> {
        vec![FieldValue {
            field: "temp".into(),
            value: v,
        }]
    }

    #[test]
    fn attach_record_detach() {
        let registry = Registry::new(10, 16);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "test".into(), tx);
        let r = registry.record(&att, temp(23.5));
        assert_eq!(r.seq, 1);
        let s = registry.summary(&id("7")).unwrap();
        assert!(s.online);
        assert_eq!((s.readings, s.latest[0].value), (1, 23.5));
        drop(att);
        assert!(!registry.summary(&id("7")).unwrap().online);
    }

    #[test]
    fn a_new_connection_replaces_the_old_one() {
        let registry = Registry::new(10, 16);
        let (old_tx, mut old_rx) = mpsc::channel(4);
        let old = registry.attach(id("7"), "a".into(), old_tx);
        let (new_tx, _new_rx) = mpsc::channel(4);
        let _new = registry.attach(id("7"), "b".into(), new_tx);
        assert!(
            matches!(old_rx.try_recv(), Ok(Outbound::Close(reason)) if reason.contains("replaced"))
        );
        drop(old);
        let s = registry.summary(&id("7")).unwrap();
        assert!(
            s.online,
            "the old connection going away must not take the new one offline"
        );
        assert_eq!(s.transport, "b");
    }

    #[test]
    fn recent_readings_are_bounded() {
        let registry = Registry::new(3, 16);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        for i in 0..10 {
            registry.record(&att, temp(i as f64));
        }
        let snap = registry.snapshot();
        let recent: Vec<u64> = snap.devices[0].recent.iter().map(|r| r.seq).collect();
        assert_eq!(recent, [8, 9, 10]);
        assert_eq!(snap.seq, 10);
    }

    #[test]
    fn subscribers_see_each_event_in_the_snapshot_or_the_stream_exactly_once() {
        let registry = Registry::new(100, 1024);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        registry.record(&att, temp(1.0));
        let (snap, mut rx) = registry.subscribe();
        registry.record(&att, temp(2.0));
        assert_eq!(snap.seq, 1);
        match rx.try_recv().unwrap() {
            LiveEvent::Reading(r) => assert_eq!(r.seq, 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_slow_subscriber_lags_without_blocking_ingest() {
        let registry = Registry::new(10, 4);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        let (_, mut slow) = registry.subscribe();
        for i in 0..100 {
            registry.record(&att, temp(i as f64));
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        assert_eq!(registry.snapshot().seq, 100);
    }
}
