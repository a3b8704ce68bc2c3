//! `/api/v1/device-tokens…`: the tokens that let devices connect (admins).

use super::ApiResult;
use crate::state::AppState;
use app::api::ssr::Hub;
use app::model::{DeviceToken, NewDeviceToken};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

/// Every device token, revoked ones too, newest first (never the secrets).
#[utoipa::path(get, path = "/api/v1/device-tokens", tag = "tokens",
    responses((status = 200, body = [DeviceToken])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Vec<DeviceToken>> {
    Ok(Json(state.device_tokens().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    /// The one device id the token lets connect.
    pub device_id: String,
    /// What it is for, e.g. "kitchen ESP32".
    #[serde(default)]
    pub label: String,
}

/// Creates a device token; the answer is the only copy of its secret.
#[utoipa::path(post, path = "/api/v1/device-tokens", tag = "tokens",
    request_body = NewToken,
    responses((status = 200, body = NewDeviceToken), (status = 400, body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewToken>,
) -> ApiResult<NewDeviceToken> {
    Ok(Json(
        state
            .create_device_token(new.device_id.trim(), &new.label)
            .await?,
    ))
}

/// Revokes a device token; a device connected with it is disconnected.
#[utoipa::path(delete, path = "/api/v1/device-tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "The token's number")),
    responses((status = 200, body = DeviceToken), (status = 404, body = super::ErrorBody)))]
pub async fn revoke(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<DeviceToken> {
    Ok(Json(state.revoke_device_token(id).await?))
}
