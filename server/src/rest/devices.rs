//! `/api/v1/devices…`: what the hub knows of each device, its stored history, renaming and
//! removing one.

use super::{done, ApiError, ApiResult};
use crate::protocol::DeviceId;
use crate::registry::Selection;
use crate::state::AppState;
use app::api::ssr::Hub;
use app::error::AppError;
use app::model::{DeviceSummary, FieldValue, HistoryWindow, Reading};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

fn summary(state: &AppState, id: &str) -> Result<DeviceSummary, ApiError> {
    let not_found = || AppError::NotFound(format!("no device {id:?}"));
    let device = DeviceId::parse(id).map_err(|_| not_found())?;
    Ok(state.registry.summary(&device).ok_or_else(not_found)?)
}

/// Every device the hub knows, online or not, by id.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    responses((status = 200, description = "Every device", body = [DeviceSummary])))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<DeviceSummary>> {
    let snapshot = state.registry.snapshot(Selection::Summaries);
    Json(snapshot.devices.into_iter().map(|d| d.summary).collect())
}

/// One device: whether it is online, since when, its latest values, what it registered.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    responses(
        (status = 200, body = DeviceSummary),
        (status = 404, body = super::ErrorBody),
    ))]
pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<DeviceSummary> {
    Ok(Json(summary(&state, &id)?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Rename {
    /// The name to show (at most 64 characters); null or blank: the name it registered.
    pub name: Option<String>,
}

/// Gives a device a name of your choosing, shown instead of the one it registered. Admins
/// only.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = Rename,
    responses(
        (status = 200, body = DeviceSummary),
        (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
    ))]
pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(rename): Json<Rename>,
) -> ApiResult<DeviceSummary> {
    Ok(Json(
        state.rename_device(&id, rename.name.as_deref()).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Keep its stored readings (for export); without it they are deleted.
    #[serde(default)]
    keep_readings: bool,
}

/// Removes a device: it is disconnected, its tokens are revoked and it is no longer listed
/// (until it sends readings again). Admins only.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id"), RemoveQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = super::ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    state.remove_device(&id, query.keep_readings).await?;
    Ok(done())
}

/// A device's latest values.
#[derive(Debug, Serialize, ToSchema)]
pub struct Latest {
    pub device_id: String,
    pub online: bool,
    /// When it was last heard from.
    pub last_seen_ms: i64,
    pub values: Vec<FieldValue>,
}

/// The latest value of each of a device's fields.
#[utoipa::path(get, path = "/api/v1/devices/{id}/latest", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, body = Latest), (status = 404, body = super::ErrorBody)))]
pub async fn latest(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Latest> {
    let device = summary(&state, &id)?;
    Ok(Json(Latest {
        device_id: device.id,
        online: device.online,
        last_seen_ms: device.last_seen_ms,
        values: device.latest,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
    /// Readings received at or after this time (ms since 1970); default: all.
    #[serde(default)]
    since_ms: i64,
    /// At most this many, the newest (1 to 10,000; default 1,000).
    limit: Option<u32>,
}

/// A device's stored readings, oldest first.
#[utoipa::path(get, path = "/api/v1/devices/{id}/readings", tag = "devices",
    params(("id" = String, Path, description = "Device id"), ReadingsQuery),
    responses((status = 200, body = [Reading]), (status = 400, body = super::ErrorBody)))]
pub async fn readings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ReadingsQuery>,
) -> ApiResult<Vec<Reading>> {
    let limit = query.limit.unwrap_or(1_000);
    app::api::ssr::check_history_limit(limit)?;
    Ok(Json(state.history(&id, query.since_ms, limit).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Start of the window (ms since 1970).
    from_ms: i64,
    /// End of the window, exclusive; at most 400 days after the start.
    to_ms: i64,
    /// Most points per field (1 to 2,000; default 500).
    max_points: Option<u32>,
}

/// A device's history over a window, each field downsampled by the database into at most
/// `max_points` buckets (min, max, average and count per bucket).
#[utoipa::path(get, path = "/api/v1/devices/{id}/series", tag = "devices",
    params(("id" = String, Path, description = "Device id"), SeriesQuery),
    responses((status = 200, body = HistoryWindow), (status = 400, body = super::ErrorBody)))]
pub async fn series(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SeriesQuery>,
) -> ApiResult<HistoryWindow> {
    let points = query.max_points.unwrap_or(500);
    Ok(Json(
        app::api::ssr::series(&state, &id, query.from_ms, query.to_ms, points).await?,
    ))
}

/// A device's stored readings as CSV: one row per reading (receive time, device time, one
/// column per field), streamed. Give `day`, or `from` and `to` (RFC 3339 or ms).
#[utoipa::path(get, path = "/api/v1/devices/{id}/export", tag = "devices",
    params(
        ("id" = String, Path, description = "Device id"),
        ("day" = Option<String>, Query, description = "A UTC day, YYYY-MM-DD"),
        ("from" = Option<String>, Query, description = "Start: RFC 3339 or ms since 1970"),
        ("to" = Option<String>, Query, description = "End: RFC 3339 or ms since 1970"),
    ),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 400, description = "A bad id or window", body = String),
    ))]
pub async fn export(
    State(state): State<AppState>,
    path: Path<String>,
    query: Query<crate::export::ExportQuery>,
) -> Response {
    crate::export::csv(State(state.store.clone()), path, query).await
}
