//! Devices another hub holds (`--cluster-nats`, see `crate::cluster`). That hub tells of their
//! presence, readings and console lines; this registry keeps them beside its own devices so
//! that its pages show every device of the system. They are neither stored here (the holding
//! hub stores them) nor watched by this hub's alarm engine, and what is told of them goes to
//! this hub's pages only, never back to the cluster.
//!
//! Readings come numbered by the hub that holds the device; each is applied once, in that
//! order (a reading numbered at or below the last one applied was seen already: told again
//! when a hub rejoins), and numbered anew here like this hub's own.

use super::snapshot::fleet_of;
use super::{DeviceId, Entry, Origin, Outbound, Registry, State};
use app::model::{ConsoleLine, DeviceSummary, LiveEvent, Reading};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Which hub holds a device, and the number (that hub's) of its last reading applied here.
pub(super) struct Holder {
    pub(super) hub: Arc<str>,
    last_seq: u64,
    /// When that hub was found gone while the device was online there: nobody holds it since
    /// (an orphan), until that hub tells of it again or another hub does.
    lost_ms: Option<i64>,
}

/// Where a device another hub holds (or held) stands, for this hub's alarm engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Away {
    /// Online on its hub, whose engine watches it.
    Online,
    /// Offline, and its hub's engine watches it.
    Offline,
    /// Its hub died while it was online there, at `since_ms`, and no hub holds it since: this
    /// hub's engine watches it (see [`Registry::keep_orphans`]).
    Orphaned { since_ms: i64 },
}

/// One of this hub's devices as it tells the other hubs when one (re)joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    pub summary: DeviceSummary,
    /// Its newest readings, oldest first, numbered by this hub.
    pub recent: Vec<Reading>,
}

impl Registry {
    /// The devices connected to this hub itself, with their recent readings.
    pub fn local_devices(&self) -> Vec<DeviceState> {
        let state = self.lock();
        state
            .devices
            .values()
            .filter(|e| e.remote.is_none() && e.connection.is_some())
            .map(|e| DeviceState {
                summary: e.summary.clone(),
                recent: e.recent.readings(&e.summary.id.as_str().into(), usize::MAX),
            })
            .collect()
    }

    /// Whether the link to the other hubs is up: while it is down, the pages say that what
    /// they show of other hubs' devices is as last told (the counts carry it, see
    /// [`app::model::Fleet::cut_off`]).
    pub fn linked(&self, linked: bool) {
        let mut state = self.lock();
        if state.cut_off != linked {
            return;
        }
        state.cut_off = !linked;
        self.publish_everywhere_but_local(LiveEvent::Fleet(fleet_of(&state)));
    }

    /// The devices another hub holds, or held until it died, and where each stands.
    pub fn held_elsewhere(&self) -> HashMap<String, Away> {
        let state = self.lock();
        let keeps = state.keeps_orphans && !state.cut_off;
        state
            .devices
            .values()
            .filter_map(|e| {
                let holder = e.remote.as_ref()?;
                let away = match holder.lost_ms {
                    Some(since_ms) if keeps => Away::Orphaned { since_ms },
                    _ if e.summary.online => Away::Online,
                    _ => Away::Offline,
                };
                Some((e.summary.id.clone(), away))
            })
            .collect()
    }

    /// Whether this hub's alarm engine watches the devices of hubs that died, until they
    /// connect again (one hub does: the cluster link picks the one with the least id among
    /// those alive). Not while this hub is cut off from the others: they may be fine.
    pub fn keep_orphans(&self, keep: bool) {
        self.lock().keeps_orphans = keep;
    }

    /// Hub `hub` tells of one of its devices: connected, changed or disconnected.
    pub fn remote_summary(&self, hub: &str, summary: DeviceSummary) {
        let Ok(id) = DeviceId::parse(&summary.id) else {
            return;
        };
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(&id) {
            let here_since = entry.summary.connected_since_ms;
            if summary.online && summary.connected_since_ms > here_since {
                let_go(entry, hub);
            }
        }
        let Some(entry) = self.remote_entry(&mut state, &id, hub) else {
            return;
        };
        // Which hub it is connected to: "websocket 10.0.0.7:51234 via hub-a".
        let summary = DeviceSummary {
            transport: match summary.transport.as_str() {
                "" => String::new(),
                transport => format!("{transport} via {hub}"),
            },
            ..summary
        };
        entry.summary = summary.clone();
        let online = summary.online;
        self.publish_everywhere_but_local(LiveEvent::Device(summary));
        if online {
            // Commands queued here while it was offline everywhere follow it there.
            self.route_queued(&mut state, &id, hub);
        }
    }

    /// The devices this hub holds itself, and since when (what it claims in the presence
    /// bucket, `crate::cluster`).
    pub fn held_here(&self) -> Vec<(String, i64)> {
        let state = self.lock();
        state
            .devices
            .values()
            .filter_map(|e| Some((e.summary.id.clone(), held_here_since(e)?)))
            .collect()
    }

    /// Hub `hub` claims `device`, connected there at `since_ms`; this hub is `own`. If this hub
    /// holds the device with an older connection it lets go of it (equal times: the greater
    /// hub id keeps it). Since when this hub holds it, if it still does.
    pub fn claimed_elsewhere(
        &self,
        own: &str,
        hub: &str,
        device: &str,
        since_ms: i64,
    ) -> Option<i64> {
        let id = DeviceId::parse(device).ok()?;
        let mut state = self.lock();
        let entry = state.devices.get_mut(&id)?;
        let here = held_here_since(entry)?;
        if (since_ms, hub) > (here, own) {
            let_go(entry, hub);
            None
        } else {
            Some(here)
        }
    }

    /// Hub `hub` tells of readings of one of its devices, oldest first.
    pub fn remote_readings(&self, hub: &str, device: &str, readings: Vec<Reading>) {
        let Ok(id) = DeviceId::parse(device) else {
            return;
        };
        let cap = self.shared.config.recent_per_device;
        let publish = self.listened_to();
        let mut state = self.lock();
        if self.remote_entry(&mut state, &id, hub).is_none() {
            return;
        }
        let State { devices, seq, .. } = &mut *state;
        let Some(entry) = devices.get_mut(&id) else {
            return;
        };
        let Some(holder) = entry.remote.as_mut() else {
            return;
        };
        let mut newest = None;
        for reading in readings {
            if reading.seq <= holder.last_seq {
                continue;
            }
            holder.last_seq = reading.seq;
            *seq += 1;
            let reading = Reading {
                seq: *seq,
                ..reading
            };
            entry.summary.readings += 1;
            entry.summary.last_seen_ms = entry.summary.last_seen_ms.max(reading.received_ms);
            entry.recent.push(&reading, cap);
            if publish {
                self.publish_everywhere_but_local(LiveEvent::Reading(reading.clone()));
            }
            newest = Some(reading);
        }
        if let Some(newest) = newest {
            entry.summary.latest = newest.values;
        }
    }

    /// Hub `hub` tells of a console line of one of its devices.
    pub fn remote_console(&self, hub: &str, device: &str, line: ConsoleLine) {
        let Ok(id) = DeviceId::parse(device) else {
            return;
        };
        let mut state = self.lock();
        let Some(entry) = self.remote_entry(&mut state, &id, hub) else {
            return;
        };
        let direction = line.direction;
        self.push_console(&id, entry, direction, &line.text, line.ms, Origin::Remote);
    }

    /// Hub `hub` removed one of its devices.
    pub fn remote_removed(&self, hub: &str, device: &str) {
        let Ok(id) = DeviceId::parse(device) else {
            return;
        };
        let mut state = self.lock();
        if state
            .devices
            .get(&id)
            .is_some_and(|e| e.remote.as_ref().is_some_and(|h| &*h.hub == hub))
        {
            state.devices.remove(&id);
            self.publish_everywhere_but_local(LiveEvent::Removed {
                device_id: id.to_string(),
            });
        }
    }

    /// Hub `hub` tells of devices it holds, with their recent readings (when it joins, or when
    /// this hub joins).
    pub fn remote_state(&self, hub: &str, devices: Vec<DeviceState>) {
        for device in devices {
            // Readings first: the summary counts them already, and replaces what applying
            // them counted.
            let id = device.summary.id.clone();
            self.remote_readings(hub, &id, device.recent);
            self.remote_summary(hub, device.summary);
        }
    }

    /// Hub `hub` lists every device it holds: those this registry still has online there and
    /// it no longer lists went offline meanwhile.
    pub fn remote_holding(&self, hub: &str, devices: &[String]) {
        let listed: HashSet<&str> = devices.iter().map(String::as_str).collect();
        self.went_offline(hub, None, |id| !listed.contains(id));
    }

    /// Hub `hub` is gone (it stopped telling anything): its devices are offline until they
    /// connect again, here or to another hub.
    pub fn hub_lost(&self, hub: &str) {
        self.went_offline(hub, Some(crate::now_ms()), |_| true);
    }

    /// Devices hub `hub` held go offline; `lost_ms`: because it died then (orphans).
    fn went_offline(&self, hub: &str, lost_ms: Option<i64>, which: impl Fn(&str) -> bool) {
        let mut state = self.lock();
        for entry in state.devices.values_mut() {
            let Some(holder) = entry.remote.as_mut().filter(|h| &*h.hub == hub) else {
                continue;
            };
            if entry.summary.online && which(&entry.summary.id) {
                holder.lost_ms = lost_ms;
                entry.summary.online = false;
                entry.summary.connected_since_ms = None;
                let summary = entry.summary.clone();
                self.publish_everywhere_but_local(LiveEvent::Device(summary));
            }
        }
    }

    /// The entry for a device `hub` tells of: none if this hub holds the device itself (what
    /// another hub still says of it is stale), or if it is new and the registry full.
    fn remote_entry<'a>(
        &self,
        state: &'a mut State,
        id: &DeviceId,
        hub: &str,
    ) -> Option<&'a mut Entry> {
        let max = self.shared.config.max_devices;
        if !state.devices.contains_key(id) && state.devices.len() >= max {
            return None;
        }
        let entry = state
            .devices
            .entry(id.clone())
            .or_insert_with(|| Box::new(Entry::new(id, crate::now_ms())));
        if entry.connection.is_some() {
            return None;
        }
        match entry.remote.as_mut() {
            // That hub is back (or was never gone).
            Some(holder) if &*holder.hub == hub => holder.lost_ms = None,
            // New here, or moved from another hub: that hub numbers its readings afresh.
            _ => {
                entry.remote = Some(Holder {
                    hub: hub.into(),
                    last_seq: 0,
                    lost_ms: None,
                })
            }
        }
        Some(entry)
    }
}

/// Since when this hub holds the device of `entry` itself (its connection is here), if it does.
fn held_here_since(entry: &Entry) -> Option<i64> {
    let here = entry.remote.is_none() && entry.connection.is_some();
    here.then(|| entry.summary.connected_since_ms.unwrap_or_default())
}

/// This hub lets go of a device that connected to hub `hub` after it connected here: it moved
/// (this hub's connection is a dead one not yet noticed, or the device has two). The newest
/// connection wins, as within a hub.
fn let_go(entry: &mut Entry, hub: &str) {
    if let Some(connection) = entry.connection.take() {
        let _ = connection
            .outbound
            .try_send(Outbound::Close(format!("connected to hub {hub}")));
    }
}
