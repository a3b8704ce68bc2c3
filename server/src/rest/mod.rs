//! The REST API for programs (`/api/v1/…`): scripts, Home Assistant, Node-RED, cron jobs. JSON
//! in and out, stable paths, `Authorization: Bearer <API token>` (or a dashboard session), the
//! same roles as the pages ([`crate::auth::policy`] decides before a handler runs).
//!
//! Each handler carries a `#[utoipa::path]` description; the router is built from those same
//! descriptions (`utoipa_axum::routes!`), so the OpenAPI document at `/api/v1/openapi.json`
//! cannot name a path the server does not answer, nor miss one. `/api/v1/docs` shows it as a
//! page.
//!
//! - [`devices`]: list, one, latest values, readings, series, CSV export, rename, remove.
//! - [`commands`]: send (one device or all), status, recent ones.
//! - [`tokens`]: device tokens.
//! - [`events`]: Server-Sent Events (readings, presence, command status), resumable.
//! - [`alarms`]: alarm rules (admins), alarms and acknowledging them (operators).
//! - [`docs`]: the reference page.

mod alarms;
mod commands;
mod devices;
mod docs;
mod events;
mod tokens;

use crate::state::AppState;
use app::error::AppError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "IoT hub API",
        version = "1",
        description = "Devices, their readings and commands, for programs. Authenticate with \
                       `Authorization: Bearer <API token>` (made on the Tokens page or with \
                       `iothub api-token create`). A token acts as its user, with at most its \
                       scope: viewer reads, operator also sends commands, admin also manages \
                       devices and tokens. Times are milliseconds since 1970 (UTC)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "devices", description = "Devices and their readings"),
        (name = "commands", description = "Commands to devices and their status"),
        (name = "tokens", description = "Device tokens (admins)"),
        (name = "events", description = "Live events as Server-Sent Events"),
        (name = "alarms", description = "Alarm rules and the alarms they raise"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes, and the OpenAPI document describing exactly them.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(devices::list))
        .routes(routes!(devices::one, devices::rename, devices::remove))
        .routes(routes!(devices::latest))
        .routes(routes!(devices::readings))
        .routes(routes!(devices::series))
        .routes(routes!(devices::export))
        .routes(routes!(commands::send, commands::recent))
        .routes(routes!(commands::status))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(events::stream))
        .routes(routes!(alarms::rules, alarms::create_rule))
        .routes(routes!(alarms::update_rule, alarms::delete_rule))
        .routes(routes!(alarms::alarms))
        .routes(routes!(alarms::acknowledge))
        .routes(routes!(alarms::runs))
        .routes(routes!(alarms::schedules, alarms::create_schedule))
        .routes(routes!(alarms::delete_schedule))
        .split_for_parts()
}

/// `--api-cors-origins`: pages on those origins may call the API from a browser, with a bearer
/// token (never with the dashboard's cookie: credentials are not allowed).
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The reference page (made once, at start-up).
pub fn docs_page(api: &utoipa::openapi::OpenApi) -> axum::response::Html<String> {
    docs::page(api)
}

/// What a failed call answers, with the matching HTTP status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `not_found`, `bad_request`, `signed_out`, `forbidden`, `unavailable` or `internal`.
    pub error: String,
    /// For a person to read.
    pub message: String,
}

/// An [`AppError`] as the API answers it.
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        ApiError(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match &self.0 {
            AppError::NotFound(_) => "not_found",
            AppError::BadRequest(_) | AppError::Transport(_) => "bad_request",
            AppError::SignedOut => "signed_out",
            AppError::Forbidden(_) => "forbidden",
            AppError::Unavailable => "unavailable",
            AppError::Internal => "internal",
        };
        let body = ErrorBody {
            error: kind.to_string(),
            message: self.0.to_string(),
        };
        (self.0.status(), Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// 204: done, nothing to say.
fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
