//! Data shapes shared by the server and the browser, and the state the live stream drives.
//!
//! Times are milliseconds since the Unix epoch (UTC), stamped by the server when a reading arrives.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A device id or field name as readings carry it: shared, not copied, because every reading
/// of a device names the same device and fields (one allocation per connection rather than per
/// value on the server's ingest path). Serialised as a plain string.
pub type Name = std::sync::Arc<str>;

/// One named numeric value of a reading, in the order the device sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    pub field: Name,
    pub value: f64,
}

/// One line a device sent, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Position in the server's stream of events since it started; lets a browser drop what it
    /// already has after it re-synchronises.
    pub seq: u64,
    pub device_id: Name,
    pub received_ms: i64,
    /// The device's own timestamp (JSON `"ts"`), if it sent one; kept, never trusted for ordering.
    #[serde(default)]
    pub device_ms: Option<i64>,
    pub values: Vec<FieldValue>,
}

/// One time bucket of a downsampled series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct Series {
    pub field: String,
    pub points: Vec<SeriesPoint>,
}

/// A device's stored history over `[from_ms, to_ms)`, downsampled into buckets of `bucket_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// A device's optional description of itself (sent as a JSON `{"register": {…}}` line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
pub struct FieldSpec {
    pub name: String,
    #[serde(default)]
    pub unit: Option<String>,
}

/// A command a device accepts, e.g. `LED` from 0 to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub name: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// Who a command is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandTarget {
    Device(String),
    /// Every device online at the moment it is sent.
    All,
}

/// Longest command variable name.
pub const MAX_VARIABLE_CHARS: usize = 32;
/// Longest command duration: one day.
pub const MAX_DURATION_MS: u64 = 86_400_000;

/// A command as a person asks for it: set `variable` to `value`, optionally for `duration_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub target: CommandTarget,
    pub variable: String,
    pub value: f64,
    pub duration_ms: Option<u64>,
}

/// A command variable name: 1–32 ASCII letters, digits or `_`, not starting with a digit. Also
/// what a device may declare in its registration.
pub fn validate_variable(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_VARIABLE_CHARS
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the variable must be 1–{MAX_VARIABLE_CHARS} letters, digits or _, starting with a letter"
        ))
    }
}

impl CommandRequest {
    /// Checks what both the form in the browser and the server must refuse. `spec` is the
    /// device's declaration of this command, if it made one.
    pub fn validate(&self, spec: Option<&CommandSpec>) -> Result<(), String> {
        validate_variable(&self.variable)?;
        if !self.value.is_finite() {
            return Err("the value must be a number".into());
        }
        if let Some(d) = self.duration_ms {
            if d == 0 || d > MAX_DURATION_MS {
                return Err(format!(
                    "the duration must be between 1 and {MAX_DURATION_MS} ms"
                ));
            }
        }
        if let Some(spec) = spec {
            if spec.min.is_some_and(|min| self.value < min)
                || spec.max.is_some_and(|max| self.value > max)
            {
                return Err(format!(
                    "{} accepts values from {} to {}",
                    spec.name,
                    spec.min.map_or("any".into(), |m| m.to_string()),
                    spec.max.map_or("any".into(), |m| m.to_string()),
                ));
            }
        }
        Ok(())
    }
}

impl CommandRequest {
    /// Builds a request from the command form's text fields (`target` is `all` or
    /// `device:<id>`), refusing what is not a number before anything is sent.
    pub fn from_form(
        target: &str,
        variable: &str,
        value: &str,
        duration_ms: &str,
    ) -> Result<Self, String> {
        let target = match target.strip_prefix("device:") {
            Some(id) if !id.is_empty() => CommandTarget::Device(id.to_string()),
            _ if target == "all" => CommandTarget::All,
            _ => return Err("choose a device or All devices".into()),
        };
        let value = value.trim();
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("the value must be a number, not {value:?}"))?;
        let duration_ms = match duration_ms.trim() {
            "" => None,
            raw => Some(
                raw.parse::<u64>()
                    .map_err(|_| format!("the duration must be whole milliseconds, not {raw:?}"))?,
            ),
        };
        Ok(CommandRequest {
            target,
            variable: variable.trim().to_string(),
            value,
            duration_ms,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Queued for the device's connection.
    Pending,
    /// Written to the device's connection.
    Delivered,
    /// The device confirmed it (`ack=<seq>`).
    Acked,
    /// No acknowledgement within the configured time.
    TimedOut,
    /// Could not be sent, with the reason (e.g. the device is offline).
    Failed(String),
}

impl CommandStatus {
    pub fn label(&self) -> &str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Delivered => "delivered",
            CommandStatus::Acked => "acked",
            CommandStatus::TimedOut => "timed out",
            CommandStatus::Failed(_) => "failed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CommandStatus::Acked | CommandStatus::TimedOut | CommandStatus::Failed(_)
        )
    }
}

/// One command to one device, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// Sequence number, unique per server run; the device acknowledges with it.
    pub seq: u64,
    pub device_id: String,
    pub variable: String,
    pub value: f64,
    pub duration_ms: Option<u64>,
    pub status: CommandStatus,
    pub sent_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received from the device.
    In,
    /// Sent to the device.
    Out,
    /// An error reply the server sent about a line it could not use.
    Error,
}

/// A raw line in a device's console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleLine {
    pub ms: i64,
    pub direction: Direction,
    pub text: String,
}

/// A device and the readings the server still holds in memory for it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    pub summary: DeviceSummary,
    pub recent: Vec<Reading>,
    /// Its console: recent raw lines in and out, oldest first.
    #[serde(default)]
    pub console: Vec<ConsoleLine>,
}

/// Everything the dashboard needs to draw itself, as of event `seq`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardSnapshot {
    pub seq: u64,
    /// The device this snapshot carries in detail (all recent readings and the console); the
    /// others carry only their last [`SPARKLINE_POINTS`] readings (overview) or none.
    #[serde(default)]
    pub focus: Option<String>,
    pub devices: Vec<DeviceSnapshot>,
    /// Recent commands, oldest first.
    #[serde(default)]
    pub commands: Vec<CommandInfo>,
    /// Who asked: set by `load_dashboard` (the live stream's snapshots leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer: Option<Viewer>,
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
    Reading(Reading),
    /// A command was sent or its status changed.
    Command(CommandInfo),
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

    /// The name the device registered, if any.
    pub fn name(&self) -> Option<&str> {
        self.registration()?.name.as_deref()
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
}

impl TimeWindow {
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
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TimeWindow::Live => "Live",
            TimeWindow::Minutes5 => "5 min",
            TimeWindow::Hour1 => "1 h",
            TimeWindow::Hours24 => "24 h",
            TimeWindow::Days7 => "7 d",
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
        }
    }
}

/// How the overview orders its cards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceOrder {
    /// By name (or id), case-insensitively.
    #[default]
    Name,
    /// Most recently heard from first.
    LastSeen,
    /// Offline devices first, then by name: what needs attention on top.
    OfflineFirst,
}

impl DeviceOrder {
    pub const ALL: [DeviceOrder; 3] = [
        DeviceOrder::Name,
        DeviceOrder::LastSeen,
        DeviceOrder::OfflineFirst,
    ];

    pub fn key(self) -> &'static str {
        match self {
            DeviceOrder::Name => "name",
            DeviceOrder::LastSeen => "last-seen",
            DeviceOrder::OfflineFirst => "offline-first",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeviceOrder::Name => "Name",
            DeviceOrder::LastSeen => "Last seen",
            DeviceOrder::OfflineFirst => "Offline first",
        }
    }

    pub fn from_key(key: &str) -> DeviceOrder {
        Self::ALL
            .into_iter()
            .find(|o| o.key() == key)
            .unwrap_or_default()
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
    /// Recent commands, oldest first.
    pub commands: VecDeque<CommandInfo>,
}

impl From<DashboardSnapshot> for DashboardState {
    fn from(snapshot: DashboardSnapshot) -> Self {
        let mut state = DashboardState {
            seq: snapshot.seq,
            focus: snapshot.focus,
            devices: BTreeMap::new(),
            commands: snapshot.commands.into_iter().collect(),
        };
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
            LiveEvent::Lagged { .. } | LiveEvent::Heartbeat => {}
        }
    }

    pub fn online_count(&self) -> usize {
        self.devices
            .values()
            .filter(|d| d.summary.as_ref().is_some_and(|s| s.online))
            .count()
    }

    /// The ids of the devices whose id or name contains `filter` (ignoring case), in `order`.
    pub fn device_ids(&self, filter: &str, order: DeviceOrder) -> Vec<String> {
        let filter = filter.trim().to_lowercase();
        let mut rows: Vec<(&String, &DeviceView)> = self
            .devices
            .iter()
            .filter(|(id, view)| {
                filter.is_empty()
                    || id.to_lowercase().contains(&filter)
                    || view
                        .name()
                        .is_some_and(|n| n.to_lowercase().contains(&filter))
            })
            .collect();
        let name = |(id, view): &(&String, &DeviceView)| view.name().unwrap_or(id).to_lowercase();
        let online =
            |(_, view): &(&String, &DeviceView)| view.summary.as_ref().is_some_and(|s| s.online);
        let last_seen = |(_, view): &(&String, &DeviceView)| {
            view.summary.as_ref().map_or(0, |s| s.last_seen_ms)
        };
        match order {
            DeviceOrder::Name => rows.sort_by_cached_key(|r| (name(r), r.0.clone())),
            DeviceOrder::LastSeen => {
                rows.sort_by_cached_key(|r| (std::cmp::Reverse(last_seen(r)), r.0.clone()))
            }
            DeviceOrder::OfflineFirst => {
                rows.sort_by_cached_key(|r| (online(r), name(r), r.0.clone()))
            }
        }
        rows.into_iter().map(|(id, _)| id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str) -> DeviceSummary {
        DeviceSummary {
            id: id.into(),
            online: true,
            transport: "websocket".into(),
            connected_since_ms: Some(1),
            last_seen_ms: 1,
            readings: 0,
            errors: 0,
            bytes_in: 0,
            latest: vec![],
            registration: None,
        }
    }

    fn reading(seq: u64, id: &str, ms: i64, temp: f64) -> Reading {
        Reading {
            seq,
            device_id: id.into(),
            received_ms: ms,
            device_ms: None,
            values: vec![FieldValue {
                field: "temp".into(),
                value: temp,
            }],
        }
    }

    #[test]
    fn readings_extend_series_and_update_summary() {
        let mut state = DashboardState::default();
        state.apply(LiveEvent::Device(summary("7")));
        state.apply(LiveEvent::Reading(reading(1, "7", 1000, 23.5)));
        state.apply(LiveEvent::Reading(reading(2, "7", 2000, 24.0)));
        let view = &state.devices["7"];
        assert_eq!(view.series[0].0, "temp");
        assert_eq!(
            view.series[0].1.iter().copied().collect::<Vec<_>>(),
            [(1000, 23.5), (2000, 24.0)]
        );
        let summary = view.summary.as_ref().unwrap();
        assert_eq!(summary.readings, 2);
        assert_eq!(summary.last_seen_ms, 2000);
        assert_eq!(summary.latest[0].value, 24.0);
    }

    #[test]
    fn readings_already_in_a_snapshot_are_not_applied_twice() {
        let mut state: DashboardState = DashboardSnapshot {
            seq: 5,
            focus: None,
            devices: vec![DeviceSnapshot {
                summary: summary("7"),
                recent: vec![reading(5, "7", 5000, 1.0)],
                console: vec![],
            }],
            commands: vec![],
            viewer: None,
        }
        .into();
        state.apply(LiveEvent::Reading(reading(5, "7", 5000, 1.0)));
        state.apply(LiveEvent::Reading(reading(6, "7", 6000, 2.0)));
        assert_eq!(state.devices["7"].series[0].1.len(), 2);
        assert_eq!(state.seq, 6);
    }

    #[test]
    fn series_are_bounded_more_tightly_for_devices_out_of_focus() {
        let mut state = DashboardState {
            focus: Some("7".into()),
            ..DashboardState::default()
        };
        for i in 0..(LIVE_POINTS_PER_FIELD as u64 + 50) {
            state.apply(LiveEvent::Reading(reading(2 * i + 1, "7", i as i64, 0.0)));
            state.apply(LiveEvent::Reading(reading(2 * i + 2, "8", i as i64, 0.0)));
        }
        let points = &state.devices["7"].series[0].1;
        assert_eq!(points.len(), LIVE_POINTS_PER_FIELD);
        assert_eq!(points.front().unwrap().0, 50);
        assert_eq!(state.devices["8"].series[0].1.len(), SPARKLINE_POINTS);
    }

    fn named(id: &str, name: Option<&str>, online: bool, last_seen_ms: i64) -> LiveEvent {
        LiveEvent::Device(DeviceSummary {
            online,
            last_seen_ms,
            registration: name.map(|n| Registration {
                name: Some(n.into()),
                ..Registration::default()
            }),
            ..summary(id)
        })
    }

    #[test]
    fn time_windows_round_trip_and_default_to_live() {
        for window in TimeWindow::ALL {
            assert_eq!(TimeWindow::from_key(window.key()), window);
        }
        assert_eq!(TimeWindow::from_key(""), TimeWindow::Live);
        assert_eq!(TimeWindow::from_key("1y"), TimeWindow::Live);
        assert_eq!(TimeWindow::Hour1.span_ms(), Some(3_600_000));
        assert_eq!(TimeWindow::Live.span_ms(), None);
    }

    #[test]
    fn the_overview_filters_by_id_or_name_and_sorts() {
        let mut state = DashboardState::default();
        state.apply(named("7", Some("Kitchen"), true, 300));
        state.apply(named("8", Some("attic"), false, 100));
        state.apply(named("b-12", None, true, 200));
        state.apply(named("a-3", None, false, 400));
        let ids = |filter, order| state.device_ids(filter, order);
        assert_eq!(ids("", DeviceOrder::Name), ["a-3", "8", "b-12", "7"]);
        assert_eq!(ids("", DeviceOrder::LastSeen), ["a-3", "7", "b-12", "8"]);
        assert_eq!(
            ids("", DeviceOrder::OfflineFirst),
            ["a-3", "8", "b-12", "7"]
        );
        assert_eq!(ids("KITCH", DeviceOrder::Name), ["7"]);
        assert_eq!(ids(" 1", DeviceOrder::Name), ["b-12"]);
        assert!(ids("nothing", DeviceOrder::Name).is_empty());
        for order in DeviceOrder::ALL {
            assert_eq!(DeviceOrder::from_key(order.key()), order);
        }
        assert_eq!(DeviceOrder::from_key("bogus"), DeviceOrder::Name);
    }

    #[test]
    fn sparklines_skip_the_send_counter_and_units_come_from_the_registration() {
        let mut state = DashboardState::default();
        state.apply(LiveEvent::Device(DeviceSummary {
            registration: Some(Registration {
                fields: vec![FieldSpec {
                    name: "temp".into(),
                    unit: Some("°C".into()),
                }],
                ..Registration::default()
            }),
            ..summary("7")
        }));
        state.apply(LiveEvent::Reading(Reading {
            values: vec![
                FieldValue {
                    field: "counter".into(),
                    value: 1.0,
                },
                FieldValue {
                    field: "temp".into(),
                    value: 20.0,
                },
            ],
            ..reading(1, "7", 1, 0.0)
        }));
        let view = &state.devices["7"];
        assert_eq!(view.trend().map(|(f, _)| f.as_str()), Some("temp"));
        assert_eq!(view.unit("temp"), Some("°C"));
        assert_eq!(view.unit("counter"), None);
    }

    #[test]
    fn command_updates_replace_the_earlier_status() {
        let mut state = DashboardState::default();
        let info = CommandInfo {
            seq: 1,
            device_id: "7".into(),
            variable: "LED".into(),
            value: 1.0,
            duration_ms: None,
            status: CommandStatus::Delivered,
            sent_ms: 1,
            updated_ms: 1,
        };
        state.apply(LiveEvent::Command(info.clone()));
        state.apply(LiveEvent::Command(CommandInfo {
            status: CommandStatus::Acked,
            ..info
        }));
        assert_eq!(state.commands.len(), 1);
        assert_eq!(state.commands[0].status, CommandStatus::Acked);
    }

    fn command(variable: &str, value: f64, duration_ms: Option<u64>) -> CommandRequest {
        CommandRequest {
            target: CommandTarget::All,
            variable: variable.into(),
            value,
            duration_ms,
        }
    }

    #[test]
    fn command_requests_are_validated() {
        assert_eq!(command("LED", 1.0, Some(500)).validate(None), Ok(()));
        assert_eq!(command("motor_2", -3.5, None).validate(None), Ok(()));
        for bad in [
            command("", 1.0, None),
            command("2LED", 1.0, None),
            command("LED=1", 1.0, None),
            command("L E D", 1.0, None),
            command(&"X".repeat(33), 1.0, None),
            command("LED", f64::NAN, None),
            command("LED", f64::INFINITY, None),
            command("LED", 1.0, Some(0)),
            command("LED", 1.0, Some(MAX_DURATION_MS + 1)),
        ] {
            assert!(bad.validate(None).is_err(), "{bad:?}");
        }
        let spec = CommandSpec {
            name: "LED".into(),
            min: Some(0.0),
            max: Some(1.0),
        };
        assert!(command("LED", 1.0, None).validate(Some(&spec)).is_ok());
        assert_eq!(
            command("LED", 2.0, None).validate(Some(&spec)),
            Err("LED accepts values from 0 to 1".into())
        );
    }

    #[test]
    fn the_command_form_is_parsed_strictly() {
        let ok = CommandRequest::from_form("device:7", " LED ", " 1.5 ", "500").unwrap();
        assert_eq!(ok.target, CommandTarget::Device("7".into()));
        assert_eq!(
            (ok.variable.as_str(), ok.value, ok.duration_ms),
            ("LED", 1.5, Some(500))
        );
        assert_eq!(
            CommandRequest::from_form("all", "LED", "0", "")
                .unwrap()
                .target,
            CommandTarget::All
        );
        for (target, value, duration) in [
            ("all", "", ""),
            ("all", "abc", ""),
            ("all", "NaN", ""),
            ("all", "1", "-5"),
            ("all", "1", "1.5"),
            ("device:", "1", ""),
            ("nobody", "1", ""),
        ] {
            assert!(
                CommandRequest::from_form(target, "LED", value, duration).is_err(),
                "{target} {value} {duration}"
            );
        }
    }

    #[test]
    fn wire_format_round_trips_one_event_per_line() {
        let event = LiveEvent::Reading(reading(3, "7", 3000, 23.5));
        let line = event.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let back: LiveEvent = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(back, event);
    }
}

/// A device token as the dashboard lists it. The token itself is shown once, when created
/// ([`NewDeviceToken`]); the server keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceToken {
    pub id: i64,
    /// The one device id this token lets connect.
    pub device_id: String,
    /// What the person called it ("kitchen ESP32").
    pub label: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// A token just created: the only time its secret leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDeviceToken {
    pub token: DeviceToken,
    pub secret: String,
}

/// Who is looking at the dashboard, and what the server wants them to know about its setup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// The signed-in user.
    pub user: String,
    /// Devices may connect without a token (`--allow-tokenless-devices`): the dashboard warns.
    pub tokenless_devices: bool,
}
