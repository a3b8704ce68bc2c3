//! The alarms that are up, held beside the devices so that a snapshot carries them and a page
//! that subscribes sees each change either in its snapshot or as an event, never neither.

use super::{Origin, Registry};
use app::model::{Alarm, LiveEvent};

/// Most alarms held at once; the store keeps them all, this only bounds what a snapshot carries
/// (a rule for `*` on thousands of devices gone offline at once).
const MAX_ALARMS_UP: usize = 10_000;

impl Registry {
    /// An alarm was raised, acknowledged or cleared: kept while it is up, and published.
    pub fn alarm_changed(&self, alarm: Alarm) {
        self.alarm_changed_from(Origin::Local, alarm);
    }

    /// Another hub's engine raised, acknowledged or cleared `alarm` (`--cluster-nats`).
    pub fn remote_alarm(&self, alarm: Alarm) {
        self.alarm_changed_from(Origin::Remote, alarm);
    }

    fn alarm_changed_from(&self, origin: Origin, alarm: Alarm) {
        let mut state = self.lock();
        if alarm.cleared_ms.is_some() {
            state.alarms.remove(&alarm.id);
        } else if state.alarms.len() < MAX_ALARMS_UP || state.alarms.contains_key(&alarm.id) {
            state.alarms.insert(alarm.id, alarm.clone());
        }
        self.publish_from(origin, LiveEvent::Alarm(alarm));
    }

    /// The alarms up, oldest first.
    pub fn alarms_up(&self) -> Vec<Alarm> {
        self.lock().alarms.values().cloned().collect()
    }
}
