//! One rule watching one device: a pure state machine, fed readings, presence changes and the
//! passing of time, that says when the alarm is raised and when it clears. No clock and no
//! I/O here: the tests drive it with made-up times.

use app::model::Condition;

/// What the watch was told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// A reading arrived; the value of the rule's field, if the reading has it.
    Reading(Option<f64>),
    Online,
    Offline,
    /// Time passed (a hold, an offline or a silence may have run out).
    Tick,
}

/// What the watch decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Raised { value: Option<f64> },
    Cleared { value: Option<f64> },
}

/// The state of one rule for one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watch {
    /// The alarm is up (from this time); restored from the store after a restart, so a
    /// condition that still holds does not raise it a second time.
    pub active_since: Option<i64>,
    /// The condition has held since then, waiting out the hold time.
    holding_since: Option<i64>,
    last_value: Option<f64>,
    online: bool,
    /// Offline since then (or since the watch began, for a device not seen online).
    offline_since: Option<i64>,
    /// The last reading (or the moment it came online, when none came since).
    last_heard_ms: Option<i64>,
}

impl Watch {
    /// A watch for a device as it is now: online or not, and since when.
    pub fn new(online: bool, since_ms: i64, active_since: Option<i64>) -> Watch {
        Watch {
            active_since,
            online,
            offline_since: (!online).then_some(since_ms),
            last_heard_ms: Some(since_ms),
            ..Watch::default()
        }
    }

    pub fn is_active(&self) -> bool {
        self.active_since.is_some()
    }

    /// Feeds one input at `now_ms`; returns the change it causes, if any.
    pub fn step(&mut self, condition: &Condition, input: Input, now_ms: i64) -> Option<Change> {
        match input {
            Input::Online => {
                self.online = true;
                self.offline_since = None;
                self.last_heard_ms = Some(now_ms);
            }
            Input::Offline => {
                self.online = false;
                self.offline_since.get_or_insert(now_ms);
                self.holding_since = None;
            }
            Input::Reading(value) => {
                self.last_heard_ms = Some(now_ms);
                if value.is_some() {
                    self.last_value = value;
                }
            }
            Input::Tick => {}
        }
        match condition {
            Condition::Above {
                threshold,
                clear,
                hold_s,
                ..
            } => self.threshold(
                |v| v > *threshold,
                |v| v <= clear.unwrap_or(*threshold),
                *hold_s,
                input,
                now_ms,
            ),
            Condition::Below {
                threshold,
                clear,
                hold_s,
                ..
            } => self.threshold(
                |v| v < *threshold,
                |v| v >= clear.unwrap_or(*threshold),
                *hold_s,
                input,
                now_ms,
            ),
            Condition::Offline { after_s } => {
                let down_long = self
                    .offline_since
                    .is_some_and(|since| now_ms - since >= i64::from(*after_s) * 1000);
                self.toggle(!self.online && down_long, self.online, None, now_ms)
            }
            Condition::Silent { after_s } => {
                let quiet = self
                    .last_heard_ms
                    .is_some_and(|heard| now_ms - heard >= i64::from(*after_s) * 1000);
                let heard_now = matches!(input, Input::Reading(_));
                self.toggle(self.online && quiet, heard_now, None, now_ms)
            }
        }
    }

    /// Threshold rules: raise once `triggered` has held for `hold_s`, clear on `cleared`.
    fn threshold(
        &mut self,
        triggered: impl Fn(f64) -> bool,
        cleared: impl Fn(f64) -> bool,
        hold_s: u32,
        input: Input,
        now_ms: i64,
    ) -> Option<Change> {
        let value = self.last_value?;
        if self.is_active() {
            let fresh = matches!(input, Input::Reading(Some(_)));
            return (fresh && cleared(value)).then(|| {
                self.active_since = None;
                self.holding_since = None;
                Change::Cleared { value: Some(value) }
            });
        }
        // A device that is away raises nothing from its last value (the offline rule's job).
        if !self.online || !triggered(value) {
            self.holding_since = None;
            return None;
        }
        let since = *self.holding_since.get_or_insert(now_ms);
        (now_ms - since >= i64::from(hold_s) * 1000).then(|| {
            self.active_since = Some(now_ms);
            self.holding_since = None;
            Change::Raised { value: Some(value) }
        })
    }

    fn toggle(
        &mut self,
        raise: bool,
        clear: bool,
        value: Option<f64>,
        now_ms: i64,
    ) -> Option<Change> {
        if self.is_active() {
            clear.then(|| {
                self.active_since = None;
                Change::Cleared { value }
            })
        } else {
            raise.then(|| {
                self.active_since = Some(now_ms);
                Change::Raised { value }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn above(threshold: f64, clear: Option<f64>, hold_s: u32) -> Condition {
        Condition::Above {
            field: "temp".into(),
            threshold,
            clear,
            hold_s,
        }
    }

    /// Feeds `(time in s, input)` pairs; returns the changes with their times.
    fn run(
        condition: &Condition,
        watch: &mut Watch,
        inputs: &[(i64, Input)],
    ) -> Vec<(i64, Change)> {
        inputs
            .iter()
            .filter_map(|(s, input)| watch.step(condition, *input, s * 1000).map(|c| (*s, c)))
            .collect()
    }

    #[test]
    fn a_value_above_the_threshold_raises_and_clears_only_below_the_clear_level() {
        let rule = above(30.0, Some(28.0), 0);
        let mut watch = Watch::new(true, 0, None);
        let changes = run(
            &rule,
            &mut watch,
            &[
                (1, Input::Reading(Some(29.0))),
                (2, Input::Reading(Some(31.0))),
                (3, Input::Reading(Some(29.5))), // between: still up (hysteresis)
                (4, Input::Reading(Some(30.5))), // up again: no second raise
                (5, Input::Reading(Some(27.9))),
                (6, Input::Reading(Some(31.0))),
            ],
        );
        assert_eq!(
            changes,
            [
                (2, Change::Raised { value: Some(31.0) }),
                (5, Change::Cleared { value: Some(27.9) }),
                (6, Change::Raised { value: Some(31.0) }),
            ]
        );
    }

    #[test]
    fn a_hold_time_must_pass_with_the_condition_true_throughout() {
        let rule = above(30.0, None, 60);
        let mut watch = Watch::new(true, 0, None);
        let changes = run(
            &rule,
            &mut watch,
            &[
                (0, Input::Reading(Some(31.0))),
                (30, Input::Reading(Some(29.0))), // dips: the hold starts over
                (40, Input::Reading(Some(32.0))),
                (99, Input::Tick),
                (100, Input::Tick),
                (101, Input::Tick),
            ],
        );
        assert_eq!(changes, [(100, Change::Raised { value: Some(32.0) })]);
    }

    #[test]
    fn below_rules_mirror_above_ones_and_other_fields_do_not_count() {
        let rule = Condition::Below {
            field: "battery".into(),
            threshold: 3.3,
            clear: Some(3.5),
            hold_s: 0,
        };
        let mut watch = Watch::new(true, 0, None);
        let changes = run(
            &rule,
            &mut watch,
            &[
                (1, Input::Reading(None)),
                (2, Input::Reading(Some(3.2))),
                (3, Input::Reading(Some(3.4))),
                (4, Input::Reading(Some(3.6))),
            ],
        );
        assert_eq!(
            changes,
            [
                (2, Change::Raised { value: Some(3.2) }),
                (4, Change::Cleared { value: Some(3.6) }),
            ]
        );
    }

    #[test]
    fn offline_for_long_enough_raises_and_coming_back_clears() {
        let rule = Condition::Offline { after_s: 300 };
        let mut watch = Watch::new(true, 0, None);
        let changes = run(
            &rule,
            &mut watch,
            &[
                (10, Input::Offline),
                (100, Input::Online), // back before the time: nothing
                (200, Input::Offline),
                (499, Input::Tick),
                (500, Input::Tick),
                (600, Input::Tick),
                (700, Input::Online),
            ],
        );
        assert_eq!(
            changes,
            [
                (500, Change::Raised { value: None }),
                (700, Change::Cleared { value: None }),
            ]
        );
    }

    #[test]
    fn silence_while_connected_raises_and_the_next_reading_clears() {
        let rule = Condition::Silent { after_s: 60 };
        let mut watch = Watch::new(true, 0, None);
        let changes = run(
            &rule,
            &mut watch,
            &[
                (30, Input::Reading(Some(1.0))),
                (89, Input::Tick),
                (90, Input::Tick),
                (95, Input::Reading(Some(1.0))),
                (100, Input::Offline), // offline is another rule's business
                (500, Input::Tick),
            ],
        );
        assert_eq!(
            changes,
            [
                (90, Change::Raised { value: None }),
                (95, Change::Cleared { value: None }),
            ]
        );
    }

    #[test]
    fn after_a_restart_an_alarm_still_up_is_not_raised_again() {
        let rule = above(30.0, None, 0);
        // Restored from the store: up since before the restart.
        let mut watch = Watch::new(false, 1_000, Some(500));
        let changes = run(
            &rule,
            &mut watch,
            &[
                (2, Input::Online),
                (3, Input::Reading(Some(35.0))),
                (4, Input::Reading(Some(36.0))),
                (5, Input::Reading(Some(20.0))),
            ],
        );
        assert_eq!(changes, [(5, Change::Cleared { value: Some(20.0) })]);
        // And an offline rule restored active for a device still offline stays quiet.
        let offline = Condition::Offline { after_s: 60 };
        let mut watch = Watch::new(false, 0, Some(0));
        assert_eq!(run(&offline, &mut watch, &[(600, Input::Tick)]), []);
    }
}
