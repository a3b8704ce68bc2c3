//! `/api/v1/commands…`: send a command to one device or all, follow its status.

use super::{ApiError, ApiResult};
use crate::registry::Selection;
use crate::state::AppState;
use app::api::ssr::Hub;
use app::error::AppError;
use app::model::{CommandInfo, CommandRequest, Scope};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

/// Sends `variable = value` (optionally for `duration_ms`) to one device or to every online
/// one; one record per device comes back. Its status then moves from `sent` to `delivered`,
/// `acked`, `failed` or `timed_out` (see `GET /api/v1/commands/{seq}` or the event stream).
/// Operators and admins.
#[utoipa::path(post, path = "/api/v1/commands", tag = "commands",
    request_body = CommandRequest,
    responses(
        (status = 200, body = [CommandInfo]),
        (status = 400, body = super::ErrorBody),
        (status = 404, description = "The device is not online", body = super::ErrorBody),
    ))]
pub async fn send(
    State(state): State<AppState>,
    Json(request): Json<CommandRequest>,
) -> ApiResult<Vec<CommandInfo>> {
    Ok(Json(state.send_command(request)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// Only this device's.
    device: Option<String>,
}

/// Recent commands (those the hub still tracks), oldest first.
#[utoipa::path(get, path = "/api/v1/commands", tag = "commands",
    params(RecentQuery),
    responses((status = 200, body = [CommandInfo])))]
pub async fn recent(
    State(state): State<AppState>,
    Query(query): Query<RecentQuery>,
) -> Json<Vec<CommandInfo>> {
    let mut commands = state
        .registry
        .snapshot(Selection::Page(&Scope::Fleet))
        .commands;
    if let Some(device) = &query.device {
        commands.retain(|c| &c.device_id == device);
    }
    Json(commands)
}

/// One command's status.
#[utoipa::path(get, path = "/api/v1/commands/{seq}", tag = "commands",
    params(("seq" = u64, Path, description = "The command's number")),
    responses((status = 200, body = CommandInfo), (status = 404, body = super::ErrorBody)))]
pub async fn status(State(state): State<AppState>, Path(seq): Path<u64>) -> ApiResult<CommandInfo> {
    state
        .registry
        .command(seq)
        .map(Json)
        .ok_or_else(|| ApiError(AppError::NotFound(format!("no command {seq}"))))
}
