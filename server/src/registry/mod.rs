//! Who is connected, what they last sent, what was sent to them, and who wants to know.
//!
//! One [`Registry`] is shared by every transport. A connection [`Registry::attach`]es under a
//! device id and gets an [`Attachment`]; dropping it marks the device offline (unless a newer
//! connection has replaced it meanwhile). Every change is published on a bounded broadcast
//! channel: a subscriber that falls behind loses events (and is told so), but never slows
//! ingest or other subscribers.
//!
//! Commands to devices are numbered and tracked in `commands.rs`; the alarms that are up are
//! held in `alarms.rs` for snapshots.

mod alarms;
mod commands;
mod mailbox;
mod recent;
mod remote;
mod replay;
mod restore;
mod snapshot;

use crate::now_ms;
use crate::protocol::{DeviceId, Dialect};
use app::model::{
    ConsoleLine, DashboardSnapshot, DeviceSummary, Direction, FieldValue, Fleet, LiveEvent, Name,
    Reading, Registration, CONSOLE_LINES,
};
use commands::Tracked;
pub use commands::{CommandError, RemoteCommand};
pub use mailbox::{mailbox, MailboxReceiver, MailboxSender};
use parking_lot::{Mutex, MutexGuard};
pub use remote::{Away, DeviceState};
pub use replay::{Resumed, REPLAY_EVENTS};
pub use restore::Restored;
pub use snapshot::Selection;
use snapshot::{fleet_of, snapshot_of};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Longest console line kept; longer lines are cut (the full line was parsed, not stored).
const CONSOLE_LINE_CHARS: usize = 256;
/// What the registry (or another part of the server) asks a connection to do, through the
/// connection's [`mailbox`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// Send this raw text line to the device.
    Line(String),
    /// Send command `seq`, already formatted for the device's dialect, and report delivery.
    Command { seq: u64, line: String },
    /// Close the connection, telling the device why.
    Close(String),
    /// Device token `id` was revoked: a connection that presented it closes.
    TokenRevoked(i64),
}

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Readings kept in memory per device for the live charts.
    pub recent_per_device: usize,
    /// How far a live subscriber may fall behind before it lags.
    pub event_capacity: usize,
    /// How long a device has to acknowledge a command.
    pub command_timeout: Duration,
    /// Most devices known at once (online or not); a new id past it is refused.
    pub max_devices: usize,
}

/// The registry has as many devices as it may keep (`--max-devices`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this hub knows {0} devices already, its limit (--max-devices); a new id is refused")]
pub struct TooManyDevices(pub usize);

#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

struct Shared {
    // A blocking mutex: it is never held across an `.await`, and every critical section is a
    // few map operations, so an async mutex would only add overhead. parking_lot's does not
    // poison: a panic while holding it cannot leave the maps half-updated in a way that matters
    // more than losing the hub, so the next holder simply goes on.
    state: Mutex<State>,
    events: broadcast::Sender<LiveEvent>,
    /// The events of this hub's own devices only (not those another hub told of): what the
    /// alarm engine watches and what the cluster tells the other hubs (`crate::cluster`).
    local: broadcast::Sender<LiveEvent>,
    /// Event ids, and the events kept for streams that reconnect.
    replay: replay::Replay,
    config: RegistryConfig,
}

#[derive(Default)]
struct State {
    /// Entries boxed: the table keeps free slots (up to half of them just after it grows),
    /// and a free slot costs the size of what it holds, which for an entry is ~300 bytes.
    devices: HashMap<DeviceId, Box<Entry>>,
    /// Number of the last published reading; see [`Reading::seq`].
    seq: u64,
    next_connection: u64,
    next_command: u64,
    /// Tracked commands in `seq` order (so lookups are binary searches).
    commands: VecDeque<Tracked>,
    /// The alarms up, by id: the alarm engine tells ([`Registry::alarm_changed`]), snapshots
    /// carry them.
    alarms: std::collections::BTreeMap<i64, app::model::Alarm>,
    /// Commands to devices other hubs hold: this registry's number of each, by the holding
    /// hub and its number (see `remote.rs`).
    remote_commands: HashMap<(Arc<str>, u64), u64>,
    /// Where commands to devices other hubs hold go (the cluster link), if anywhere.
    command_route: Option<tokio::sync::mpsc::UnboundedSender<RemoteCommand>>,
    /// The cluster link is down (see [`Registry::linked`]); pages say so.
    cut_off: bool,
    /// This hub's alarm engine watches the devices of hubs that died (see
    /// [`Registry::keep_orphans`]).
    keeps_orphans: bool,
}

struct Entry {
    summary: DeviceSummary,
    /// Its newest readings, for the live charts (in columns: see `recent.rs`).
    recent: recent::Recent,
    console: VecDeque<ConsoleLine>,
    /// The dialect of its last reading: commands go out in it.
    dialect: Dialect,
    connection: Option<Connection>,
    /// Another hub holds its connection and tells of it (see `remote.rs`); `None` for a device
    /// of this hub's own, or one nobody holds.
    remote: Option<remote::Holder>,
}

impl Entry {
    /// A device seen for the first time (or known only from the store): offline, no connection.
    fn new(device: &DeviceId, last_seen_ms: i64) -> Entry {
        Entry {
            summary: DeviceSummary {
                id: device.to_string(),
                online: false,
                transport: String::new(),
                connected_since_ms: None,
                last_seen_ms,
                readings: 0,
                errors: 0,
                bytes_in: 0,
                latest: Vec::new(),
                registration: None,
                display_name: None,
            },
            recent: recent::Recent::default(),
            console: VecDeque::new(),
            dialect: Dialect::Csv,
            connection: None,
            remote: None,
        }
    }
}

/// Lines a connection read at once, one per line of `lines`, and when (wall clock, ms): they go
/// to the device's console with the readings they carried, under one lock.
#[derive(Debug, Clone, Copy)]
pub struct Heard<'a> {
    pub lines: &'a str,
    pub ms: i64,
}

impl Heard<'_> {
    /// No lines (readings that did not come as text, or were already heard).
    pub const NOTHING: Heard<'static> = Heard { lines: "", ms: 0 };
}

/// Who a change came from: this hub's own device, or one another hub told of (published to
/// this hub's pages only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Local,
    Remote,
}

/// A reading as a connection hands it over, before the registry stamps it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    /// Commands to the device go out in the dialect of its last reading.
    pub dialect: Dialect,
    pub device_ms: Option<i64>,
    pub values: Vec<FieldValue>,
}

struct Connection {
    id: u64,
    outbound: MailboxSender,
}

/// Proof that a connection speaks for a device. Dropping it marks the device offline.
pub struct Attachment {
    registry: Registry,
    device: DeviceId,
    /// The id as readings carry it, made once per connection.
    name: Name,
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
    pub fn new(config: RegistryConfig) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let (local, _) = broadcast::channel(config.event_capacity.max(1));
        Registry {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                events,
                local,
                replay: replay::Replay::new(),
                config: RegistryConfig {
                    recent_per_device: config.recent_per_device.max(1),
                    ..config
                },
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock()
    }

    // Events are published while the state lock is held, so that `subscribe` (which takes
    // the lock) sees each event either in its snapshot or in its receiver, never both or neither.
    fn publish(&self, event: LiveEvent) {
        if self.shared.local.receiver_count() > 0 {
            let _ = self.shared.local.send(event.clone());
        }
        self.publish_everywhere_but_local(event);
    }

    fn publish_from(&self, origin: Origin, event: LiveEvent) {
        match origin {
            Origin::Local => self.publish(event),
            Origin::Remote => self.publish_everywhere_but_local(event),
        }
    }

    /// Whether anyone listens to events (live streams, the alarm engine, the cluster): when
    /// nobody does, readings and console lines are not copied into events at all.
    fn listened_to(&self) -> bool {
        self.shared.events.receiver_count() > 0 || self.shared.local.receiver_count() > 0
    }

    /// [`Registry::publish`] for what another hub told of: this hub's pages see it, its alarm
    /// engine and the cluster do not (the holding hub's do).
    fn publish_everywhere_but_local(&self, event: LiveEvent) {
        // Every command event is a command entering a status (sent, delivered, acked, …).
        if let LiveEvent::Command(info) = &event {
            metrics::counter!(crate::metrics::COMMANDS, "status" => info.status.label().to_string())
                .increment(1);
        }
        self.shared.replay.note(&event);
        // An error only means nobody is listening right now.
        let _ = self.shared.events.send(event);
    }

    /// Makes `device` online on this connection. An earlier connection for the same device is
    /// told to close: the newest connection wins. A device the registry does not know yet is
    /// refused when it knows `max_devices` already.
    pub fn attach(
        &self,
        device: DeviceId,
        transport: String,
        outbound: MailboxSender,
    ) -> Result<Attachment, TooManyDevices> {
        let now = now_ms();
        let mut state = self.lock();
        let max = self.shared.config.max_devices;
        if state.devices.len() >= max && !state.devices.contains_key(&device) {
            metrics::counter!(crate::metrics::DEVICES_REFUSED).increment(1);
            return Err(TooManyDevices(max));
        }
        state.next_connection += 1;
        let connection = state.next_connection;
        let entry = state
            .devices
            .entry(device.clone())
            .or_insert_with(|| Box::new(Entry::new(&device, now)));
        if let Some(old) = entry.connection.replace(Connection {
            id: connection,
            outbound,
        }) {
            // If the old connection's mailbox is full it is stuck anyway: it ends when a
            // write to its device times out, or at its keepalive.
            let _ = old
                .outbound
                .try_send(Outbound::Close("replaced by a newer connection".into()));
        }
        // Another hub may still think it holds the device (its connection there not yet seen
        // dead): from now on what that hub tells of it is ignored.
        entry.remote = None;
        entry.summary.online = true;
        entry.summary.transport = transport;
        entry.summary.connected_since_ms = Some(now);
        entry.summary.last_seen_ms = now;
        let summary = entry.summary.clone();
        self.publish(LiveEvent::Device(summary));
        self.deliver_queued(&mut state, &device);
        drop(state);
        Ok(Attachment {
            registry: self.clone(),
            name: device.as_str().into(),
            device,
            connection,
        })
    }

    /// Stamps a reading with the receive time and the next sequence number, updates the device
    /// and publishes the reading.
    pub fn record(
        &self,
        attachment: &Attachment,
        dialect: Dialect,
        device_ms: Option<i64>,
        values: Vec<FieldValue>,
    ) -> Reading {
        let new = NewReading {
            dialect,
            device_ms,
            values,
        };
        let mut recorded = self.record_batch(attachment, Heard::NOTHING, [new]);
        let reading = recorded
            .pop()
            .unwrap_or_else(|| unreachable!("one reading in, one out"));
        Arc::unwrap_or_clone(reading)
    }

    /// [`Registry::record`] for several readings of one device at once, under one lock: each
    /// gets the receive time and the next sequence number, goes into the device's recent
    /// readings and is published, in order.
    pub fn record_batch(
        &self,
        attachment: &Attachment,
        heard: Heard<'_>,
        readings: impl IntoIterator<Item = NewReading>,
    ) -> Vec<Arc<Reading>> {
        let now = now_ms();
        let recent_cap = self.shared.config.recent_per_device;
        let readings = readings.into_iter();
        let mut recorded = Vec::with_capacity(readings.size_hint().0);
        let mut state = self.lock();
        // Read under the lock: `subscribe` adds receivers under it, so no subscriber can miss
        // what is recorded after its snapshot. Nobody listening, nothing to clone.
        let publish = self.listened_to();
        let State { devices, seq, .. } = &mut *state;
        let mut entry = devices.get_mut(&attachment.device);
        if let Some(entry) = entry.as_mut() {
            self.hear(&attachment.device, entry, heard);
        }
        for new in readings {
            *seq += 1;
            let reading = Arc::new(Reading {
                seq: *seq,
                device_id: attachment.name.clone(),
                received_ms: now,
                device_ms: new.device_ms,
                values: new.values,
            });
            if let Some(entry) = entry.as_mut() {
                entry.dialect = new.dialect;
                entry.summary.readings += 1;
                entry.recent.push(&reading, recent_cap);
            }
            if publish {
                self.publish(LiveEvent::Reading((*reading).clone()));
            }
            recorded.push(reading);
        }
        if let (Some(entry), Some(last)) = (entry, recorded.last()) {
            entry.summary.last_seen_ms = now;
            entry.summary.latest = last.values.clone();
        }
        drop(state);
        recorded
    }

    /// Raw lines arrived from this device: console, byte count, last seen.
    pub fn lines_in(&self, attachment: &Attachment, heard: Heard<'_>) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(&attachment.device) {
            self.hear(&attachment.device, entry, heard);
        }
    }

    fn hear(&self, device: &DeviceId, entry: &mut Entry, heard: Heard<'_>) {
        for line in heard.lines.lines() {
            entry.summary.bytes_in += line.len() as u64 + 1;
            entry.summary.last_seen_ms = heard.ms;
            self.push_console(device, entry, Direction::In, line, heard.ms, Origin::Local);
        }
    }

    /// The server refused a line from this device with `message`.
    pub fn error_out(&self, attachment: &Attachment, message: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(&attachment.device) {
            entry.summary.errors += 1;
            self.push_console(
                &attachment.device,
                entry,
                Direction::Error,
                message,
                now_ms(),
                Origin::Local,
            );
        }
    }

    fn push_console(
        &self,
        device: &DeviceId,
        entry: &mut Entry,
        direction: Direction,
        text: &str,
        now: i64,
        origin: Origin,
    ) {
        // Once the ring is full, the line it drops lends its buffer to the new one: a device
        // streaming lines costs no allocation per line for its console.
        let mut buffer = if entry.console.len() >= CONSOLE_LINES {
            entry
                .console
                .pop_front()
                .map(|old| old.text)
                .unwrap_or_default()
        } else {
            String::new()
        };
        buffer.clear();
        match text.char_indices().nth(CONSOLE_LINE_CHARS) {
            Some((cut, _)) => {
                buffer.push_str(&text[..cut]);
                buffer.push('…');
            }
            None => buffer.push_str(text),
        }
        let line = ConsoleLine {
            ms: now,
            direction,
            text: buffer,
        };
        // Under the lock, as for readings: nobody listening, nothing to clone.
        if self.listened_to() {
            let event = LiveEvent::Console {
                device_id: device.to_string(),
                line: line.clone(),
            };
            self.publish_from(origin, event);
        }
        entry.console.push_back(line);
    }

    /// Stores what the device said about itself and publishes the updated summary.
    /// Returns whether it changed anything (a repeated registration is not published again).
    pub fn register(&self, attachment: &Attachment, registration: &Registration) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.devices.get_mut(&attachment.device) else {
            return false;
        };
        if entry.summary.registration.as_ref() == Some(registration) {
            return false;
        }
        entry.summary.registration = Some(registration.clone());
        let summary = entry.summary.clone();
        self.publish(LiveEvent::Device(summary));
        true
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

    /// Listeners now: browsers' live streams, the REST event streams, the alarm engine and the
    /// cluster.
    pub fn subscriber_count(&self) -> usize {
        self.shared.events.receiver_count() + self.shared.local.receiver_count()
    }

    /// Tells the device's connection, if any, that token `token_id` was revoked (it closes if
    /// it connected with that token).
    pub fn token_revoked(&self, device: &str, token_id: i64) {
        let Ok(id) = DeviceId::parse(device) else {
            return;
        };
        let state = self.lock();
        if let Some(connection) = state.devices.get(&id).and_then(|e| e.connection.as_ref()) {
            // A full queue means a stuck connection; the device cannot reconnect with the
            // revoked token anyway.
            let _ = connection
                .outbound
                .try_send(Outbound::TokenRevoked(token_id));
        }
    }

    /// Forgets a device (it was removed): a connection for it is told to close, and subscribers
    /// that it is gone. Returns whether the registry knew it.
    pub fn forget(&self, device: &str) -> bool {
        let Ok(id) = DeviceId::parse(device) else {
            return false;
        };
        let mut state = self.lock();
        let Some(entry) = state.devices.remove(&id) else {
            return false;
        };
        if let Some(connection) = entry.connection {
            let _ = connection
                .outbound
                .try_send(Outbound::Close("device removed".into()));
        }
        self.publish(LiveEvent::Removed {
            device_id: id.to_string(),
        });
        true
    }

    /// The devices `selection` names, with the counts, recent commands and alarms up.
    pub fn snapshot(&self, selection: Selection<'_>) -> DashboardSnapshot {
        snapshot_of(&self.lock(), selection)
    }

    /// A snapshot and a receiver for every event after it, taken together (under the lock
    /// events are published under) so that nothing falls between the two.
    pub fn subscribe(
        &self,
        selection: Selection<'_>,
    ) -> (DashboardSnapshot, broadcast::Receiver<LiveEvent>) {
        let state = self.lock();
        (
            snapshot_of(&state, selection),
            self.shared.events.subscribe(),
        )
    }

    /// [`Registry::subscribe`] for this hub's own devices: the snapshot leaves out devices
    /// another hub holds, and the receiver gets only the events of this hub's own.
    pub fn subscribe_local(
        &self,
        selection: Selection<'_>,
    ) -> (DashboardSnapshot, broadcast::Receiver<LiveEvent>) {
        let state = self.lock();
        let mut snapshot = snapshot_of(&state, selection);
        snapshot.devices.retain(|d| {
            DeviceId::parse(&d.summary.id)
                .ok()
                .and_then(|id| state.devices.get(&id))
                .is_some_and(|e| e.remote.is_none())
        });
        (snapshot, self.shared.local.subscribe())
    }

    /// How many devices are known and online.
    pub fn fleet(&self) -> Fleet {
        fleet_of(&self.lock())
    }

    pub fn summary(&self, device: &DeviceId) -> Option<DeviceSummary> {
        self.lock().devices.get(device).map(|e| e.summary.clone())
    }
}

#[cfg(test)]
mod remote_tests;
#[cfg(test)]
mod tests;
