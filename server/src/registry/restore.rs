//! Devices the registry knows without a connection: those the store remembers, listed offline
//! after a restart, and a name a person gives one (the REST API's rename).

use super::{DeviceId, Entry, Registry};
use app::model::{LiveEvent, Reading, Registration};

/// What the store remembers of a device, for the registry to start from after a restart.
#[derive(Debug, Default)]
pub struct Restored {
    pub last_seen_ms: i64,
    pub registration: Option<Registration>,
    pub display_name: Option<String>,
    /// Its newest stored readings, oldest first.
    pub recent: Vec<Reading>,
}

impl Registry {
    /// Lists a device known from the store, offline, as it was last seen: called at start-up,
    /// so that the dashboard shows every device and not only those that reconnected. `recent`
    /// is oldest first; its newest reading gives the latest values. A device already present
    /// (it connected meanwhile) is left alone.
    pub fn restore(&self, id: &str, stored: Restored) {
        let Restored {
            last_seen_ms,
            registration,
            display_name,
            recent,
        } = stored;
        let Ok(id) = DeviceId::parse(id) else {
            return;
        };
        let cap = self.shared.config.recent_per_device;
        let skip = recent.len().saturating_sub(cap);
        let mut state = self.lock();
        state.devices.entry(id.clone()).or_insert_with(|| {
            let mut entry = Entry::new(&id, last_seen_ms);
            entry.summary.registration = registration;
            entry.summary.display_name = display_name;
            entry.summary.latest = recent.last().map(|r| r.values.clone()).unwrap_or_default();
            for reading in recent.iter().skip(skip) {
                entry.recent.push(reading, cap);
            }
            Box::new(entry)
        });
    }

    /// Gives a device a person's name (`None`: its registered one); false if it is not known.
    pub fn rename(&self, device: &str, display_name: Option<String>) -> bool {
        let Ok(id) = DeviceId::parse(device) else {
            return false;
        };
        let mut state = self.lock();
        let Some(entry) = state.devices.get_mut(&id) else {
            return false;
        };
        entry.summary.display_name = display_name;
        let summary = entry.summary.clone();
        self.publish(LiveEvent::Device(summary));
        true
    }
}
