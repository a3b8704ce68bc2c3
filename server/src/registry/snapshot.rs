//! What a snapshot carries: the devices a page shows (or all, for the REST API and the alarm
//! engine), the counts, recent commands and the alarms up.

use super::{Entry, State};
use app::model::{
    DashboardSnapshot, DeviceSnapshot, Fleet, Listed, Scope, RECENT_COMMANDS, SPARKLINE_POINTS,
};

/// Which devices a snapshot carries.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// What a page shows ([`Scope`]): none, one page of the overview (with sparklines), or one
    /// device in detail.
    Page(&'a Scope),
    /// Every device, summaries only (the REST API's device list, the alarm engine).
    Summaries,
    /// Every device with its sparkline readings (the REST API's event stream).
    Sparklines,
}

/// With thousands of devices a snapshot of every device's recent readings would weigh
/// megabytes and take the lock for long: a page gets its own devices (at most a page of cards,
/// picked without sorting the fleet) and the counts.
pub(super) fn snapshot_of(state: &State, selection: Selection<'_>) -> DashboardSnapshot {
    let sparkline = |e: &Entry| DeviceSnapshot {
        summary: e.summary.clone(),
        recent: e
            .recent
            .readings(&e.summary.id.as_str().into(), SPARKLINE_POINTS),
        console: Vec::new(),
    };
    let summary_only = |e: &Entry| DeviceSnapshot {
        summary: e.summary.clone(),
        recent: Vec::new(),
        console: Vec::new(),
    };
    let every = |each: &dyn Fn(&Entry) -> DeviceSnapshot| {
        let mut devices: Vec<DeviceSnapshot> = state.devices.values().map(|e| each(e)).collect();
        devices.sort_by(|a, b| a.summary.id.cmp(&b.summary.id));
        devices
    };
    let mut matching = 0;
    let devices = match selection {
        Selection::Page(Scope::Fleet) => Vec::new(),
        Selection::Page(Scope::Device(id)) => state
            .devices
            .get(id.as_str())
            .map(|e| DeviceSnapshot {
                summary: e.summary.clone(),
                recent: e.recent.readings(&e.summary.id.as_str().into(), usize::MAX),
                console: e.console.iter().cloned().collect(),
            })
            .into_iter()
            .collect(),
        Selection::Page(Scope::Devices(query)) => {
            let listed = state
                .devices
                .values()
                .map(|e| (Listed::of(&e.summary), &**e));
            let (matched, page) = query.select_page(listed);
            matching = u32::try_from(matched).unwrap_or(u32::MAX);
            page.into_iter().map(sparkline).collect()
        }
        Selection::Summaries => every(&summary_only),
        Selection::Sparklines => every(&sparkline),
    };
    let skip = state.commands.len().saturating_sub(RECENT_COMMANDS);
    let commands = state
        .commands
        .iter()
        .skip(skip)
        .map(|c| c.info.clone())
        .collect();
    DashboardSnapshot {
        seq: state.seq,
        focus: match selection {
            Selection::Page(scope) => scope.focus().map(str::to_string),
            _ => None,
        },
        devices,
        matching,
        fleet: fleet_of(state),
        commands,
        viewer: None,
        // All of them, whatever the page: every page shows how many are up.
        alarms: state.alarms.values().cloned().collect(),
    }
}

pub(super) fn fleet_of(state: &State) -> Fleet {
    let online = state.devices.values().filter(|e| e.summary.online).count();
    Fleet {
        known: u32::try_from(state.devices.len()).unwrap_or(u32::MAX),
        online: u32::try_from(online).unwrap_or(u32::MAX),
        cut_off: state.cut_off,
    }
}
