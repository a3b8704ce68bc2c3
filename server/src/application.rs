//! Start-up, the shared [`AppState`], and graceful shutdown.
//!
//! [`Application::build`] binds the listener (port 0 works, for tests) and opens the store;
//! [`Application::run_until_stopped`] serves until the shutdown token is cancelled, then stops
//! accepting, closes device connections, ends live streams and flushes the store.

use crate::auth::{self, Auth, AuthConfig, AuthError};
use crate::config::ServeArgs;
use crate::registry::{Registry, RegistryConfig};
use crate::simulator::{self, SimulatorArgs};
use crate::storage::{Database, StorageError, Store, StoreConfig};
use crate::{device_socket, export, security};
use app::api::ssr::SharedHub;
use app::model::{Reading, SPARKLINE_POINTS};
use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{Request, StatusCode};
use axum::middleware;
use axum::routing::{get, on, post, MethodFilter};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::limit::RequestBodyLimitLayer;

/// How far a live subscriber (a browser tab) may fall behind before it skips to a fresh snapshot.
const LIVE_EVENT_CAPACITY: usize = 4096;

/// Everything a request handler or server function may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<ServeArgs>,
    pub registry: Registry,
    pub store: Store,
    pub auth: Auth,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Device connections, which outlive their HTTP request; shutdown waits for them.
    pub tasks: TaskTracker,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("--default-fields: {0}")]
    DefaultFields(String),
    #[error("cannot create the first user: {0}")]
    FirstUser(#[from] AuthError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::listener::TlsError),
    #[error("--tcp-tls needs a certificate: give --tls-cert and --tls-key")]
    TcpTlsWithoutCertificate,
    #[error("MQTT over TLS: {0}")]
    MqttTls(#[from] crate::mqtt::MqttTlsError),
}

pub struct Application {
    listener: TcpListener,
    /// Raw TCP devices (`--tcp-listen`).
    tcp_listener: Option<TcpListener>,
    /// `/metrics` without sign-in (`--metrics-bind`).
    metrics_listener: Option<TcpListener>,
    state: AppState,
    tls: Option<crate::listener::Tls>,
    /// The client side of an `mqtts://` broker.
    mqtt_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Application {
    pub async fn build(config: ServeArgs) -> Result<Self, StartupError> {
        check_default_fields(&config.default_fields).map_err(StartupError::DefaultFields)?;
        // Read the certificate first: a bad one should stop us before anything else happens.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::listener::load_tls(cert, key)?),
            _ => None,
        };
        if config.tcp_tls && tls.is_none() {
            return Err(StartupError::TcpTlsWithoutCertificate);
        }
        let mqtt_tls = match &config.mqtt_url {
            Some(broker) if broker.tls => {
                Some(crate::mqtt::client_tls(config.mqtt_ca_file.as_deref())?)
            }
            _ if config.mqtt_ca_file.is_some() => {
                return Err(crate::mqtt::MqttTlsError::CaWithoutTls.into())
            }
            _ => None,
        };
        std::fs::create_dir_all(&config.store.data_dir).map_err(|source| {
            StartupError::DataDir {
                path: config.store.data_dir.clone(),
                source,
            }
        })?;
        let database =
            Database::from_config(config.store.database_url.as_deref(), &config.store.data_dir)?;
        tracing::info!(%database, "opening the store");
        let store = Store::open(StoreConfig {
            database,
            flush_interval: Duration::from_millis(config.flush_interval_ms),
            flush_rows: config.flush_rows as usize,
        })
        .await?;
        let listener = bind(config.bind).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.bind,
            source,
        })?;
        // Installed before anything is counted.
        let _ = crate::metrics::handle();
        let metrics_listener = match config.metrics_bind {
            None => None,
            Some(addr) => Some(bind(addr).await?),
        };
        let tcp_listener = match config.tcp_listen {
            None => None,
            Some(addr) => Some(bind(addr).await?),
        };

        let leptos_options = LeptosOptions::builder()
            .output_name(app::BUNDLE_NAME)
            .site_root(config.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .build();
        let auth = Auth::new(
            store.clone(),
            AuthConfig {
                session_lifetime: Duration::from_secs(u64::from(config.session_hours) * 3600),
                // Served over TLS here, or by a TLS-terminating proxy at an https origin.
                secure_cookies: tls.is_some()
                    || config
                        .public_origin
                        .as_deref()
                        .is_some_and(|origin| origin.starts_with("https://")),
                allow_tokenless_devices: config.allow_tokenless_devices,
            },
        );
        auth.create_first_user(config.admin_password.as_deref())
            .await?;
        if config.allow_tokenless_devices {
            tracing::warn!(
                "--allow-tokenless-devices: any device that can reach this hub may connect \
                 without a token; use this only on a network you trust"
            );
        }
        let state = AppState {
            leptos_options,
            registry: Registry::new(RegistryConfig {
                recent_per_device: config.recent_readings as usize,
                event_capacity: LIVE_EVENT_CAPACITY,
                command_timeout: Duration::from_millis(config.command_timeout_ms),
            }),
            config: Arc::new(config),
            store,
            auth,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        restore_devices(&state.store, &state.registry).await?;
        Ok(Application {
            listener,
            tcp_listener,
            metrics_listener,
            state,
            tls,
            mqtt_tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // The listener was bound and its address read in `build`.
        self.state.leptos_options.site_addr
    }

    /// Where `/metrics` is served without sign-in, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Where raw TCP devices connect, if enabled.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Cancel it to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            listener,
            tcp_listener,
            metrics_listener,
            state,
            tls,
            mqtt_tls,
        } = self;
        let tcp_addr = tcp_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(broker) = state.config.mqtt_url.clone() {
            state
                .tasks
                .spawn(crate::mqtt::run(broker, mqtt_tls, state.clone()));
        }
        for spec in state.config.serial.clone() {
            state.tasks.spawn(crate::serial::run(spec, state.clone()));
        }
        if let Some(metrics_listener) = metrics_listener {
            let metrics = Router::new()
                .route("/metrics", get(crate::metrics::render))
                .with_state(state.clone());
            let stopping = state.shutdown.clone();
            state.tasks.spawn(async move {
                let served = axum::serve(metrics_listener, metrics)
                    .with_graceful_shutdown(async move { stopping.cancelled().await })
                    .await;
                if let Err(err) = served {
                    tracing::error!(%err, "the metrics listener failed");
                }
            });
        }
        if let Some(tcp_listener) = tcp_listener {
            // The dashboard's certificate, without its HTTP ALPN: devices offer none.
            let tcp_tls = tls.as_ref().filter(|_| state.config.tcp_tls).map(|tls| {
                let mut config = (*tls.server).clone();
                config.alpn_protocols.clear();
                tokio_rustls::TlsAcceptor::from(Arc::new(config))
            });
            if let Ok(addr) = tcp_listener.local_addr() {
                let kind = if tcp_tls.is_some() { "TLS" } else { "plain" };
                tracing::info!("raw TCP devices ({kind}): listening on {addr}");
            }
            state
                .tasks
                .spawn(crate::tcp::serve(tcp_listener, tcp_tls, state.clone()));
        }
        let addr = state.leptos_options.site_addr;
        let mut router = router(state.clone());
        if tls.is_some() {
            router = router.layer(middleware::map_response(
                security::strict_transport_security,
            ));
        }

        if state.config.simulate > 0 {
            // The simulated devices get tokens that live as long as this process.
            let tokens = (1..=state.config.simulate)
                .map(|id| {
                    let id = crate::protocol::DeviceId::parse(&id.to_string())
                        .map_err(std::io::Error::other)?;
                    state
                        .auth
                        .ephemeral_device_token(id)
                        .map_err(std::io::Error::other)
                })
                .collect::<std::io::Result<Vec<String>>>()?;
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            let args = SimulatorArgs {
                url: format!("{scheme}://127.0.0.1:{}/ws/device", addr.port())
                    .parse()
                    .map_err(std::io::Error::other)?,
                // The certificate is for the hub's public name, not 127.0.0.1: the simulator
                // trusts exactly this certificate instead.
                tls: tls
                    .as_ref()
                    .map(|tls| simulator::pinned_tls(tls.certificate.clone()))
                    .transpose()
                    .map_err(std::io::Error::other)?,
                devices: state.config.simulate,
                rate: state.config.simulate_rate,
                first_id: 1,
                dialect: simulator::SimDialect::Mixed,
                no_register: false,
                tokens,
            };
            state
                .tasks
                .spawn(simulator::run(args, state.shutdown.clone()));
        }

        state.tasks.spawn(expire_commands(
            state.registry.clone(),
            state.shutdown.clone(),
        ));
        state.tasks.spawn(forget_expired_sessions(
            state.auth.clone(),
            state.shutdown.clone(),
        ));
        state.tasks.spawn(end_revoked_connections(
            state.store.clone(),
            state.registry.clone(),
            state.shutdown.clone(),
        ));
        let retention = Retention::from_config(&state.config);
        if retention.any() {
            state.tasks.spawn(apply_retention(
                state.store.clone(),
                retention,
                state.shutdown.clone(),
            ));
        }

        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("dashboard listening on {scheme}://{addr}");
        if let Some(path) = &state.config.ready_file {
            let ready = serde_json::json!({
                "dashboard": format!("{scheme}://{addr}"),
                "tcp": tcp_addr.map(|a| a.to_string()),
                "metrics": metrics_addr.map(|a| a.to_string()),
                "pid": std::process::id(),
            });
            write_whole(path, ready.to_string().as_bytes())?;
        }
        let config = &state.config;
        crate::listener::serve(
            listener,
            router,
            crate::listener::ListenerConfig {
                tls: tls.map(|tls| tls.server),
                max_connections_per_ip: config.max_connections_per_ip as usize,
                max_header_bytes: config.max_header_bytes as usize,
                header_timeout: Duration::from_millis(config.header_timeout_ms),
                tls_handshake_timeout: Duration::from_millis(config.header_timeout_ms),
            },
            state.shutdown.clone(),
        )
        .await?;

        tracing::info!("stopping: closing device connections and flushing the store");
        state.tasks.close();
        state.tasks.wait().await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// The configured CSV names must be valid field names, not reserved, and must not repeat.
fn check_default_fields(fields: &[String]) -> Result<(), String> {
    for (i, name) in fields.iter().enumerate() {
        crate::protocol::validate_field_name(name).map_err(|e| format!("{name:?}: {e}"))?;
        // In a key=value line these keys mean the device id and an acknowledgement.
        if ["id", "ack"]
            .iter()
            .any(|reserved| name.eq_ignore_ascii_case(reserved))
        {
            return Err(format!("{name:?} is reserved"));
        }
        if fields[..i].contains(name) {
            return Err(format!("{name:?} is listed twice"));
        }
    }
    Ok(())
}

/// How often unacknowledged commands are checked against their deadline.
const COMMAND_SWEEP: Duration = Duration::from_millis(200);

async fn expire_commands(registry: Registry, stop: CancellationToken) {
    let mut tick = tokio::time::interval(COMMAND_SWEEP);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => registry.expire_overdue(crate::now_ms()),
        }
    }
}

/// How often expired sessions are deleted (they are refused as soon as they expire anyway).
const SESSION_SWEEP: Duration = Duration::from_secs(3600);

async fn forget_expired_sessions(auth: Auth, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SESSION_SWEEP);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => match auth.forget_expired_sessions().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "forgot expired sessions"),
                Err(err) => tracing::warn!(%err, "deleting expired sessions failed"),
            },
        }
    }
}

/// How often tokens revoked elsewhere are looked for.
const REVOCATION_SWEEP: Duration = Duration::from_secs(5);
/// How far back each look reaches beyond the previous one: a revocation stamped just before a
/// look but committed just after it is still found. Finding one twice is harmless.
const REVOCATION_OVERLAP_MS: i64 = 30_000;

/// Revoking a token on the dashboard disconnects its device at once (`Hub::revoke_device_token`);
/// `iothub token revoke` runs in another process, so the hub looks for revocations in the store
/// and disconnects those devices within a few seconds.
async fn end_revoked_connections(store: Store, registry: Registry, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REVOCATION_SWEEP);
    let mut since_ms = crate::now_ms();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let now_ms = crate::now_ms();
                match store.tokens_revoked_since(since_ms - REVOCATION_OVERLAP_MS).await {
                    Ok(revoked) => {
                        for (token_id, device_id) in revoked {
                            registry.token_revoked(&device_id, token_id);
                        }
                        since_ms = now_ms;
                    }
                    // Tried again next time from the same point.
                    Err(err) => tracing::debug!(%err, "looking for revoked tokens failed"),
                }
            }
        }
    }
}

/// Writes a file so that no reader ever sees half of it: a temporary file beside it, renamed.
fn write_whole(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

/// How often old readings and aggregates are looked for, when a retention period is set.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 86_400_000;

/// How long each level of stored data is kept, in days; 0 keeps it.
#[derive(Debug, Clone, Copy)]
struct Retention {
    raw_days: u32,
    minute_days: u32,
    hour_days: u32,
}

impl Retention {
    fn from_config(config: &ServeArgs) -> Retention {
        Retention {
            raw_days: config.retention_days,
            minute_days: config.minute_retention_days,
            hour_days: config.hour_retention_days,
        }
    }

    fn any(&self) -> bool {
        self.raw_days > 0 || self.minute_days > 0 || self.hour_days > 0
    }
}

async fn apply_retention(store: Store, keep: Retention, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RETENTION_SWEEP);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let now = crate::now_ms();
                if keep.raw_days > 0 {
                    let cutoff = now - i64::from(keep.raw_days) * DAY_MS;
                    match store.delete_older_than(cutoff).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, "retention: deleted old readings"),
                        Err(err) => tracing::error!(%err, "retention: deleting old readings failed"),
                    }
                }
                for (days, span_ms) in [(keep.minute_days, 60_000), (keep.hour_days, 3_600_000)] {
                    if days == 0 {
                        continue;
                    }
                    let cutoff = now - i64::from(days) * DAY_MS;
                    match store.delete_rollups_older_than(span_ms, cutoff).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, span_ms, "retention: deleted old aggregates"),
                        Err(err) => tracing::error!(%err, "retention: deleting old aggregates failed"),
                    }
                }
            }
        }
    }
}

/// Puts every stored device into the registry (offline, with its registration, last values and
/// a few recent readings for its sparkline) before anything connects.
async fn restore_devices(store: &Store, registry: &Registry) -> Result<(), StorageError> {
    let devices = store.devices().await?;
    let count = devices.len();
    for (id, stored) in devices {
        // History comes back with the sequence numbers of an earlier run; 0 keeps them from
        // being mistaken for events of this one.
        let recent: Vec<Reading> = store
            .history(&id, 0, SPARKLINE_POINTS as u32)
            .await?
            .into_iter()
            .map(|r| Reading { seq: 0, ..r })
            .collect();
        registry.restore(&id, stored.last_seen_ms, stored.registration, recent);
    }
    if count > 0 {
        tracing::info!(devices = count, "listed the stored devices as offline");
    }
    Ok(())
}

pub const HEALTH_PATH: &str = "/healthz";

/// `GET /healthz`, for monitors and service managers: 200 `ok` while the store takes writes,
/// else 503. Public, so it says nothing else (no versions, no counts).
async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (StatusCode, &'static str) {
    if state.store.healthy().await {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ok\n")
    }
}

/// Device endpoints, CSV export, the dashboard's pages and its server functions. The app has no
/// client-side router (see `app::links`), so its two pages are routed here.
fn router(state: AppState) -> Router {
    // Rendering runs resources on Leptos' executor. (`leptos_routes` would set it up; we route
    // ourselves.) Setting it a second time, as each test server does, is refused harmlessly.
    let _ = any_spawner::Executor::init_tokio();
    let hub: SharedHub = Arc::new(state.clone());
    let context = move || provide_context(hub.clone());
    let page = leptos_axum::render_app_to_stream_with_context(context.clone(), {
        let options = state.leptos_options.clone();
        move || app::shell(options.clone())
    });
    let mut router = Router::new()
        .route("/ws/device", get(device_socket::upgrade))
        .route(HEALTH_PATH, get(health))
        .route("/metrics", get(crate::metrics::render))
        .route(
            auth::web::LOGIN_PATH,
            get(page.clone()).post(auth::web::login),
        )
        .route(app::links::TOKENS_PAGE, get(page.clone()))
        .route(auth::web::LOGOUT_PATH, post(auth::web::logout))
        .route("/export/{device}", get(export::csv))
        .route("/", get(page.clone()))
        .route("/devices/{id}", get(page));
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        let context = context.clone();
        let handler = move |req: Request<Body>| async move {
            leptos_axum::handle_server_fns_with_context(context, req).await
        };
        // Our server functions use GET and POST, both of which have a filter.
        let filter = MethodFilter::try_from(method).unwrap_or(MethodFilter::POST);
        router = router.route(path, on(filter, handler));
    }
    let public_origin = Arc::new(state.config.public_origin.clone());
    router
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::web::require_session,
        ))
        .layer(middleware::from_fn_with_state(
            public_origin,
            security::check_origin,
        ))
        // Every request the dashboard makes is small (the largest, a console line, is 1 KiB).
        .layer(RequestBodyLimitLayer::new(security::MAX_REQUEST_BODY))
        .layer(middleware::from_fn(security::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::check_default_fields;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_fields_are_checked() {
        assert_eq!(check_default_fields(&names(&["counter", "temp"])), Ok(()));
        assert_eq!(
            check_default_fields(&names(&["a", "a"])),
            Err("\"a\" is listed twice".into())
        );
        assert_eq!(
            check_default_fields(&names(&["ID"])),
            Err("\"ID\" is reserved".into())
        );
        assert!(check_default_fields(&names(&[""])).is_err());
        assert!(check_default_fields(&names(&["t\u{7}"])).is_err());
        assert!(check_default_fields(&names(&[&"x".repeat(65)])).is_err());
    }
}
