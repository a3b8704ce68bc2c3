//! Alarms: the hub watches the devices so that nobody has to watch the dashboard. Rules are
//! stored ([`crate::storage`]); [`engine`] follows the registry's events and feeds each rule
//! and device its [`watch::Watch`] (a pure state machine, tested with made-up times); a raised
//! or cleared alarm is stored and sent to the rule's webhook by [`notify`], signed, retried,
//! off the ingest path; `automations` sends the commands rules and schedules ask for.

mod automations;
pub mod engine;
mod handle;
pub mod notify;
pub mod schedules;
pub mod watch;

pub use handle::{AlertError, Alerts};
pub use notify::{Mailer, SmtpArgs};

impl From<AlertError> for app::error::AppError {
    fn from(err: AlertError) -> Self {
        use app::error::AppError;
        match err {
            AlertError::Invalid(why) => AppError::BadRequest(why),
            AlertError::NoSuchRule(_)
            | AlertError::NoSuchAlarm(_)
            | AlertError::NoSuchSchedule(_) => AppError::NotFound(err.to_string()),
            AlertError::Storage(err) => {
                tracing::error!(%err, "an alarm operation failed");
                AppError::Unavailable
            }
        }
    }
}
