//! The dashboard's HTTP routes: the device endpoint, CSV export, health and metrics, sign-in,
//! the pages and their server functions, and the layers every request passes (session,
//! origin check, body limit, security headers).

use crate::auth::{self, Auth};
use crate::state::AppState;
use crate::{bundle, devices, export, paths, rest, security};
use app::api::ssr::{SharedHub, SignedIn};
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Request, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, post, MethodFilter};
use axum::Router;
use leptos::prelude::provide_context;
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;

/// Device endpoints, CSV export, the dashboard's pages and its server functions. The app has no
/// client-side router (see `app::links`), so its two pages are routed here.
pub fn router(state: AppState) -> Router {
    // Rendering runs resources on Leptos' executor. (`leptos_routes` would set it up; we route
    // ourselves.) Setting it a second time, as each test server does, is refused harmlessly.
    let _ = any_spawner::Executor::init_tokio();
    let hub: SharedHub = Arc::new(state.clone());
    let context = {
        let hub = hub.clone();
        move || provide_context(hub.clone())
    };
    let shell = {
        let files = state.bundle.clone();
        move || app::shell(files.clone())
    };
    // A page is rendered once its data is loaded (see `app::page_data`): in one pass, with
    // the data in it for the browser to hydrate from.
    let page = {
        let (hub, shell) = (hub.clone(), shell.clone());
        move |request: Request<Body>| {
            let (hub, shell) = (hub.clone(), shell.clone());
            async move {
                let route = app::links::Route::parse(
                    request.uri().path(),
                    request.uri().query().unwrap_or_default(),
                );
                let who = request.extensions().get::<SignedIn>().cloned();
                let data = app::page_data::load(&hub, &route, who).await.map(Arc::new);
                let context = move || {
                    provide_context(hub.clone());
                    if let Some(data) = &data {
                        provide_context(data.clone());
                    }
                };
                leptos_axum::render_app_to_stream_with_context(context, shell)(request).await
            }
        }
    };
    let mut router = Router::new()
        .route(paths::DEVICE_SOCKET, get(devices::websocket::upgrade))
        .route(paths::HEALTH, get(health))
        .route("/metrics", get(metrics_page))
        .route(
            auth::web::LOGIN_PATH,
            get(page.clone()).post(auth::web::login),
        )
        .route(app::links::TOKENS_PAGE, get(page.clone()))
        .route(app::links::ALARMS_PAGE, get(page.clone()))
        .route(auth::web::LOGOUT_PATH, post(auth::web::logout))
        .route("/export/{device}", get(export::csv))
        .route("/", get(page.clone()))
        .route("/devices/{id}", get(page))
        .route("/devices/{id}/remove", post(remove_device));
    let (mut api, description) = rest::routes();
    if let Some(cors) = rest::cors(&state.config.http.api_cors_origins) {
        api = api.layer(cors);
    }
    let description = Arc::new(description);
    let docs = rest::docs_page(&description);
    router = router
        .merge(api)
        .route(
            paths::API_OPENAPI,
            get(move || {
                let description = description.clone();
                async move { axum::Json((*description).clone()) }
            }),
        )
        .route(paths::API_DOCS, get(move || async move { docs.clone() }));
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        let context = context.clone();
        let handler = move |req: Request<Body>| async move {
            let response = leptos_axum::handle_server_fns_with_context(context, req).await;
            arguments_error_is_a_bad_request(response.into_response()).await
        };
        // Our server functions use GET and POST, both of which have a filter.
        let filter = MethodFilter::try_from(method).unwrap_or(MethodFilter::POST);
        router = router.route(path, on(filter, handler));
    }
    router = router.nest("/pkg", bundle::routes(&state));
    let public_origin = Arc::new(state.config.http.public_origin.clone());
    router
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            move |_options| shell(),
        ))
        .layer(middleware::from_fn_with_state(
            Auth::clone(&state.auth),
            auth::web::require_session,
        ))
        .layer(middleware::from_fn_with_state(
            public_origin,
            security::check_origin,
        ))
        // Every request the dashboard makes is small (the largest, a console line, is 1 KiB).
        .layer(RequestBodyLimitLayer::new(security::MAX_REQUEST_BODY))
        .layer(middleware::from_fn(security::security_headers))
        .layer(middleware::from_fn_with_state(
            allowed_hosts(&state),
            security::check_host,
        ))
        .layer(middleware::from_fn_with_state(
            Duration::from_millis(state.config.http.request_timeout_ms),
            security::request_deadline,
        ))
        .with_state(state)
}

/// A server function whose arguments cannot be read never runs, and Leptos answers 500 with
/// an [`AppError::Transport`] naming what was wrong. That is the caller's mistake: 400. (The
/// functions themselves never return `Transport`; their own errors carry their own status.)
async fn arguments_error_is_a_bad_request(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error answers are a short JSON value; anything longer is not one of these.
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    if let Ok(app::error::AppError::Transport(_)) = serde_json::from_slice(&bytes) {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[derive(Debug, serde::Deserialize)]
struct RemoveForm {
    keep_readings: bool,
}

/// `POST /devices/{id}/remove`, the device page's form (signed in, from the page's origin, as
/// every POST): removes the device and sends the browser to the overview.
async fn remove_device(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Form(form): axum::extract::Form<RemoveForm>,
) -> Response {
    use app::api::ssr::Hub;
    match state.remove_device(&id, form.keep_readings).await {
        Ok(()) => (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, "/")]).into_response(),
        Err(err) => (err.status(), format!("{err}\n")).into_response(),
    }
}

/// The names the hub answers to (`--public-origin`, `--allowed-hosts`, `--acme-domain`), for
/// the dashboard's routes and the redirect to them alike.
fn allowed_hosts(state: &AppState) -> Arc<security::AllowedHosts> {
    let http = &state.config.http;
    let names: Vec<String> = http
        .allowed_hosts
        .iter()
        .chain(&state.config.tls.acme_domain)
        .cloned()
        .collect();
    Arc::new(security::AllowedHosts::new(
        http.public_origin.as_deref(),
        &names,
    ))
}

/// `--http-redirect`: every plain-HTTP request is sent to the same path over HTTPS, on the
/// public origin's port (or the dashboard's), for a name the hub answers to (else 421).
pub fn redirect_router(state: &AppState) -> Router {
    let https_port = state.leptos_options.site_addr.port();
    let public_origin = state.config.http.public_origin.clone();
    let allowed = allowed_hosts(state);
    let redirect = move |request: Request<Body>| {
        let public_origin = public_origin.clone();
        let allowed = allowed.clone();
        async move {
            let host = request
                .headers()
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| allowed.allows(h))
                .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
            let Some(host) = host else {
                return (
                    StatusCode::MISDIRECTED_REQUEST,
                    "this hub does not answer to that name\n",
                )
                    .into_response();
            };
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_string();
            let base = match public_origin {
                Some(origin) if origin.starts_with("https://") => origin,
                _ if https_port == 443 => format!("https://{}", host.host()),
                _ => format!("https://{}:{https_port}", host.host()),
            };
            (
                StatusCode::PERMANENT_REDIRECT,
                [(axum::http::header::LOCATION, format!("{base}{path}"))],
            )
                .into_response()
        }
    };
    Router::new().fallback(redirect)
}

/// `/metrics` alone, for `--metrics-bind` (no sign-in there: keep it on a private address).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .with_state(state)
}

/// `GET /healthz`, for monitors and service managers: 200 `ok` while the store takes writes,
/// else 503; with `--cluster-nats`, a second line says whether the link to the other hubs is
/// up (it does not change the status: a hub cut off from the others still serves its own
/// devices, and a proxy should keep sending them there). Public, so it says nothing else (no
/// versions, no counts).
async fn health(State(state): State<AppState>) -> (StatusCode, String) {
    let (status, first) = if state.store.healthy().await {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ok\n")
    };
    let cluster = state.cluster.as_ref().map(|c| c.line()).unwrap_or_default();
    (status, format!("{first}{cluster}"))
}

/// The metrics page, in Prometheus' text format; the gauges are read now.
async fn metrics_page(State(state): State<AppState>) -> Response {
    let Some(handle) = crate::metrics::handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no metrics\n").into_response();
    };
    let fleet = state.registry.fleet();
    metrics::gauge!("iothub_devices_online").set(f64::from(fleet.online));
    metrics::gauge!("iothub_devices_known").set(f64::from(fleet.known));
    metrics::gauge!("iothub_live_subscribers").set(state.registry.subscriber_count() as f64);
    metrics::gauge!("iothub_store_queue_depth").set(state.store.queued() as f64);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
