//! Server functions: the browser's only way into the server.
//!
//! Each one fetches the server's [`ssr::Hub`] from the Leptos context; the server crate provides
//! it for page rendering and for `/api/*` calls alike.

use crate::error::AppError;
use crate::model::{
    Alarm, AlarmRule, ApiToken, AutomationRun, CommandInfo, CommandRequest, DashboardSnapshot,
    DeviceToken, HistoryWindow, NewApiToken, NewDeviceToken, NewRule, Reading, Role, Scope,
};
use leptos::prelude::*;
use leptos::server_fn::codec::{Json, StreamingText, TextStream};

/// Most readings one history call returns.
pub const HISTORY_LIMIT_MAX: u32 = 10_000;

/// What a page shows ([`Scope`]): the overview's page of cards with their sparklines, or
/// everything the server holds in memory for one device, or no device; always the counts,
/// recent commands and alarms up, who is signed in and the alarm rules.
#[server(input = Json)]
pub async fn load_dashboard(scope: Scope) -> Result<DashboardSnapshot, AppError> {
    let result = match ssr::hub() {
        Ok(hub) => ssr::snapshot(&hub, scope, ssr::signed_in()).await,
        Err(err) => Err(err),
    };
    ssr::respond(result)
}

/// Stored readings of one device received at or after `since_ms`, oldest first, at most the
/// newest `limit` of them.
#[server]
pub async fn device_history(
    device_id: String,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<Reading>, AppError> {
    let result = async {
        ssr::check_history_limit(limit)?;
        ssr::hub()?.history(&device_id, since_ms, limit).await
    };
    ssr::respond(result.await)
}

/// Most points per series one history window returns.
pub const SERIES_POINTS_MAX: u32 = 2_000;
/// Longest history window: 400 days.
pub const WINDOW_MAX_MS: i64 = 400 * 86_400_000;
/// Latest time a window may reach: the end of the year 9999. Readings carry the server's
/// receive time, so nothing lies before 1970 or anywhere near this; the bounds keep every
/// window's arithmetic (spans, bucket alignment) far from overflowing.
pub const TIME_MAX_MS: i64 = 253_402_300_799_999;

/// A device's stored history over `[from_ms, to_ms)` for charts: every field downsampled by
/// the database to at most `max_points` buckets (min, max, average per bucket).
#[server]
pub async fn device_series(
    device_id: String,
    from_ms: i64,
    to_ms: i64,
    max_points: u32,
) -> Result<HistoryWindow, AppError> {
    let result = async {
        let hub = ssr::hub()?;
        ssr::series(&*hub, &device_id, from_ms, to_ms, max_points).await
    };
    ssr::respond(result.await)
}

/// Sends a command to one device or to all online devices; one record per device comes back,
/// and each record's later status changes arrive on the live stream.
#[server(input = Json)]
pub async fn send_command(request: CommandRequest) -> Result<Vec<CommandInfo>, AppError> {
    ssr::respond(ssr::hub().and_then(|hub| hub.send_command(request)))
}

/// Longest raw line the console may send.
pub const MAX_CONSOLE_LINE: usize = 1024;

/// Sends a raw text line to an online device (the console's input box).
#[server]
pub async fn send_console_line(device_id: String, line: String) -> Result<(), AppError> {
    let result =
        if line.is_empty() || line.len() > MAX_CONSOLE_LINE || line.chars().any(char::is_control) {
            Err(AppError::BadRequest(format!(
            "a console line is 1 to {MAX_CONSOLE_LINE} bytes of text without control characters"
        )))
        } else {
            ssr::hub().and_then(|hub| hub.send_line(&device_id, &line))
        };
    ssr::respond(result)
}

/// The live stream: newline-delimited JSON [`crate::model::LiveEvent`]s, starting with a snapshot
/// of `scope` (as [`load_dashboard`]), then the events of the devices in it; of the others
/// only the counts ([`crate::model::LiveEvent::Fleet`]). When devices come, go or change so
/// that the overview's page may hold others, a fresh snapshot follows (at most every second).
#[server(input = Json, output = StreamingText)]
pub async fn live_updates(scope: Scope) -> Result<TextStream<AppError>, AppError> {
    ssr::respond(
        ssr::hub().map(|hub| ssr::live_stream(hub, ssr::checked(scope), ssr::credential())),
    )
}

/// Every alarm rule, oldest first.
#[server]
pub async fn list_alarm_rules() -> Result<Vec<AlarmRule>, AppError> {
    let result = async { ssr::hub()?.alarm_rules().await };
    ssr::respond(result.await)
}

/// Creates an alarm rule, watched from when this returns.
#[server(input = Json)]
pub async fn create_alarm_rule(rule: NewRule) -> Result<AlarmRule, AppError> {
    let result = async {
        rule.validate().map_err(AppError::BadRequest)?;
        ssr::hub()?.create_alarm_rule(rule).await
    };
    ssr::respond(result.await)
}

/// Changes alarm rule `id`; an empty webhook secret keeps the stored one.
#[server(input = Json)]
pub async fn update_alarm_rule(id: i64, rule: NewRule) -> Result<AlarmRule, AppError> {
    let result = async { ssr::hub()?.update_alarm_rule(id, rule).await };
    ssr::respond(result.await)
}

/// Deletes an alarm rule; its alarms that are up clear and stay in the history.
#[server]
pub async fn delete_alarm_rule(id: i64) -> Result<(), AppError> {
    let result = async { ssr::hub()?.delete_alarm_rule(id).await };
    ssr::respond(result.await)
}

/// Most alarms one history call returns.
pub const ALARMS_LIMIT: u32 = 200;

/// Alarms newest first: only those up (`active_only`), or the history too; of one device if
/// `device` is given.
#[server]
pub async fn list_alarms(
    active_only: bool,
    device: Option<String>,
) -> Result<Vec<Alarm>, AppError> {
    let result = async {
        let device = device.filter(|d| !d.trim().is_empty());
        ssr::hub()?.alarms(active_only, device, ALARMS_LIMIT).await
    };
    ssr::respond(result.await)
}

/// The newest automation runs (alarms' and schedules' commands) with their commands' status.
#[server]
pub async fn list_automation_runs() -> Result<Vec<AutomationRun>, AppError> {
    let result = async { ssr::hub()?.automation_runs(50).await };
    ssr::respond(result.await)
}

/// A person saw the alarm: it is marked with who and when, and stays up until it clears.
#[server]
pub async fn acknowledge_alarm(id: i64) -> Result<Alarm, AppError> {
    let result = async {
        let who = ssr::signed_in().ok_or(AppError::SignedOut)?;
        ssr::hub()?.acknowledge_alarm(id, &who.user).await
    };
    ssr::respond(result.await)
}

/// Every device token, revoked ones too, newest first (never the tokens themselves).
#[server]
pub async fn list_device_tokens() -> Result<Vec<DeviceToken>, AppError> {
    let result = async { ssr::hub()?.device_tokens().await };
    ssr::respond(result.await)
}

/// Creates a token that lets `device_id` connect; the answer is the only copy of the secret.
#[server]
pub async fn create_device_token(
    device_id: String,
    label: String,
) -> Result<NewDeviceToken, AppError> {
    let result = async {
        ssr::hub()?
            .create_device_token(device_id.trim(), &label)
            .await
    };
    ssr::respond(result.await)
}

/// Revokes a token: the device it names can no longer connect with it, and is disconnected.
#[server]
pub async fn revoke_device_token(id: i64) -> Result<DeviceToken, AppError> {
    let result = async { ssr::hub()?.revoke_device_token(id).await };
    ssr::respond(result.await)
}

/// Removes a device from the dashboard: it is disconnected, its tokens are revoked, and it is
/// listed again only if it sends readings later. `keep_readings`: its history stays for
/// export; otherwise its readings and what it said about itself are deleted.
#[server]
pub async fn remove_device(device_id: String, keep_readings: bool) -> Result<(), AppError> {
    let result = async { ssr::hub()?.remove_device(&device_id, keep_readings).await };
    ssr::respond(result.await)
}

/// Every API token, revoked ones too, newest first (never the tokens themselves).
#[server]
pub async fn list_api_tokens() -> Result<Vec<ApiToken>, AppError> {
    let result = async { ssr::hub()?.api_tokens().await };
    ssr::respond(result.await)
}

/// Longest life of an API token made on the page, in days (none: until revoked).
pub const API_TOKEN_DAYS_MAX: u32 = 3650;

/// Creates an API token for the signed-in user, acting with at most `scope`, for
/// `expires_days` days (none: until revoked); the answer is the only copy of the secret.
#[server]
pub async fn create_api_token(
    label: String,
    scope: Role,
    expires_days: Option<u32>,
) -> Result<NewApiToken, AppError> {
    let result = async {
        if expires_days.is_some_and(|days| days == 0 || days > API_TOKEN_DAYS_MAX) {
            return Err(AppError::BadRequest(format!(
                "an API token lasts 1 to {API_TOKEN_DAYS_MAX} days, or until revoked"
            )));
        }
        let who = ssr::signed_in().ok_or(AppError::SignedOut)?;
        let expires_ms = expires_days.map(|days| i64::from(days) * 86_400_000);
        ssr::hub()?
            .create_api_token(&who.user, label.trim(), scope, expires_ms)
            .await
    };
    ssr::respond(result.await)
}

/// Revokes an API token: programs using it are refused from then on.
#[server]
pub async fn revoke_api_token(id: i64) -> Result<ApiToken, AppError> {
    let result = async { ssr::hub()?.revoke_api_token(id).await };
    ssr::respond(result.await)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! What the server crate implements; the server half of the live stream is
    //! `live_stream.rs`.

    use crate::error::AppError;
    use crate::model::{
        Alarm, AlarmRule, ApiToken, AutomationRun, CommandInfo, CommandRequest, DashboardSnapshot,
        DeviceSummary, DeviceToken, Fleet, HistoryWindow, LiveEvent, NewApiToken, NewDeviceToken,
        NewRule, Reading, Role, Scope,
    };
    use leptos::prelude::*;
    use std::sync::Arc;
    use tokio::sync::broadcast::Receiver;
    use tokio_util::sync::CancellationToken;

    /// The server as the dashboard needs it.
    #[async_trait::async_trait]
    pub trait Hub: Send + Sync + 'static {
        /// The devices of `scope`, the counts, recent commands and alarms up.
        fn snapshot(&self, scope: &Scope) -> DashboardSnapshot;
        /// A snapshot and a receiver for every event after it, taken together so that nothing
        /// falls between the two.
        fn subscribe(&self, scope: &Scope) -> (DashboardSnapshot, Receiver<LiveEvent>);
        /// How many devices are known and online.
        fn fleet(&self) -> Fleet;
        async fn history(
            &self,
            device_id: &str,
            since_ms: i64,
            limit: u32,
        ) -> Result<Vec<Reading>, AppError>;
        async fn series(
            &self,
            device_id: &str,
            from_ms: i64,
            to_ms: i64,
            max_points: u32,
        ) -> Result<HistoryWindow, AppError>;
        fn send_command(&self, request: CommandRequest) -> Result<Vec<CommandInfo>, AppError>;
        fn send_line(&self, device_id: &str, line: &str) -> Result<(), AppError>;
        /// Whether devices may connect without a token (the dashboard warns).
        fn tokenless_devices(&self) -> bool;
        async fn device_tokens(&self) -> Result<Vec<DeviceToken>, AppError>;
        async fn create_device_token(
            &self,
            device_id: &str,
            label: &str,
        ) -> Result<NewDeviceToken, AppError>;
        /// Revokes a token and disconnects a device connected with it.
        async fn revoke_device_token(&self, id: i64) -> Result<DeviceToken, AppError>;
        async fn api_tokens(&self) -> Result<Vec<ApiToken>, AppError>;
        /// A token for `user` with at most `scope`, lasting `lifetime_ms` (none: until revoked).
        async fn create_api_token(
            &self,
            user: &str,
            label: &str,
            scope: Role,
            lifetime_ms: Option<i64>,
        ) -> Result<NewApiToken, AppError>;
        async fn revoke_api_token(&self, id: i64) -> Result<ApiToken, AppError>;
        /// Gives a device a name of a person's choosing (`None` or blank: its registered one).
        async fn rename_device(
            &self,
            device_id: &str,
            name: Option<&str>,
        ) -> Result<DeviceSummary, AppError>;
        async fn alarm_rules(&self) -> Result<Vec<AlarmRule>, AppError>;
        async fn create_alarm_rule(&self, rule: NewRule) -> Result<AlarmRule, AppError>;
        async fn update_alarm_rule(&self, id: i64, rule: NewRule) -> Result<AlarmRule, AppError>;
        async fn delete_alarm_rule(&self, id: i64) -> Result<(), AppError>;
        /// Alarms newest first (see [`super::list_alarms`]).
        async fn alarms(
            &self,
            active_only: bool,
            device: Option<String>,
            limit: u32,
        ) -> Result<Vec<Alarm>, AppError>;
        async fn acknowledge_alarm(&self, id: i64, user: &str) -> Result<Alarm, AppError>;
        async fn automation_runs(&self, limit: u32) -> Result<Vec<AutomationRun>, AppError>;
        /// Removes a device (see [`super::remove_device`]).
        async fn remove_device(&self, device_id: &str, keep_readings: bool)
            -> Result<(), AppError>;
        /// Cancelled when the server begins to shut down; open streams end then, so a graceful
        /// stop does not wait on browsers.
        fn stopping(&self) -> CancellationToken;
        /// Whether this session or API token is still valid (not signed out, expired, revoked,
        /// or its user removed). An open live stream asks from time to time and ends when it
        /// is not.
        async fn still_signed_in(&self, credential: &Credential) -> bool;
    }

    /// The handle the server provides as Leptos context.
    pub type SharedHub = Arc<dyn Hub>;

    /// Who a request acts for, put into its extensions by the server's session check.
    #[derive(Clone, PartialEq, Eq)]
    pub struct SignedIn {
        pub user: String,
        /// What it may do (for an API token, the lower of the user's role and its scope).
        pub role: Role,
        /// What it came with: what a long-lived stream checks again.
        pub credential: Credential,
    }

    /// A session (its secret, from the cookie) or an API token (its id).
    #[derive(Clone, PartialEq, Eq)]
    pub enum Credential {
        Session(String),
        ApiToken(i64),
    }

    impl std::fmt::Debug for SignedIn {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // The secret stays out of logs and panic messages.
            f.debug_struct("SignedIn")
                .field("user", &self.user)
                .field("role", &self.role)
                .finish_non_exhaustive()
        }
    }

    /// Who made the request being served.
    pub fn signed_in() -> Option<SignedIn> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<SignedIn>().cloned())
    }

    /// The session or token the request being served came with.
    pub(crate) fn credential() -> Option<Credential> {
        signed_in().map(|s| s.credential)
    }

    pub(crate) fn hub() -> Result<SharedHub, AppError> {
        use_context::<SharedHub>().ok_or_else(|| {
            tracing::error!("no Hub in the Leptos context: the server must provide one");
            AppError::Internal
        })
    }

    /// Sets the HTTP status of a failed call to match its error (400, 404, 503…), so that
    /// clients other than the dashboard can tell a bad request from a broken server.
    pub(crate) fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(err) = &result {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(err.status());
            }
        }
        result
    }

    /// The limits of [`super::device_history`] (and the REST API's readings).
    pub fn check_history_limit(limit: u32) -> Result<(), AppError> {
        if limit == 0 || limit > super::HISTORY_LIMIT_MAX {
            return Err(AppError::BadRequest(format!(
                "limit must be between 1 and {}",
                super::HISTORY_LIMIT_MAX
            )));
        }
        Ok(())
    }

    /// The limits of [`super::device_series`] (and the REST API's series).
    pub fn check_series(from_ms: i64, to_ms: i64, max_points: u32) -> Result<(), AppError> {
        use super::{SERIES_POINTS_MAX, TIME_MAX_MS, WINDOW_MAX_MS};
        if max_points == 0 || max_points > SERIES_POINTS_MAX {
            return Err(AppError::BadRequest(format!(
                "max_points must be between 1 and {SERIES_POINTS_MAX}"
            )));
        }
        let inside = (0..=TIME_MAX_MS).contains(&from_ms) && (0..=TIME_MAX_MS).contains(&to_ms);
        if !inside || to_ms <= from_ms || to_ms - from_ms > WINDOW_MAX_MS {
            return Err(AppError::BadRequest(
                "the window must lie between 1970 and 9999, end after it starts and span at \
                 most 400 days"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What a page of `scope` shows (see [`super::load_dashboard`]), for `who`.
    pub async fn snapshot(
        hub: &SharedHub,
        scope: Scope,
        who: Option<SignedIn>,
    ) -> Result<DashboardSnapshot, AppError> {
        let mut snapshot = hub.snapshot(&checked(scope));
        snapshot.viewer = who.map(|who| crate::model::Viewer {
            user: who.user,
            role: who.role,
            tokenless_devices: hub.tokenless_devices(),
        });
        Ok(snapshot)
    }

    /// A device's history over a window (see [`super::device_series`]), once the window and
    /// the number of points are checked: for the server function, the REST API and pages.
    pub async fn series(
        hub: &dyn Hub,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: u32,
    ) -> Result<HistoryWindow, AppError> {
        check_series(from_ms, to_ms, max_points)?;
        hub.series(device_id, from_ms, to_ms, max_points).await
    }

    /// A scope as asked for, within bounds (the filter is trimmed and cut).
    pub(crate) fn checked(scope: Scope) -> Scope {
        match scope {
            Scope::Devices(query) => Scope::Devices(query.normalised()),
            other => other,
        }
    }

    pub(crate) use crate::live_stream::live_stream;
    pub use crate::live_stream::{HEARTBEAT, REFRESH_AT_MOST_EVERY, SESSION_CHECK};
}
