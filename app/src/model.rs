//! Data shapes shared by the server and the browser, and the state the live stream drives.
//!
//! Times are milliseconds since the Unix epoch (UTC), stamped by the server when a reading arrives.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One named numeric value of a reading, in the order the device sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    pub field: String,
    pub value: f64,
}

/// One line a device sent, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Position in the server's stream of events since it started; lets a browser drop what it
    /// already has after it re-synchronises.
    pub seq: u64,
    pub device_id: String,
    pub received_ms: i64,
    pub values: Vec<FieldValue>,
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
    pub latest: Vec<FieldValue>,
}

/// A device and the readings the server still holds in memory for it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    pub summary: DeviceSummary,
    pub recent: Vec<Reading>,
}

/// Everything the dashboard needs to draw itself, as of event `seq`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardSnapshot {
    pub seq: u64,
    pub devices: Vec<DeviceSnapshot>,
}

/// One message of the live stream (newline-delimited JSON on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The whole picture: sent first on every (re)connection and after a lag, replacing what the
    /// browser had.
    Snapshot(DashboardSnapshot),
    /// A device connected, disconnected or otherwise changed.
    Device(DeviceSummary),
    Reading(Reading),
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
pub const LIVE_POINTS_PER_FIELD: usize = 600;

/// A device as the browser holds it: summary plus a bounded series per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceView {
    pub summary: Option<DeviceSummary>,
    /// Field name → (time, value) points, oldest first. Ordered by first appearance.
    pub series: Vec<(String, VecDeque<(i64, f64)>)>,
}

impl DeviceView {
    fn push(&mut self, reading: &Reading) {
        for FieldValue { field, value } in &reading.values {
            let idx = match self.series.iter().position(|(name, _)| name == field) {
                Some(idx) => idx,
                None => {
                    self.series.push((field.clone(), VecDeque::new()));
                    self.series.len() - 1
                }
            };
            let points = &mut self.series[idx].1;
            if points.len() == LIVE_POINTS_PER_FIELD {
                points.pop_front();
            }
            points.push_back((reading.received_ms, *value));
        }
    }
}

/// The dashboard's state in the browser; [`DashboardState::apply`] is all the live stream does to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardState {
    /// The newest event reflected here; older readings arriving after a re-sync are dropped.
    pub seq: u64,
    pub devices: BTreeMap<String, DeviceView>,
}

impl From<DashboardSnapshot> for DashboardState {
    fn from(snapshot: DashboardSnapshot) -> Self {
        let mut state = DashboardState {
            seq: snapshot.seq,
            devices: BTreeMap::new(),
        };
        for device in snapshot.devices {
            let id = device.summary.id.clone();
            let mut view = DeviceView::default();
            for reading in &device.recent {
                view.push(reading);
            }
            view.summary = Some(device.summary);
            state.devices.insert(id, view);
        }
        state
    }
}

impl DashboardState {
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
                let view = self.devices.entry(reading.device_id.clone()).or_default();
                view.push(&reading);
                if let Some(summary) = view.summary.as_mut() {
                    summary.last_seen_ms = reading.received_ms;
                    summary.readings += 1;
                    summary.latest = reading.values;
                }
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
            latest: vec![],
        }
    }

    fn reading(seq: u64, id: &str, ms: i64, temp: f64) -> Reading {
        Reading {
            seq,
            device_id: id.into(),
            received_ms: ms,
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
            devices: vec![DeviceSnapshot {
                summary: summary("7"),
                recent: vec![reading(5, "7", 5000, 1.0)],
            }],
        }
        .into();
        state.apply(LiveEvent::Reading(reading(5, "7", 5000, 1.0)));
        state.apply(LiveEvent::Reading(reading(6, "7", 6000, 2.0)));
        assert_eq!(state.devices["7"].series[0].1.len(), 2);
        assert_eq!(state.seq, 6);
    }

    #[test]
    fn series_are_bounded() {
        let mut state = DashboardState::default();
        for i in 0..(LIVE_POINTS_PER_FIELD as u64 + 50) {
            state.apply(LiveEvent::Reading(reading(i + 1, "7", i as i64, 0.0)));
        }
        let points = &state.devices["7"].series[0].1;
        assert_eq!(points.len(), LIVE_POINTS_PER_FIELD);
        assert_eq!(points.front().unwrap().0, 50);
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
