//! What the dashboard's server functions see of the server: the [`app::api::ssr::Hub`]
//! implementation over the registry and the store.

use crate::auth::AuthError;
use crate::protocol::DeviceId;
use crate::registry::{CommandError, Selection};
use crate::state::AppState;
use crate::storage::AlarmFilter;
use app::api::ssr::{Credential, Hub};
use app::error::AppError;
use app::model::{
    Alarm, AlarmRule, ApiToken, AutomationRun, CommandInfo, CommandRequest, DashboardSnapshot,
    DeviceSummary, DeviceToken, Fleet, HistoryWindow, LiveEvent, NewApiToken, NewDeviceToken,
    NewRule, Reading, Role, Scope,
};

/// Longest name a person may give a device.
const MAX_DEVICE_NAME_CHARS: usize = 64;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

#[async_trait::async_trait]
impl Hub for AppState {
    fn snapshot(&self, scope: &Scope) -> DashboardSnapshot {
        self.registry.snapshot(Selection::Page(scope))
    }

    fn subscribe(&self, scope: &Scope) -> (DashboardSnapshot, Receiver<LiveEvent>) {
        self.registry.subscribe(Selection::Page(scope))
    }

    fn fleet(&self) -> Fleet {
        self.registry.fleet()
    }

    async fn history(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reading>, AppError> {
        self.store
            .history(device_id, since_ms, limit)
            .await
            .map_err(|err| {
                tracing::error!(%err, device_id, "history query failed");
                AppError::Unavailable
            })
    }

    async fn series(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: u32,
    ) -> Result<HistoryWindow, AppError> {
        self.store
            .series(device_id, from_ms, to_ms, max_points)
            .await
            .map_err(|err| {
                tracing::error!(%err, device_id, "series query failed");
                AppError::Unavailable
            })
    }

    fn send_command(&self, request: CommandRequest) -> Result<Vec<CommandInfo>, AppError> {
        self.registry.send_command(&request).map_err(command_error)
    }

    fn send_line(&self, device_id: &str, line: &str) -> Result<(), AppError> {
        self.registry
            .send_line(device_id, line)
            .map_err(command_error)
    }

    fn tokenless_devices(&self) -> bool {
        self.auth.config().allow_tokenless_devices
    }

    async fn device_tokens(&self) -> Result<Vec<DeviceToken>, AppError> {
        self.auth.device_tokens().await.map_err(auth_error)
    }

    async fn create_device_token(
        &self,
        device_id: &str,
        label: &str,
    ) -> Result<NewDeviceToken, AppError> {
        self.auth
            .create_device_token(device_id, label)
            .await
            .map_err(auth_error)
    }

    async fn revoke_device_token(&self, id: i64) -> Result<DeviceToken, AppError> {
        let token = self
            .auth
            .revoke_device_token(id)
            .await
            .map_err(auth_error)?;
        self.registry.token_revoked(&token.device_id, token.id);
        Ok(token)
    }

    async fn alarm_rules(&self) -> Result<Vec<AlarmRule>, AppError> {
        Ok(self.alerts.rules().await?)
    }

    async fn create_alarm_rule(&self, rule: NewRule) -> Result<AlarmRule, AppError> {
        Ok(self.alerts.create_rule(rule).await?)
    }

    async fn update_alarm_rule(&self, id: i64, rule: NewRule) -> Result<AlarmRule, AppError> {
        Ok(self.alerts.update_rule(id, rule).await?)
    }

    async fn delete_alarm_rule(&self, id: i64) -> Result<(), AppError> {
        Ok(self.alerts.delete_rule(id).await?)
    }

    async fn alarms(
        &self,
        active_only: bool,
        device: Option<String>,
        limit: u32,
    ) -> Result<Vec<Alarm>, AppError> {
        let filter = AlarmFilter {
            active_only,
            device,
            rule: None,
            limit,
        };
        Ok(self.alerts.alarms(&filter).await?)
    }

    async fn acknowledge_alarm(&self, id: i64, user: &str) -> Result<Alarm, AppError> {
        Ok(self.alerts.acknowledge(id, user).await?)
    }

    async fn automation_runs(&self, limit: u32) -> Result<Vec<AutomationRun>, AppError> {
        Ok(self.alerts.runs(limit).await?)
    }

    async fn remove_device(&self, device_id: &str, keep_readings: bool) -> Result<(), AppError> {
        DeviceId::parse(device_id).map_err(|e| AppError::BadRequest(e.to_string()))?;
        // Disconnected and unlisted first, then what it sent meanwhile is written, then the
        // store marks it removed (and deletes its readings if asked): nothing sent before the
        // removal brings it back.
        let known = self.registry.forget(device_id);
        self.store.flush().await;
        let stored = self
            .store
            .remove_device(device_id, keep_readings, crate::now_ms())
            .await
            .map_err(|err| {
                tracing::error!(%err, device_id, "removing a device failed");
                AppError::Unavailable
            })?;
        if !known && !stored {
            return Err(AppError::NotFound(format!("no device {device_id:?}")));
        }
        tracing::info!(device_id, keep_readings, "device removed");
        Ok(())
    }

    fn stopping(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    async fn rename_device(
        &self,
        device_id: &str,
        name: Option<&str>,
    ) -> Result<DeviceSummary, AppError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(name) = name {
            if name.chars().count() > MAX_DEVICE_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(AppError::BadRequest(format!(
                    "a device name is 1 to {MAX_DEVICE_NAME_CHARS} characters without control characters"
                )));
            }
        }
        let not_found = || AppError::NotFound(format!("no device {device_id:?}"));
        let id = DeviceId::parse(device_id).map_err(|_| not_found())?;
        if self.registry.summary(&id).is_none() {
            return Err(not_found());
        }
        // A device seen only moments ago may not have its row yet.
        self.store.flush().await;
        let stored = self
            .store
            .rename_device(device_id, name)
            .await
            .map_err(|err| {
                tracing::error!(%err, device_id, "renaming a device failed");
                AppError::Unavailable
            })?;
        if !stored {
            return Err(not_found());
        }
        self.registry.rename(device_id, name.map(str::to_string));
        tracing::info!(device_id, name, "device renamed");
        self.registry.summary(&id).ok_or_else(not_found)
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>, AppError> {
        self.auth.api_tokens(None).await.map_err(auth_error)
    }

    async fn create_api_token(
        &self,
        user: &str,
        label: &str,
        scope: Role,
        lifetime_ms: Option<i64>,
    ) -> Result<NewApiToken, AppError> {
        let expires_ms = lifetime_ms.map(|ms| crate::now_ms().saturating_add(ms));
        self.auth
            .create_api_token(user, label, scope, expires_ms)
            .await
            .map_err(auth_error)
    }

    async fn revoke_api_token(&self, id: i64) -> Result<ApiToken, AppError> {
        self.auth.revoke_api_token(id).await.map_err(auth_error)
    }

    async fn still_signed_in(&self, credential: &Credential) -> bool {
        let session = match credential {
            Credential::Session(session) => session,
            Credential::ApiToken(id) => return self.auth.api_token_valid(*id).await,
        };
        match self.auth.session_principal(session).await {
            Ok(user) => user.is_some(),
            // The store is unreachable: that says nothing about the session, and the live view
            // is what shows the outage. The request that opened the stream was signed in.
            Err(err) => {
                tracing::debug!(%err, "cannot check a live stream's session now");
                true
            }
        }
    }
}

fn auth_error(err: AuthError) -> AppError {
    match err {
        AuthError::NoSuchToken(_) | AuthError::NoSuchApiToken(_) | AuthError::NoSuchUser(_) => {
            AppError::NotFound(err.to_string())
        }
        AuthError::BadDeviceId(_) | AuthError::BadLabel(_) | AuthError::ExpiryInThePast => {
            AppError::BadRequest(err.to_string())
        }
        other => {
            tracing::error!(err = %other, "token operation failed");
            AppError::Unavailable
        }
    }
}

fn command_error(err: CommandError) -> AppError {
    match err {
        CommandError::UnknownDevice(_) => AppError::NotFound(err.to_string()),
        _ => AppError::BadRequest(err.to_string()),
    }
}
