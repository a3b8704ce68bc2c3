//! `/api/v1/alarm-rules…` and `/api/v1/alarms…`: what the hub watches for, and what it found.

use super::{done, ApiError, ApiResult};
use crate::alerts::AlertError;
use crate::state::AppState;
use crate::storage::AlarmFilter;
use app::api::ssr::SignedIn;
use app::model::{Alarm, AlarmRule, AutomationRun, NewRule, NewSchedule, Schedule};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

impl From<AlertError> for ApiError {
    fn from(err: AlertError) -> Self {
        ApiError(err.into())
    }
}

/// Every alarm rule.
#[utoipa::path(get, path = "/api/v1/alarm-rules", tag = "alarms",
    responses((status = 200, body = [AlarmRule])))]
pub async fn rules(State(state): State<AppState>) -> ApiResult<Vec<AlarmRule>> {
    Ok(Json(state.alerts.rules().await?))
}

/// Creates a rule, watched from now on. Admins only.
#[utoipa::path(post, path = "/api/v1/alarm-rules", tag = "alarms",
    request_body = NewRule,
    responses((status = 200, body = AlarmRule), (status = 400, body = super::ErrorBody)))]
pub async fn create_rule(
    State(state): State<AppState>,
    Json(new): Json<NewRule>,
) -> ApiResult<AlarmRule> {
    Ok(Json(state.alerts.create_rule(new).await?))
}

/// Changes a rule (its id stays). Without `webhook_secret` a webhook keeps the stored secret.
/// Its alarms that are up clear, and are raised again if the new definition holds. Admins only.
#[utoipa::path(put, path = "/api/v1/alarm-rules/{id}", tag = "alarms",
    params(("id" = i64, Path, description = "The rule's number")),
    request_body = NewRule,
    responses((status = 200, body = AlarmRule), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
pub async fn update_rule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(new): Json<NewRule>,
) -> ApiResult<AlarmRule> {
    Ok(Json(state.alerts.update_rule(id, new).await?))
}

/// Deletes a rule; its alarms that are up clear and stay in the history. Admins only.
#[utoipa::path(delete, path = "/api/v1/alarm-rules/{id}", tag = "alarms",
    params(("id" = i64, Path, description = "The rule's number")),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::ErrorBody)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    state.alerts.delete_rule(id).await?;
    Ok(done())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlarmsQuery {
    /// Only alarms that are up.
    #[serde(default)]
    active: bool,
    /// Only this device's.
    device: Option<String>,
    /// Only this rule's.
    rule: Option<i64>,
    /// At most this many, newest first (1 to 1,000; default 100).
    limit: Option<u32>,
}

/// Alarms, newest first: those up and the history.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms",
    params(AlarmsQuery),
    responses((status = 200, body = [Alarm])))]
pub async fn alarms(
    State(state): State<AppState>,
    Query(query): Query<AlarmsQuery>,
) -> ApiResult<Vec<Alarm>> {
    let filter = AlarmFilter {
        active_only: query.active,
        device: query.device,
        rule: query.rule,
        limit: query.limit.unwrap_or(100).clamp(1, 1_000),
    };
    Ok(Json(state.alerts.alarms(&filter).await?))
}

/// Acknowledges an alarm (it stays up until its condition is over); notes who. Operators and
/// admins.
#[utoipa::path(post, path = "/api/v1/alarms/{id}/ack", tag = "alarms",
    params(("id" = i64, Path, description = "The alarm's number")),
    responses((status = 200, body = Alarm), (status = 404, body = super::ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<SignedIn>,
    Path(id): Path<i64>,
) -> ApiResult<Alarm> {
    Ok(Json(state.alerts.acknowledge(id, &who.user).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// At most this many, newest first (1 to 1,000; default 100).
    limit: Option<u32>,
}

/// What automations sent (alarm rules' `on_raised`/`on_cleared`), newest first, with each
/// command's status.
#[utoipa::path(get, path = "/api/v1/automation-runs", tag = "alarms",
    params(RunsQuery),
    responses((status = 200, body = [AutomationRun])))]
pub async fn runs(
    State(state): State<AppState>,
    Query(query): Query<RunsQuery>,
) -> ApiResult<Vec<AutomationRun>> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    Ok(Json(state.alerts.runs(limit).await?))
}

/// Every schedule.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "alarms",
    responses((status = 200, body = [Schedule])))]
pub async fn schedules(State(state): State<AppState>) -> ApiResult<Vec<Schedule>> {
    Ok(Json(state.alerts.schedules().await?))
}

/// Creates a schedule: a command sent at the times of a cron expression, in the hub's time
/// zone. Admins only.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "alarms",
    request_body = NewSchedule,
    responses((status = 200, body = Schedule), (status = 400, body = super::ErrorBody)))]
pub async fn create_schedule(
    State(state): State<AppState>,
    Json(new): Json<NewSchedule>,
) -> ApiResult<Schedule> {
    Ok(Json(state.alerts.create_schedule(new).await?))
}

/// Deletes a schedule. Admins only.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "alarms",
    params(("id" = i64, Path, description = "The schedule's number")),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    state.alerts.delete_schedule(id).await?;
    Ok(done())
}
