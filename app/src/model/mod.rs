//! Data shapes shared by the server and the browser, and the state the live stream drives.
//!
//! Times are milliseconds since the Unix epoch (UTC), stamped by the server when a reading arrives.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

mod alerts;
mod commands;
mod condition_fields;
mod console;
mod decimal;
mod listing;
mod roles;
mod tokens;

pub use alerts::{
    Action, ActionTarget, Alarm, AlarmRule, AutomationRun, Condition, NewRule, NewSchedule,
    RuleForm, RuleThreshold, Schedule, MAX_RULE_SECONDS,
};
pub use commands::{
    control_state, validate_variable, CommandInfo, CommandRequest, CommandStatus, CommandTarget,
    ControlKind, ControlState, MAX_DURATION_MS, MAX_VARIABLE_CHARS,
};
pub use console::{ConsoleLine, Direction};
pub use decimal::parse_decimal;
pub use listing::{DeviceOrder, DeviceQuery, Fleet, Listed, Scope, MAX_FILTER_CHARS, PAGE_SIZE};
pub use roles::{Permission, Role};
pub use tokens::{ApiToken, DeviceToken, NewApiToken, NewDeviceToken, Viewer};

/// A device id or field name as readings carry it: shared, not copied, because every reading
/// of a device names the same device and fields (one allocation per connection rather than per
/// value on the server's ingest path). Serialised as a plain string.
pub type Name = std::sync::Arc<str>;

/// One named numeric value of a reading, in the order the device sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FieldValue {
    #[cfg_attr(feature = "ssr", schema(value_type = String))]
    pub field: Name,
    pub value: f64,
}

/// One line a device sent, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Reading {
    /// Position in the server's stream of events since it started; lets a browser drop what it
    /// already has after it re-synchronises.
    pub seq: u64,
    #[cfg_attr(feature = "ssr", schema(value_type = String))]
    pub device_id: Name,
    pub received_ms: i64,
    /// The device's own timestamp (JSON `"ts"`), if it sent one; kept, never trusted for ordering.
    #[serde(default)]
    pub device_ms: Option<i64>,
    pub values: Vec<FieldValue>,
}

/// One time bucket of a downsampled series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesPoint {
    /// Middle of the bucket.
    pub t_ms: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub count: u64,
}

/// One field of a device over a time window, at most a bounded number of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Series {
    pub field: String,
    pub points: Vec<SeriesPoint>,
}

/// A device's stored history over `[from_ms, to_ms)`, downsampled into buckets of `bucket_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HistoryWindow {
    pub device_id: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket_ms: i64,
    /// What the points were computed from: 0 for raw readings, else the length of the stored
    /// aggregates (60,000 per-minute, 3,600,000 per-hour) that long windows read.
    #[serde(default)]
    pub level_ms: i64,
    pub series: Vec<Series>,
}

impl HistoryWindow {
    /// What a chart of this window says about where its points come from.
    pub fn level_label(&self) -> &'static str {
        match self.level_ms {
            0 => "from every stored reading",
            60_000 => "from per-minute aggregates",
            3_600_000 => "from per-hour aggregates",
            _ => "from stored aggregates",
        }
    }
}

/// What the device list shows about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeviceSummary {
    pub id: String,
    pub online: bool,
    /// Where the current (or last) connection came from, e.g. `websocket 192.0.2.4:51234`.
    pub transport: String,
    pub connected_since_ms: Option<i64>,
    pub last_seen_ms: i64,
    pub readings: u64,
    pub errors: u64,
    /// Bytes of text received from the device.
    pub bytes_in: u64,
    pub latest: Vec<FieldValue>,
    /// What the device said about itself, if it registered.
    pub registration: Option<Registration>,
    /// The name a person gave it (the REST API's rename), shown instead of the registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl DeviceSummary {
    /// The name a person gave the device, else the one it registered, if any.
    pub fn name(&self) -> Option<&str> {
        let registered = self.registration.as_ref().and_then(|r| r.name.as_deref());
        self.display_name.as_deref().or(registered)
    }
}

/// A device's optional description of itself (sent as a JSON `{"register": {…}}` line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Registration {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Names (and units) of its values, in the order a positional CSV line sends them.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// Commands it understands.
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FieldSpec {
    pub name: String,
    #[serde(default)]
    pub unit: Option<String>,
}

/// A command a device accepts, e.g. `LED` from 0 to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CommandSpec {
    pub name: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// The slider's step (a command with a range wider than 0–1 gets a slider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A device and the readings the server still holds in memory for it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeviceSnapshot {
    pub summary: DeviceSummary,
    pub recent: Vec<Reading>,
    /// Its console: recent raw lines in and out, oldest first.
    #[serde(default)]
    pub console: Vec<ConsoleLine>,
}

/// What a page needs to draw itself, as of event `seq`: the devices of its [`Scope`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DashboardSnapshot {
    pub seq: u64,
    /// The device this snapshot carries in detail (all recent readings and the console), on a
    /// device page.
    #[serde(default)]
    pub focus: Option<String>,
    /// On the overview: its page of devices, in the order asked for, each with its last
    /// [`SPARKLINE_POINTS`] readings. On a device page: that device.
    pub devices: Vec<DeviceSnapshot>,
    /// On the overview: how many devices match its filter, on all pages.
    #[serde(default)]
    pub matching: u32,
    /// The whole fleet's counts.
    #[serde(default)]
    pub fleet: Fleet,
    /// Recent commands, oldest first.
    #[serde(default)]
    pub commands: Vec<CommandInfo>,
    /// Who asked: set by `load_dashboard` (the live stream's snapshots leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer: Option<Viewer>,
    /// The alarms up (not cleared), oldest first.
    #[serde(default)]
    pub alarms: Vec<Alarm>,
}

/// One message of the live stream (newline-delimited JSON on the wire), externally tagged:
/// `{"reading":{…}}`, `"heartbeat"`. (An internally tagged enum would make serde buffer each
/// event and compile a second deserializer for every type inside: tens of KiB of wasm.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveEvent {
    /// The whole picture: sent first on every (re)connection and after a lag, replacing what the
    /// browser had.
    Snapshot(DashboardSnapshot),
    /// A device connected, disconnected or otherwise changed.
    Device(DeviceSummary),
    /// A device was removed (from the dashboard or the command line): it is no longer listed.
    Removed {
        device_id: String,
    },
    /// The fleet's counts changed (devices outside the page's scope are sent only as this).
    Fleet(Fleet),
    Reading(Reading),
    /// A command was sent or its status changed.
    Command(CommandInfo),
    /// An alarm was raised, acknowledged or cleared.
    Alarm(Alarm),
    /// A raw line to or from a device, for its console.
    Console {
        device_id: String,
        line: ConsoleLine,
    },
    /// This subscriber fell behind and `missed` events were dropped for it; a snapshot follows.
    Lagged {
        missed: u64,
    },
    /// Sent when nothing else happened for a while, so a dead connection is noticed.
    Heartbeat,
}

impl LiveEvent {
    /// One line of the wire format.
    pub fn to_line(&self) -> String {
        // Serialising these plain structs cannot fail: no maps with non-string keys, no I/O.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// How many points per field the browser keeps for its live charts.
pub const LIVE_POINTS_PER_FIELD: usize = 1000;
/// Readings per device an overview snapshot carries, and a browser keeps, for sparklines.
pub const SPARKLINE_POINTS: usize = 60;
/// Console lines kept per device, in the server and in the browser.
pub const CONSOLE_LINES: usize = 200;
/// Recent commands kept, in the server and in the browser.
pub const RECENT_COMMANDS: usize = 100;

/// A device as the browser holds it: summary plus a bounded series per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceView {
    pub summary: Option<DeviceSummary>,
    /// Field name → (time, value) points, oldest first. Ordered by first appearance.
    pub series: Vec<(String, VecDeque<(i64, f64)>)>,
    pub console: VecDeque<ConsoleLine>,
}

impl DeviceView {
    fn push_console(&mut self, line: ConsoleLine) {
        if self.console.len() == CONSOLE_LINES {
            self.console.pop_front();
        }
        self.console.push_back(line);
    }

    /// Adds a reading's values, keeping at most `cap` points per field.
    fn push(&mut self, reading: &Reading, cap: usize) {
        for FieldValue { field, value } in &reading.values {
            let idx = match self.series.iter().position(|(name, _)| **name == **field) {
                Some(idx) => idx,
                None => {
                    self.series.push((field.to_string(), VecDeque::new()));
                    self.series.len() - 1
                }
            };
            let points = &mut self.series[idx].1;
            while points.len() >= cap {
                points.pop_front();
            }
            points.push_back((reading.received_ms, *value));
        }
    }

    fn registration(&self) -> Option<&Registration> {
        self.summary.as_ref()?.registration.as_ref()
    }

    /// The name a person gave the device, else the one it registered, if any.
    pub fn name(&self) -> Option<&str> {
        self.summary.as_ref()?.name()
    }

    /// The unit the device registered for a field, if any.
    pub fn unit(&self, field: &str) -> Option<&str> {
        self.registration()?
            .fields
            .iter()
            .find(|f| f.name == field)?
            .unit
            .as_deref()
    }

    /// The series a sparkline shows: the first field that is not a plain send counter (the
    /// classic `id,counter,temp` line would otherwise always show a rising straight line).
    pub fn trend(&self) -> Option<&(String, VecDeque<(i64, f64)>)> {
        self.series
            .iter()
            .find(|(field, _)| field != "counter")
            .or_else(|| self.series.first())
    }
}

/// What the device page's charts show: the live points, or a window of stored history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeWindow {
    #[default]
    Live,
    Minutes5,
    Hour1,
    Hours24,
    Days7,
    /// A window picked by dragging across a chart: `?from=…&to=…` in the page's address.
    /// Made by [`TimeWindow::range`], which keeps it sensible.
    Range {
        from_ms: i64,
        to_ms: i64,
    },
}

impl TimeWindow {
    /// The narrowest window a zoom may pick; narrower shows no more than it.
    pub const MIN_RANGE_MS: i64 = 1_000;
    /// The widest: what one history query may cover (the server's limit too).
    pub const MAX_RANGE_MS: i64 = 400 * 86_400_000;

    /// The window from `from_ms` to `to_ms`, if it is one the charts can show: in order, at
    /// least [`Self::MIN_RANGE_MS`] (a narrower one is widened around its middle) and at most
    /// [`Self::MAX_RANGE_MS`] wide, and within the years a timestamp can name.
    pub fn range(from_ms: i64, to_ms: i64) -> Option<TimeWindow> {
        const YEAR_3000_MS: i64 = 32_503_680_000_000;
        let valid = |t: i64| (0..=YEAR_3000_MS).contains(&t);
        if !valid(from_ms) || !valid(to_ms) || to_ms < from_ms {
            return None;
        }
        let (from_ms, to_ms) = if to_ms - from_ms < Self::MIN_RANGE_MS {
            let middle = from_ms + (to_ms - from_ms) / 2;
            let from = (middle - Self::MIN_RANGE_MS / 2).max(0);
            (from, from + Self::MIN_RANGE_MS)
        } else {
            (from_ms, to_ms)
        };
        (to_ms - from_ms <= Self::MAX_RANGE_MS).then_some(TimeWindow::Range { from_ms, to_ms })
    }

    /// The stored history this window shows, `[from, to)`, at time `now_ms`; `None` for live.
    pub fn bounds(self, now_ms: i64) -> Option<(i64, i64)> {
        match self {
            TimeWindow::Range { from_ms, to_ms } => Some((from_ms, to_ms)),
            other => other.span_ms().map(|span| (now_ms - span, now_ms + 1)),
        }
    }

    pub const ALL: [TimeWindow; 5] = [
        TimeWindow::Live,
        TimeWindow::Minutes5,
        TimeWindow::Hour1,
        TimeWindow::Hours24,
        TimeWindow::Days7,
    ];

    /// As it appears in the page's address (`?window=1h`).
    pub fn key(self) -> &'static str {
        match self {
            TimeWindow::Live => "live",
            TimeWindow::Minutes5 => "5m",
            TimeWindow::Hour1 => "1h",
            TimeWindow::Hours24 => "24h",
            TimeWindow::Days7 => "7d",
            TimeWindow::Range { .. } => "range",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TimeWindow::Live => "Live",
            TimeWindow::Minutes5 => "5 min",
            TimeWindow::Hour1 => "1 h",
            TimeWindow::Hours24 => "24 h",
            TimeWindow::Days7 => "7 d",
            TimeWindow::Range { .. } => "Zoomed",
        }
    }

    /// Anything unknown (or no window at all) is the live view.
    pub fn from_key(key: &str) -> TimeWindow {
        Self::ALL
            .into_iter()
            .find(|w| w.key() == key)
            .unwrap_or_default()
    }

    /// How far back a history window reaches; `None` for live.
    pub fn span_ms(self) -> Option<i64> {
        const MIN: i64 = 60_000;
        match self {
            TimeWindow::Live => None,
            TimeWindow::Minutes5 => Some(5 * MIN),
            TimeWindow::Hour1 => Some(60 * MIN),
            TimeWindow::Hours24 => Some(24 * 60 * MIN),
            TimeWindow::Days7 => Some(7 * 24 * 60 * MIN),
            TimeWindow::Range { from_ms, to_ms } => Some(to_ms - from_ms),
        }
    }
}

/// The dashboard's state in the browser; [`DashboardState::apply`] is all the live stream does to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardState {
    /// The newest event reflected here; older readings arriving after a re-sync are dropped.
    pub seq: u64,
    /// The device held in detail (see [`DashboardSnapshot::focus`]).
    pub focus: Option<String>,
    pub devices: BTreeMap<String, DeviceView>,
    /// The overview's cards, in the order the server listed them.
    pub page: Vec<String>,
    /// How many devices match the overview's filter (see [`DashboardSnapshot::matching`]).
    pub matching: u32,
    pub fleet: Fleet,
    /// Recent commands, oldest first.
    pub commands: VecDeque<CommandInfo>,
    /// The alarms up, by id (oldest first).
    pub alarms: BTreeMap<i64, Alarm>,
}

impl From<DashboardSnapshot> for DashboardState {
    fn from(snapshot: DashboardSnapshot) -> Self {
        let mut state = DashboardState {
            seq: snapshot.seq,
            focus: snapshot.focus,
            devices: BTreeMap::new(),
            page: snapshot
                .devices
                .iter()
                .map(|d| d.summary.id.clone())
                .collect(),
            matching: snapshot.matching,
            fleet: snapshot.fleet,
            commands: snapshot.commands.into_iter().collect(),
            alarms: BTreeMap::new(),
        };
        // Inserted one by one: collecting into a map sorts first, with a stable sort of its
        // own in the browser bundle (4 KiB) for a list the server already sends in order.
        for alarm in snapshot.alarms {
            state.alarms.insert(alarm.id, alarm);
        }
        for device in snapshot.devices {
            let id = device.summary.id.clone();
            let cap = state.points_kept_for(&id);
            let mut view = DeviceView::default();
            for reading in &device.recent {
                view.push(reading, cap);
            }
            view.summary = Some(device.summary);
            view.console = device.console.into_iter().collect();
            state.devices.insert(id, view);
        }
        state
    }
}

impl DashboardState {
    /// The device in detail keeps enough points for its charts; the others, for sparklines.
    fn points_kept_for(&self, id: &str) -> usize {
        if self.focus.as_deref() == Some(id) {
            LIVE_POINTS_PER_FIELD
        } else {
            SPARKLINE_POINTS
        }
    }

    pub fn apply(&mut self, event: LiveEvent) {
        match event {
            LiveEvent::Snapshot(snapshot) => *self = snapshot.into(),
            LiveEvent::Device(summary) => {
                let view = self.devices.entry(summary.id.clone()).or_default();
                view.summary = Some(summary);
            }
            LiveEvent::Reading(reading) => {
                if reading.seq <= self.seq {
                    return;
                }
                self.seq = reading.seq;
                let cap = self.points_kept_for(&reading.device_id);
                let view = self
                    .devices
                    .entry(reading.device_id.to_string())
                    .or_default();
                view.push(&reading, cap);
                if let Some(summary) = view.summary.as_mut() {
                    summary.last_seen_ms = reading.received_ms;
                    summary.readings += 1;
                    summary.latest = reading.values;
                }
            }
            LiveEvent::Command(info) => {
                match self.commands.iter_mut().rev().find(|c| c.seq == info.seq) {
                    Some(known) => *known = info,
                    None => {
                        if self.commands.len() == RECENT_COMMANDS {
                            self.commands.pop_front();
                        }
                        self.commands.push_back(info);
                    }
                }
            }
            LiveEvent::Console { device_id, line } => {
                self.devices
                    .entry(device_id)
                    .or_default()
                    .push_console(line);
            }
            LiveEvent::Alarm(alarm) => {
                if alarm.cleared_ms.is_some() {
                    self.alarms.remove(&alarm.id);
                } else {
                    self.alarms.insert(alarm.id, alarm);
                }
            }
            LiveEvent::Fleet(fleet) => self.fleet = fleet,
            LiveEvent::Removed { device_id } => {
                self.devices.remove(&device_id);
                self.page.retain(|id| *id != device_id);
                self.alarms.retain(|_, a| a.device_id != device_id);
            }
            LiveEvent::Lagged { .. } | LiveEvent::Heartbeat => {}
        }
    }

    /// The alarms up for `device` (or for every device), oldest first.
    pub fn alarms_for<'a>(&'a self, device: Option<&'a str>) -> impl Iterator<Item = &'a Alarm> {
        self.alarms
            .values()
            .filter(move |a| device.is_none_or(|d| a.device_id == d))
    }
}

#[cfg(test)]
mod tests;
