//! Who is connected, what they last sent, what was sent to them, and who wants to know.
//!
//! One [`Registry`] is shared by every transport. A connection [`Registry::attach`]es under a
//! device id and gets an [`Attachment`]; dropping it marks the device offline (unless a newer
//! connection has replaced it meanwhile). Every change is published on a bounded broadcast
//! channel: a subscriber that falls behind loses events (and is told so), but never slows
//! ingest or other subscribers.
//!
//! Commands are numbered here, handed to the device's connection as [`Outbound::Command`], and
//! tracked until the device acknowledges them, they time out ([`Registry::expire_overdue`]), or
//! they fail because the device is offline.

use crate::now_ms;
use crate::protocol::{format_command, DeviceId, Dialect};
use app::model::{
    CommandInfo, CommandRequest, CommandStatus, CommandTarget, ConsoleLine, DashboardSnapshot,
    DeviceSnapshot, DeviceSummary, Direction, FieldValue, LiveEvent, Name, Reading, Registration,
    CONSOLE_LINES, RECENT_COMMANDS, SPARKLINE_POINTS,
};
use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Longest console line kept; longer lines are cut (the full line was parsed, not stored).
const CONSOLE_LINE_CHARS: usize = 256;
/// Commands tracked at once (for acks and timeouts); a command to "all" creates one per device.
const MAX_TRACKED_COMMANDS: usize = 20_000;

/// What the registry (or another part of the server) asks a connection to do. Queued boxed:
/// a channel's first block has 32 slots however little it is used, and every idle connection
/// has one (32 pointers rather than 32 of these: about a kilobyte less per device).
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
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    #[error("no device is online")]
    NobodyOnline,
    #[error("device {0:?} is offline")]
    Offline(String),
    #[error("device {0:?} is not keeping up; try again")]
    Busy(String),
    #[error("no command {0} is waiting for this device")]
    UnknownAck(u64),
}

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
    config: RegistryConfig,
}

#[derive(Default)]
struct State {
    devices: HashMap<DeviceId, Entry>,
    /// Number of the last published reading; see [`Reading::seq`].
    seq: u64,
    next_connection: u64,
    next_command: u64,
    /// Tracked commands in `seq` order (so lookups are binary searches).
    commands: VecDeque<Tracked>,
}

struct Entry {
    summary: DeviceSummary,
    /// Shared with the store's queue: recording a reading copies nothing.
    recent: VecDeque<Arc<Reading>>,
    console: VecDeque<ConsoleLine>,
    /// The dialect of its last reading: commands go out in it.
    dialect: Dialect,
    connection: Option<Connection>,
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
            },
            recent: VecDeque::new(),
            console: VecDeque::new(),
            dialect: Dialect::Csv,
            connection: None,
        }
    }
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
    outbound: mpsc::Sender<Box<Outbound>>,
}

struct Tracked {
    info: CommandInfo,
    deadline_ms: i64,
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
        Registry {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                events,
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
        // Every command event is a command entering a status (sent, delivered, acked, …).
        if let LiveEvent::Command(info) = &event {
            metrics::counter!(crate::metrics::COMMANDS, "status" => info.status.label().to_string())
                .increment(1);
        }
        // An error only means nobody is listening right now.
        let _ = self.shared.events.send(event);
    }

    /// Makes `device` online on this connection. An earlier connection for the same device is
    /// told to close: the newest connection wins.
    pub fn attach(
        &self,
        device: DeviceId,
        transport: String,
        outbound: mpsc::Sender<Box<Outbound>>,
    ) -> Attachment {
        let now = now_ms();
        let mut state = self.lock();
        state.next_connection += 1;
        let connection = state.next_connection;
        let entry = state
            .devices
            .entry(device.clone())
            .or_insert_with(|| Entry::new(&device, now));
        if let Some(old) = entry.connection.replace(Connection {
            id: connection,
            outbound,
        }) {
            // If the old connection's queue is full it is stuck anyway; dropping its sender
            // (with `old`) still ends it once it drains.
            let _ = old.outbound.try_send(Box::new(Outbound::Close(
                "replaced by a newer connection".into(),
            )));
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
            name: device.as_str().into(),
            device,
            connection,
        }
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
        let mut recorded = self.record_batch(attachment, [new]);
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
        readings: impl IntoIterator<Item = NewReading>,
    ) -> Vec<Arc<Reading>> {
        let now = now_ms();
        let recent_cap = self.shared.config.recent_per_device;
        let readings = readings.into_iter();
        let mut recorded = Vec::with_capacity(readings.size_hint().0);
        let mut state = self.lock();
        // Read under the lock: `subscribe` adds receivers under it, so no subscriber can miss
        // what is recorded after its snapshot. Nobody listening, nothing to clone.
        let publish = self.shared.events.receiver_count() > 0;
        let State { devices, seq, .. } = &mut *state;
        let mut entry = devices.get_mut(&attachment.device);
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
                if entry.recent.len() >= recent_cap {
                    entry.recent.pop_front();
                }
                entry.recent.push_back(reading.clone());
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
        recorded
    }

    /// A raw line arrived from this device: console, byte count, last seen.
    pub fn line_in(&self, attachment: &Attachment, text: &str, now: i64) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(&attachment.device) {
            entry.summary.bytes_in += text.len() as u64 + 1;
            entry.summary.last_seen_ms = now;
            self.push_console(&attachment.device, entry, Direction::In, text, now);
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
        if self.shared.events.receiver_count() > 0 {
            self.publish(LiveEvent::Console {
                device_id: device.to_string(),
                line: line.clone(),
            });
        }
        entry.console.push_back(line);
    }

    /// Stores what the device said about itself and publishes the updated summary.
    pub fn register(&self, attachment: &Attachment, registration: Registration) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(&attachment.device) {
            entry.summary.registration = Some(registration);
            let summary = entry.summary.clone();
            self.publish(LiveEvent::Device(summary));
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

    /// Sends a command to one device or to every online device; returns one record per device.
    /// A command to a known but offline device is recorded as failed.
    pub fn send_command(&self, request: &CommandRequest) -> Result<Vec<CommandInfo>, CommandError> {
        let now = now_ms();
        let timeout_ms = self.shared.config.command_timeout.as_millis() as i64;
        let mut state = self.lock();
        let targets: Vec<DeviceId> = match &request.target {
            CommandTarget::Device(id) => {
                let id = DeviceId::parse(id).map_err(|e| CommandError::Invalid(e.to_string()))?;
                let entry = state
                    .devices
                    .get(&id)
                    .ok_or_else(|| CommandError::UnknownDevice(id.to_string()))?;
                let spec = entry
                    .summary
                    .registration
                    .as_ref()
                    .and_then(|r| r.commands.iter().find(|c| c.name == request.variable));
                request.validate(spec).map_err(CommandError::Invalid)?;
                vec![id]
            }
            CommandTarget::All => {
                request.validate(None).map_err(CommandError::Invalid)?;
                let mut online: Vec<DeviceId> = state
                    .devices
                    .iter()
                    .filter(|(_, e)| e.connection.is_some())
                    .map(|(id, _)| id.clone())
                    .collect();
                if online.is_empty() {
                    return Err(CommandError::NobodyOnline);
                }
                online.sort();
                online
            }
        };

        let mut sent = Vec::with_capacity(targets.len());
        for id in targets {
            state.next_command += 1;
            let seq = state.next_command;
            let Some(entry) = state.devices.get_mut(&id) else {
                continue;
            };
            let status = match &entry.connection {
                None => CommandStatus::Failed(CommandError::Offline(id.to_string()).to_string()),
                Some(connection) => {
                    let line = format_command(
                        entry.dialect,
                        seq,
                        &request.variable,
                        request.value,
                        request.duration_ms,
                    );
                    match connection.outbound.try_send(Box::new(Outbound::Command {
                        seq,
                        line: line.clone(),
                    })) {
                        Ok(()) => {
                            self.push_console(&id, entry, Direction::Out, &line, now_ms());
                            CommandStatus::Pending
                        }
                        Err(_) => {
                            CommandStatus::Failed(CommandError::Busy(id.to_string()).to_string())
                        }
                    }
                }
            };
            let info = CommandInfo {
                seq,
                device_id: id.to_string(),
                variable: request.variable.clone(),
                value: request.value,
                duration_ms: request.duration_ms,
                status,
                sent_ms: now,
                updated_ms: now,
            };
            if state.commands.len() >= MAX_TRACKED_COMMANDS {
                state.commands.pop_front();
            }
            state.commands.push_back(Tracked {
                info: info.clone(),
                deadline_ms: now + timeout_ms,
            });
            self.publish(LiveEvent::Command(info.clone()));
            sent.push(info);
        }
        Ok(sent)
    }

    /// Sends a raw text line (from the console) to an online device.
    /// Devices online, and devices known (online or not).
    pub fn device_counts(&self) -> (usize, usize) {
        let state = self.lock();
        let online = state.devices.values().filter(|e| e.summary.online).count();
        (online, state.devices.len())
    }

    /// Browsers (live streams) listening now.
    pub fn subscriber_count(&self) -> usize {
        self.shared.events.receiver_count()
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
                .try_send(Box::new(Outbound::TokenRevoked(token_id)));
        }
    }

    pub fn send_line(&self, device: &str, line: &str) -> Result<(), CommandError> {
        let id = DeviceId::parse(device).map_err(|e| CommandError::Invalid(e.to_string()))?;
        let mut state = self.lock();
        let entry = state
            .devices
            .get_mut(&id)
            .ok_or_else(|| CommandError::UnknownDevice(id.to_string()))?;
        let connection = entry
            .connection
            .as_ref()
            .ok_or_else(|| CommandError::Offline(id.to_string()))?;
        connection
            .outbound
            .try_send(Box::new(Outbound::Line(line.to_string())))
            .map_err(|_| CommandError::Busy(id.to_string()))?;
        self.push_console(&id, entry, Direction::Out, line, now_ms());
        Ok(())
    }

    fn update_command(
        &self,
        state: &mut State,
        seq: u64,
        update: impl FnOnce(&mut CommandInfo) -> bool,
    ) -> bool {
        let Ok(index) = state.commands.binary_search_by_key(&seq, |c| c.info.seq) else {
            return false;
        };
        let info = &mut state.commands[index].info;
        if !update(info) {
            return false;
        }
        info.updated_ms = now_ms();
        self.publish(LiveEvent::Command(info.clone()));
        true
    }

    /// The connection wrote command `seq` to the device.
    pub fn command_delivered(&self, seq: u64) {
        let mut state = self.lock();
        self.update_command(&mut state, seq, |info| {
            let pending = info.status == CommandStatus::Pending;
            if pending {
                info.status = CommandStatus::Delivered;
            }
            pending
        });
    }

    /// The device acknowledged command `seq`. Only its own, not yet final, commands count.
    pub fn acknowledge(&self, attachment: &Attachment, seq: u64) -> Result<(), CommandError> {
        let device = attachment.device.as_str();
        let mut state = self.lock();
        let acked = self.update_command(&mut state, seq, |info| {
            let mine = info.device_id == device && !info.status.is_final();
            if mine {
                info.status = CommandStatus::Acked;
            }
            mine
        });
        if acked {
            Ok(())
        } else {
            Err(CommandError::UnknownAck(seq))
        }
    }

    /// Marks commands not acknowledged by their deadline as timed out. Called periodically.
    pub fn expire_overdue(&self, now_ms: i64) {
        let mut state = self.lock();
        let overdue: Vec<u64> = state
            .commands
            .iter()
            .filter(|c| c.deadline_ms <= now_ms && !c.info.status.is_final())
            .map(|c| c.info.seq)
            .collect();
        for seq in overdue {
            self.update_command(&mut state, seq, |info| {
                info.status = CommandStatus::TimedOut;
                true
            });
        }
    }

    /// Lists a device known from the store, offline, as it was last seen: called at start-up,
    /// so that the dashboard shows every device and not only those that reconnected. `recent`
    /// is oldest first; its newest reading gives the latest values. A device already present
    /// (it connected meanwhile) is left alone.
    pub fn restore(
        &self,
        id: &str,
        last_seen_ms: i64,
        registration: Option<Registration>,
        recent: Vec<Reading>,
    ) {
        let Ok(id) = DeviceId::parse(id) else {
            return;
        };
        let skip = recent
            .len()
            .saturating_sub(self.shared.config.recent_per_device);
        let mut state = self.lock();
        state.devices.entry(id.clone()).or_insert_with(|| {
            let mut entry = Entry::new(&id, last_seen_ms);
            entry.summary.registration = registration;
            entry.summary.latest = recent.last().map(|r| r.values.clone()).unwrap_or_default();
            entry.recent = recent.into_iter().skip(skip).map(Arc::new).collect();
            entry
        });
    }

    /// Every device; `focus` (a device id) in detail, see [`DashboardSnapshot::focus`].
    pub fn snapshot(&self, focus: Option<&str>) -> DashboardSnapshot {
        snapshot_of(&self.lock(), focus)
    }

    pub fn subscribe(
        &self,
        focus: Option<&str>,
    ) -> (DashboardSnapshot, broadcast::Receiver<LiveEvent>) {
        let state = self.lock();
        (snapshot_of(&state, focus), self.shared.events.subscribe())
    }

    pub fn summary(&self, device: &DeviceId) -> Option<DeviceSummary> {
        self.lock().devices.get(device).map(|e| e.summary.clone())
    }

    pub fn command(&self, seq: u64) -> Option<CommandInfo> {
        let state = self.lock();
        let index = state
            .commands
            .binary_search_by_key(&seq, |c| c.info.seq)
            .ok()?;
        Some(state.commands[index].info.clone())
    }
}

/// With hundreds of devices a snapshot with every device's recent readings would weigh
/// megabytes; a page needs the detail of at most one device, and sparklines for the others.
fn snapshot_of(state: &State, focus: Option<&str>) -> DashboardSnapshot {
    let mut devices: Vec<DeviceSnapshot> = state
        .devices
        .values()
        .map(|e| {
            let (recent, console) = match focus {
                Some(id) if id == e.summary.id => (
                    e.recent.iter().map(|r| (**r).clone()).collect(),
                    e.console.iter().cloned().collect(),
                ),
                Some(_) => (Vec::new(), Vec::new()),
                None => {
                    let skip = e.recent.len().saturating_sub(SPARKLINE_POINTS);
                    (
                        e.recent.iter().skip(skip).map(|r| (**r).clone()).collect(),
                        Vec::new(),
                    )
                }
            };
            DeviceSnapshot {
                summary: e.summary.clone(),
                recent,
                console,
            }
        })
        .collect();
    devices.sort_by(|a, b| a.summary.id.cmp(&b.summary.id));
    let skip = state.commands.len().saturating_sub(RECENT_COMMANDS);
    let commands = state
        .commands
        .iter()
        .skip(skip)
        .map(|c| c.info.clone())
        .collect();
    DashboardSnapshot {
        seq: state.seq,
        focus: focus.map(str::to_string),
        devices,
        commands,
        viewer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(recent: usize, events: usize) -> Registry {
        Registry::new(RegistryConfig {
            recent_per_device: recent,
            event_capacity: events,
            command_timeout: Duration::from_secs(5),
        })
    }

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    fn temp(v: f64) -> Vec<FieldValue> {
        vec![FieldValue {
            field: "temp".into(),
            value: v,
        }]
    }

    fn led(target: CommandTarget, value: f64) -> CommandRequest {
        CommandRequest {
            target,
            variable: "LED".into(),
            value,
            duration_ms: None,
        }
    }

    #[test]
    fn attach_record_detach() {
        let registry = registry(10, 16);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "test".into(), tx);
        let r = registry.record(&att, Dialect::Csv, None, temp(23.5));
        assert_eq!(r.seq, 1);
        let s = registry.summary(&id("7")).unwrap();
        assert!(s.online);
        assert_eq!((s.readings, s.latest[0].value), (1, 23.5));
        drop(att);
        assert!(!registry.summary(&id("7")).unwrap().online);
    }

    #[test]
    fn a_new_connection_replaces_the_old_one() {
        let registry = registry(10, 16);
        let (old_tx, mut old_rx) = mpsc::channel(4);
        let old = registry.attach(id("7"), "a".into(), old_tx);
        let (new_tx, _new_rx) = mpsc::channel(4);
        let _new = registry.attach(id("7"), "b".into(), new_tx);
        assert!(
            matches!(old_rx.try_recv().map(|b| *b), Ok(Outbound::Close(reason)) if reason.contains("replaced"))
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
    fn recent_readings_and_console_lines_are_bounded() {
        let registry = registry(3, 16);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        for i in 0..(CONSOLE_LINES + 10) {
            registry.line_in(&att, &format!("7,{i}"), now_ms());
            registry.record(&att, Dialect::Csv, None, temp(i as f64));
        }
        let snap = registry.snapshot(Some("7"));
        let n = (CONSOLE_LINES + 10) as u64;
        let recent: Vec<u64> = snap.devices[0].recent.iter().map(|r| r.seq).collect();
        assert_eq!(recent, [n - 2, n - 1, n]);
        assert_eq!(snap.devices[0].console.len(), CONSOLE_LINES);
        assert_eq!(
            snap.devices[0].console.last().unwrap().text,
            format!("7,{}", CONSOLE_LINES + 9)
        );
        registry.line_in(&att, &"x".repeat(10_000), now_ms());
        assert!(
            registry.snapshot(Some("7")).devices[0]
                .console
                .last()
                .unwrap()
                .text
                .chars()
                .count()
                <= CONSOLE_LINE_CHARS + 1
        );
    }

    #[test]
    fn restoring_lists_a_stored_device_offline_but_never_replaces_a_live_one() {
        let registry = registry(3, 16);
        let (tx, _rx) = mpsc::channel(4);
        let _live = registry.attach(id("7"), "t".into(), tx);
        registry.restore("7", 42, None, Vec::new());
        let old: Vec<Reading> = (0..5)
            .map(|i| Reading {
                seq: 0,
                device_id: "8".into(),
                received_ms: i,
                device_ms: None,
                values: temp(i as f64),
            })
            .collect();
        registry.restore("8", 42, None, old);
        registry.restore("bad\nid", 42, None, Vec::new());

        let snap = registry.snapshot(Some("8"));
        assert_eq!(snap.devices.len(), 2, "an invalid stored id is skipped");
        let seven = &snap.devices[0].summary;
        assert!(seven.online, "the live connection stays");
        let eight = &snap.devices[1];
        assert!(!eight.summary.online && eight.summary.connected_since_ms.is_none());
        assert_eq!(eight.summary.last_seen_ms, 42);
        let kept: Vec<i64> = eight.recent.iter().map(|r| r.received_ms).collect();
        assert_eq!(kept, [2, 3, 4], "only the newest recent readings are kept");
        assert_eq!(
            eight.summary.latest,
            temp(4.0),
            "the newest reading's values"
        );
    }

    #[test]
    fn snapshots_carry_detail_only_for_the_device_in_focus() {
        let registry = registry(SPARKLINE_POINTS + 40, 16);
        let (tx, _rx) = mpsc::channel(4);
        let seven = registry.attach(id("7"), "t".into(), tx.clone());
        let eight = registry.attach(id("8"), "t".into(), tx);
        for i in 0..(SPARKLINE_POINTS + 40) {
            for att in [&seven, &eight] {
                registry.line_in(att, "line", now_ms());
                registry.record(att, Dialect::Csv, None, temp(i as f64));
            }
        }
        let overview = registry.snapshot(None);
        assert_eq!(overview.focus, None);
        for device in &overview.devices {
            assert_eq!(device.recent.len(), SPARKLINE_POINTS);
            assert!(device.console.is_empty());
        }
        let detail = registry.snapshot(Some("8"));
        assert_eq!(detail.focus.as_deref(), Some("8"));
        let by_id = |id: &str| detail.devices.iter().find(|d| d.summary.id == id).unwrap();
        assert_eq!(by_id("8").recent.len(), SPARKLINE_POINTS + 40);
        assert_eq!(by_id("8").console.len(), SPARKLINE_POINTS + 40);
        assert!(by_id("7").recent.is_empty() && by_id("7").console.is_empty());
        assert!(
            by_id("7").summary.online,
            "the others still have their summary"
        );
    }

    #[test]
    fn subscribers_see_each_event_in_the_snapshot_or_the_stream_exactly_once() {
        let registry = registry(100, 1024);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        registry.record(&att, Dialect::Csv, None, temp(1.0));
        let (snap, mut rx) = registry.subscribe(None);
        registry.record(&att, Dialect::Csv, None, temp(2.0));
        assert_eq!(snap.seq, 1);
        match rx.try_recv().unwrap() {
            LiveEvent::Reading(r) => assert_eq!(r.seq, 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_slow_subscriber_lags_without_blocking_ingest() {
        let registry = registry(10, 4);
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        let (_, mut slow) = registry.subscribe(None);
        for i in 0..100 {
            registry.record(&att, Dialect::Csv, None, temp(i as f64));
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        assert_eq!(registry.snapshot(None).seq, 100);
    }

    #[test]
    fn a_command_goes_out_in_the_device_dialect_and_is_acked() {
        let registry = registry(10, 64);
        let (tx, mut rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        registry.record(&att, Dialect::Json, None, temp(1.0));
        let sent = registry
            .send_command(&led(CommandTarget::Device("7".into()), 1.0))
            .unwrap();
        let seq = sent[0].seq;
        assert_eq!(
            *rx.try_recv().unwrap(),
            Outbound::Command {
                seq,
                line: format!(r#"{{"cmd":"LED","value":1,"seq":{seq}}}"#)
            }
        );
        registry.command_delivered(seq);
        assert_eq!(
            registry.command(seq).unwrap().status,
            CommandStatus::Delivered
        );
        registry.acknowledge(&att, seq).unwrap();
        assert_eq!(registry.command(seq).unwrap().status, CommandStatus::Acked);
        assert_eq!(
            registry.acknowledge(&att, seq),
            Err(CommandError::UnknownAck(seq)),
            "acked once only"
        );
        assert_eq!(
            registry.acknowledge(&att, 999),
            Err(CommandError::UnknownAck(999))
        );
    }

    #[test]
    fn commands_to_all_reach_every_online_device_only() {
        let registry = registry(10, 64);
        let (a_tx, mut a_rx) = mpsc::channel(4);
        let (b_tx, mut b_rx) = mpsc::channel(4);
        let (c_tx, _c_rx) = mpsc::channel(4);
        let _a = registry.attach(id("a"), "t".into(), a_tx);
        let _b = registry.attach(id("b"), "t".into(), b_tx);
        drop(registry.attach(id("c"), "t".into(), c_tx));
        let sent = registry
            .send_command(&led(CommandTarget::All, 0.0))
            .unwrap();
        let devices: Vec<&str> = sent.iter().map(|c| c.device_id.as_str()).collect();
        assert_eq!(devices, ["a", "b"]);
        assert!(
            matches!(a_rx.try_recv().map(|b| *b), Ok(Outbound::Command { line, .. }) if line.starts_with("LED=0,seq="))
        );
        assert!(b_rx.try_recv().is_ok());
        assert_ne!(sent[0].seq, sent[1].seq);
    }

    #[test]
    fn offline_unknown_and_out_of_range_commands() {
        let registry = registry(10, 64);
        assert_eq!(
            registry.send_command(&led(CommandTarget::All, 1.0)),
            Err(CommandError::NobodyOnline)
        );
        assert_eq!(
            registry.send_command(&led(CommandTarget::Device("nope".into()), 1.0)),
            Err(CommandError::UnknownDevice("nope".into()))
        );
        let (tx, _rx) = mpsc::channel(4);
        let att = registry.attach(id("7"), "t".into(), tx);
        registry.register(
            &att,
            Registration {
                commands: vec![app::model::CommandSpec {
                    name: "LED".into(),
                    min: Some(0.0),
                    max: Some(1.0),
                }],
                ..Registration::default()
            },
        );
        assert!(matches!(
            registry.send_command(&led(CommandTarget::Device("7".into()), 5.0)),
            Err(CommandError::Invalid(msg)) if msg.contains("from 0 to 1")
        ));
        drop(att);
        let sent = registry
            .send_command(&led(CommandTarget::Device("7".into()), 1.0))
            .unwrap();
        assert_eq!(
            sent[0].status,
            CommandStatus::Failed("device \"7\" is offline".into())
        );
    }

    #[test]
    fn unacknowledged_commands_time_out() {
        let registry = registry(10, 64);
        let (tx, _rx) = mpsc::channel(4);
        let _att = registry.attach(id("7"), "t".into(), tx);
        let seq = registry
            .send_command(&led(CommandTarget::Device("7".into()), 1.0))
            .unwrap()[0]
            .seq;
        registry.command_delivered(seq);
        registry.expire_overdue(now_ms());
        assert_eq!(
            registry.command(seq).unwrap().status,
            CommandStatus::Delivered,
            "not yet"
        );
        registry.expire_overdue(now_ms() + 5_001);
        assert_eq!(
            registry.command(seq).unwrap().status,
            CommandStatus::TimedOut
        );
    }

    #[test]
    fn a_device_cannot_ack_another_devices_command() {
        let registry = registry(10, 64);
        let (a_tx, _a_rx) = mpsc::channel(4);
        let (b_tx, _b_rx) = mpsc::channel(4);
        let _a = registry.attach(id("a"), "t".into(), a_tx);
        let b = registry.attach(id("b"), "t".into(), b_tx);
        let seq = registry
            .send_command(&led(CommandTarget::Device("a".into()), 1.0))
            .unwrap()[0]
            .seq;
        assert_eq!(
            registry.acknowledge(&b, seq),
            Err(CommandError::UnknownAck(seq))
        );
    }
}
