//! Schedules: "every day at 07:30: LED=1 to kitchen". [`Timetable`] knows when each schedule
//! fires next and which are due at a given moment — pure, tested with made-up clocks; the task
//! ([`Alerts::run_schedules`]) asks it once a second with the real one, in the hub's time zone,
//! and runs what is due like an alarm's automation (logged the same way).

use super::handle::{AlertError, Alerts};
use app::model::{Action, NewSchedule, Schedule};
use chrono::{DateTime, TimeZone};
use croner::Cron;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the task looks at the clock.
const TICK: Duration = Duration::from_secs(1);

/// A cron expression, checked: five fields (minute hour day month weekday) or six (seconds
/// first).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let mut cron = Cron::new(expression.trim());
    cron.with_seconds_optional();
    cron.parse()
        .map_err(|err| format!("{expression:?} is not a cron expression such as 30 7 * * *: {err}"))
}

/// When each schedule fires next.
pub struct Timetable<Tz: TimeZone> {
    entries: Vec<(Schedule, Cron, Option<DateTime<Tz>>)>,
}

impl<Tz: TimeZone> Timetable<Tz> {
    /// The schedules (those whose expression does not parse are left out) as of `now`: each
    /// fires at its next occurrence after it.
    pub fn new(schedules: Vec<Schedule>, now: &DateTime<Tz>) -> Timetable<Tz> {
        let entries = schedules
            .into_iter()
            .filter_map(|schedule| {
                let cron = parse_cron(&schedule.cron).ok()?;
                let next = cron.find_next_occurrence(now, false).ok();
                Some((schedule, cron, next))
            })
            .collect();
        Timetable { entries }
    }

    /// The schedules due at `now` (each once, however late), moved on to their next time.
    pub fn due(&mut self, now: &DateTime<Tz>) -> Vec<(i64, Action)> {
        let mut due = Vec::new();
        for (schedule, cron, next) in &mut self.entries {
            if next.as_ref().is_some_and(|at| at <= now) {
                due.push((schedule.id, schedule.action.clone()));
                *next = cron.find_next_occurrence(now, false).ok();
            }
        }
        due
    }
}

impl Alerts {
    pub async fn create_schedule(&self, new: NewSchedule) -> Result<Schedule, AlertError> {
        new.validate().map_err(AlertError::Invalid)?;
        parse_cron(&new.cron).map_err(AlertError::Invalid)?;
        let schedule = self.store().create_schedule(&new, crate::now_ms()).await?;
        tracing::info!(schedule = schedule.id, cron = %schedule.cron, "schedule created");
        self.schedules_changed().notify_one();
        Ok(schedule)
    }

    pub async fn schedules(&self) -> Result<Vec<Schedule>, AlertError> {
        Ok(self.store().schedules().await?)
    }

    pub async fn delete_schedule(&self, id: i64) -> Result<(), AlertError> {
        if !self.store().delete_schedule(id).await? {
            return Err(AlertError::NoSuchSchedule(id));
        }
        self.schedules_changed().notify_one();
        Ok(())
    }

    /// Runs the schedules until `stop`, in the hub's time zone.
    pub async fn run_schedules(self, stop: CancellationToken) {
        let load = || async {
            let schedules = self.schedules().await.unwrap_or_else(|err| {
                tracing::error!(%err, "loading the schedules failed");
                Vec::new()
            });
            Timetable::new(schedules, &chrono::Local::now())
        };
        let mut timetable = load().await;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.schedules_changed().notified() => timetable = load().await,
                _ = tick.tick() => {
                    for (id, action) in timetable.due(&chrono::Local::now()) {
                        self.run_action(&format!("schedule {id}"), &action, None).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::ActionTarget;
    use chrono::FixedOffset;

    fn schedule(id: i64, cron: &str) -> Schedule {
        Schedule {
            id,
            name: format!("s{id}"),
            cron: cron.into(),
            action: Action {
                target: ActionTarget::Device("kitchen".into()),
                variable: "LED".into(),
                value: 1.0,
                duration_ms: None,
                queue_ms: None,
            },
            created_ms: 0,
        }
    }

    /// A clock in UTC+1 (the hub's time zone in these tests).
    fn at(hms: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(&format!("2026-11-28T{hms}+01:00")).unwrap()
    }

    #[test]
    fn a_daily_schedule_fires_once_at_its_time_in_the_hubs_zone() {
        let mut table = Timetable::new(vec![schedule(1, "30 7 * * *")], &at("07:00:00"));
        assert!(table.due(&at("07:29:59")).is_empty());
        assert_eq!(table.due(&at("07:30:00")).len(), 1);
        assert!(table.due(&at("07:30:01")).is_empty(), "once");
        assert!(table.due(&at("23:59:59")).is_empty());
        let tomorrow = DateTime::parse_from_rfc3339("2026-11-29T07:30:00+01:00").unwrap();
        assert_eq!(table.due(&tomorrow).len(), 1, "the next day again");
    }

    #[test]
    fn a_late_check_fires_once_not_for_every_missed_time() {
        let mut table = Timetable::new(vec![schedule(1, "*/10 * * * * *")], &at("08:00:00"));
        assert_eq!(table.due(&at("08:01:05")).len(), 1);
        assert!(table.due(&at("08:01:06")).is_empty());
        assert_eq!(table.due(&at("08:01:10")).len(), 1);
    }

    #[test]
    fn bad_expressions_are_refused_with_an_example() {
        assert!(parse_cron("30 7 * * *").is_ok());
        assert!(parse_cron("0 30 7 * * MON-FRI").is_ok());
        let err = parse_cron("every morning").unwrap_err();
        assert!(err.contains("30 7 * * *"), "{err}");
        assert!(parse_cron("61 * * * *").is_err());
        // A schedule that does not parse is left out of the timetable, not a crash.
        let table = Timetable::new(vec![schedule(1, "nonsense")], &at("08:00:00"));
        assert!(table.entries.is_empty());
    }
}
