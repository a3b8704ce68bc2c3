//! Start-up and graceful shutdown.
//!
//! [`Application::build`] binds the listener (port 0 works, for tests) and opens the store;
//! [`Application::run_until_stopped`] serves until the shutdown token is cancelled, then stops
//! accepting, closes device connections, ends live streams and flushes the store.

use crate::alerts::Alerts;
use crate::auth::{Auth, AuthConfig, AuthError};
use crate::certificates::acme::AcmeSettings;
use crate::certificates::renewal::CertificateFacts;
use crate::certificates::{self, ServedCertificate};
use crate::config::ServeArgs;
use crate::devices::{self, DeviceContext, DeviceLimits};
use crate::registry::{Registry, RegistryConfig, Restored};
use crate::router::{metrics_router, redirect_router, router};
use crate::simulator::{self, SimulatorArgs};
use crate::state::AppState;
use crate::storage::{Database, StorageError, Store, StoreConfig};
use crate::sweeps::{self, every};
use crate::{bundle, listener, security};
use app::model::{Reading, SPARKLINE_POINTS};
use axum::middleware;
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a graceful stop waits for device connections and background tasks to end.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);
/// How far a live subscriber (a browser tab) may fall behind before it skips to a fresh snapshot.
const LIVE_EVENT_CAPACITY: usize = 4096;

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
    #[error("the config file's alarm rules: {0}")]
    AlarmRules(crate::alerts::AlertError),
    #[error("--admin-password-file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--admin-password-file {0}: the file is empty")]
    EmptyPasswordFile(PathBuf),
    #[error("--default-fields: {0}")]
    DefaultFields(String),
    #[error("cannot create the first user: {0}")]
    FirstUser(#[from] AuthError),
    #[error("TLS: {0}")]
    Tls(#[from] listener::TlsError),
    #[error(
        "--http-redirect sends people to HTTPS: give --acme-domain, or --tls-cert and --tls-key"
    )]
    RedirectWithoutTls,
    #[error(transparent)]
    Smtp(#[from] crate::alerts::notify::SmtpError),
    #[error("--tcp-tls needs a certificate: give --acme-domain, or --tls-cert and --tls-key")]
    TcpTlsWithoutCertificate,
    #[error("MQTT over TLS: {0}")]
    MqttTls(#[from] devices::mqtt::MqttTlsError),
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error("--cluster-nats: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

pub struct Application {
    listener: TcpListener,
    /// Raw TCP devices (`--tcp-listen`).
    tcp_listener: Option<TcpListener>,
    /// `/metrics` without sign-in (`--metrics-bind`).
    metrics_listener: Option<TcpListener>,
    /// Plain HTTP that redirects to HTTPS (`--http-redirect`).
    redirect_listener: Option<TcpListener>,
    state: AppState,
    tls: Option<listener::Tls>,
    /// `--acme-domain`: what to ask the CA for, and the certificate kept from an earlier run.
    acme: Option<AcmeStart>,
    /// The client side of an `mqtts://` broker.
    mqtt_tls: Option<Arc<rustls::ClientConfig>>,
    /// `--cluster-nats`: the link to the other hubs.
    cluster: Option<crate::cluster::Link>,
}

impl Application {
    pub async fn build(config: ServeArgs) -> Result<Self, StartupError> {
        let limits = DeviceLimits::new(&config.devices).map_err(StartupError::DefaultFields)?;
        // Read the certificate first: a bad one should stop us before anything else happens.
        let (tls, acme) = tls_from(&config)?;
        if config.tcp.tcp_tls && tls.is_none() {
            return Err(StartupError::TcpTlsWithoutCertificate);
        }
        if config.tls.http_redirect.is_some() && tls.is_none() {
            return Err(StartupError::RedirectWithoutTls);
        }
        let mqtt_tls = match &config.mqtt.mqtt_url {
            Some(broker) if broker.tls => Some(devices::mqtt::client_tls(
                config.mqtt.mqtt_ca_file.as_deref(),
            )?),
            _ if config.mqtt.mqtt_ca_file.is_some() => {
                return Err(devices::mqtt::MqttTlsError::CaWithoutTls.into())
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
            flush_interval: Duration::from_millis(config.writes.flush_interval_ms),
            flush_rows: config.writes.flush_rows as usize,
        })
        .await?;
        let listener = bind(config.http.bind).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.http.bind,
            source,
        })?;
        // Installed before anything is counted.
        let _ = crate::metrics::handle();
        let metrics_listener = match config.http.metrics_bind {
            None => None,
            Some(addr) => Some(bind(addr).await?),
        };
        let tcp_listener = match config.tcp.tcp_listen {
            None => None,
            Some(addr) => Some(bind(addr).await?),
        };
        let redirect_listener = match config.tls.http_redirect {
            None => None,
            Some(addr) => Some(bind(addr).await?),
        };

        let bundle = bundle::names(&config.http.site_root.join("pkg"))?;
        let leptos_options = LeptosOptions::builder()
            .output_name(app::BUNDLE_NAME)
            .site_root(config.http.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .build();
        let auth = Auth::new(
            store.clone(),
            AuthConfig {
                session_lifetime: Duration::from_secs(
                    u64::from(config.accounts.session_hours) * 3600,
                ),
                // Served over TLS here, or by a TLS-terminating proxy at an https origin.
                secure_cookies: tls.is_some()
                    || config
                        .http
                        .public_origin
                        .as_deref()
                        .is_some_and(|origin| origin.starts_with("https://")),
                allow_tokenless_devices: config.devices.allow_tokenless_devices,
                behind_proxy: config.http.behind_proxy,
            },
        );
        let admin_password = match &config.accounts.admin_password_file {
            Some(path) => Some(read_password(path)?),
            None => config.accounts.admin_password.clone(),
        };
        auth.create_first_user(admin_password.as_deref()).await?;
        if config.devices.allow_tokenless_devices {
            if config.http.bind.ip().is_loopback() {
                tracing::info!("--allow-tokenless-devices: devices on this machine need no token");
            } else {
                tracing::warn!(
                    bind = %config.http.bind,
                    "--allow-tokenless-devices with a listener other machines can reach: any \
                     device that can reach this hub may connect without a token; use this only \
                     on a network you trust"
                );
            }
        }
        let registry = Registry::new(RegistryConfig {
            recent_per_device: config.live.recent_readings as usize,
            event_capacity: LIVE_EVENT_CAPACITY,
            command_timeout: Duration::from_millis(config.live.command_timeout_ms),
            max_devices: config.live.max_devices as usize,
        });
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let devices = Arc::new(DeviceContext {
            registry: registry.clone(),
            store: store.clone(),
            auth: auth.clone(),
            limits,
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        });
        let mailer = crate::alerts::Mailer::from_args(&config.smtp)?;
        let alerts = Alerts::new(store.clone(), registry.clone(), mailer, tasks.clone());
        if !config.alarm_rules.is_empty() {
            let (created, changed) = alerts
                .apply_config_rules(&config.alarm_rules)
                .await
                .map_err(StartupError::AlarmRules)?;
            tracing::info!(
                rules = config.alarm_rules.len(),
                created,
                changed,
                "alarm rules from the config file"
            );
        }
        let cluster = crate::cluster::link(&config.cluster).await?;
        let state = AppState {
            leptos_options,
            bundle,
            registry,
            config: Arc::new(config),
            store,
            auth,
            alerts,
            devices,
            shutdown,
            tasks,
            cluster: cluster.as_ref().map(crate::cluster::Link::status),
        };
        restore_devices(&state.store, &state.registry).await?;
        Ok(Application {
            listener,
            tcp_listener,
            metrics_listener,
            redirect_listener,
            state,
            tls,
            acme,
            mqtt_tls,
            cluster,
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

    /// Where plain HTTP is redirected to HTTPS, if enabled.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_listener
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
        let (tcp_addr, metrics_addr) = (self.tcp_addr(), self.metrics_addr());
        let redirect_addr = self.redirect_addr();
        let (listener, tcp_listener, metrics_listener) =
            (self.listener, self.tcp_listener, self.metrics_listener);
        let redirect_listener = self.redirect_listener;
        let (state, tls, mqtt_tls) = (self.state, self.tls, self.mqtt_tls);
        if let Some(link) = self.cluster {
            state.tasks.spawn(crate::cluster::run(
                link,
                state.registry.clone(),
                state.shutdown.clone(),
            ));
        }
        if let (Some((settings, kept)), Some(tls)) = (self.acme, &tls) {
            state.tasks.spawn(certificates::acme::keep_fresh(
                settings,
                tls.served.clone(),
                kept,
                state.shutdown.clone(),
            ));
        }
        let config = state.config.clone();
        let cap = listener::ConnectionCap::new(config.http.max_connections as usize);
        if let Some(broker) = config.mqtt.mqtt_url.clone() {
            let topics = config.mqtt.mqtt_topic_prefix.clone();
            let listed = devices::mqtt::ListedDevices::new(&config.mqtt.mqtt_devices);
            state.tasks.spawn(devices::mqtt::run(
                broker,
                topics,
                listed,
                mqtt_tls,
                state.devices.clone(),
            ));
        }
        for spec in config.serial.ports.clone() {
            state
                .tasks
                .spawn(devices::serial::run(spec, state.devices.clone()));
        }
        if let Some(redirect_listener) = redirect_listener {
            state.tasks.spawn(serve_plain(
                redirect_listener,
                redirect_router(&state),
                state.shutdown.clone(),
                "the HTTP redirect listener",
            ));
        }
        if let Some(metrics_listener) = metrics_listener {
            state.tasks.spawn(serve_plain(
                metrics_listener,
                metrics_router(state.clone()),
                state.shutdown.clone(),
                "the metrics listener",
            ));
        }
        if let Some(tcp_listener) = tcp_listener {
            // The dashboard's certificate, without its HTTP ALPN: devices offer none.
            let tcp_tls = tls.as_ref().filter(|_| config.tcp.tcp_tls).map(|tls| {
                let mut config = (*tls.server).clone();
                config.alpn_protocols.clear();
                tokio_rustls::TlsAcceptor::from(Arc::new(config))
            });
            if let Ok(addr) = tcp_listener.local_addr() {
                let kind = if tcp_tls.is_some() { "TLS" } else { "plain" };
                tracing::info!("raw TCP devices ({kind}): listening on {addr}");
            }
            let settings = devices::tcp::TcpSettings {
                cap: cap.clone(),
                args: config.tcp.clone(),
                max_connections_per_ip: config.http.max_connections_per_ip as usize,
                first_message_timeout: Duration::from_millis(config.http.header_timeout_ms),
            };
            state.tasks.spawn(devices::tcp::serve(
                tcp_listener,
                tcp_tls,
                settings,
                state.devices.clone(),
            ));
        }
        let addr = state.leptos_options.site_addr;
        let mut router = router(state.clone());
        if tls.is_some() {
            router = router.layer(middleware::map_response(
                security::strict_transport_security,
            ));
        }

        if config.simulate.simulate > 0 {
            // The simulated devices get tokens that live as long as this process.
            let tokens = (1..=config.simulate.simulate)
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
                    .map(|tls| simulator::pinned_tls(tls.served.clone()))
                    .transpose()
                    .map_err(std::io::Error::other)?,
                devices: config.simulate.simulate,
                rate: config.simulate.simulate_rate,
                first_id: 1,
                dialect: simulator::SimDialect::Mixed,
                no_register: false,
                tokens,
            };
            state
                .tasks
                .spawn(simulator::run(args, state.shutdown.clone()));
        }

        state
            .tasks
            .spawn(state.alerts.clone().run(state.shutdown.clone()));
        state
            .tasks
            .spawn(state.alerts.clone().run_schedules(state.shutdown.clone()));
        let stop = state.shutdown.clone();
        let registry = state.registry.clone();
        state.tasks.spawn(every(
            sweeps::COMMAND_SWEEP,
            stop.clone(),
            async move || sweeps::expire_commands(&registry),
        ));
        let auth = state.auth.clone();
        state.tasks.spawn(every(
            sweeps::SESSION_SWEEP,
            stop.clone(),
            async move || sweeps::forget_expired_sessions(&auth).await,
        ));
        let mut revocations =
            sweeps::RevocationWatch::new(state.store.clone(), state.registry.clone());
        state.tasks.spawn(every(
            sweeps::REVOCATION_SWEEP,
            stop.clone(),
            async move || revocations.look().await,
        ));
        if sweeps::retention_wanted(&config.retention) {
            let (store, keep) = (state.store.clone(), config.retention.clone());
            state
                .tasks
                .spawn(every(sweeps::RETENTION_SWEEP, stop, async move || {
                    sweeps::apply_retention(&store, &keep).await
                }));
        }

        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("dashboard listening on {scheme}://{addr}");
        if let Some(path) = &config.ready_file {
            let ready = serde_json::json!({
                "dashboard": format!("{scheme}://{addr}"),
                "tcp": tcp_addr.map(|a| a.to_string()),
                "metrics": metrics_addr.map(|a| a.to_string()),
                "http_redirect": redirect_addr.map(|a| a.to_string()),
                "pid": std::process::id(),
            });
            write_whole(path, ready.to_string().as_bytes())?;
        }
        listener::serve(
            listener,
            router,
            listener::ListenerConfig {
                tls: tls.map(|tls| tls.server),
                max_connections_per_ip: config.http.max_connections_per_ip as usize,
                max_header_bytes: config.http.max_header_bytes as usize,
                header_timeout: Duration::from_millis(config.http.header_timeout_ms),
                tls_handshake_timeout: Duration::from_millis(config.http.header_timeout_ms),
                cap,
            },
            state.shutdown.clone(),
        )
        .await?;

        tracing::info!("stopping: closing device connections and flushing the store");
        state.tasks.close();
        // Device connections end on the same signal; one that does not (a write to a device
        // that stopped reading) is not waited for past the deadline: the store is flushed anyway.
        if tokio::time::timeout(SHUTDOWN_LIMIT, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "some device connections were still open after {SHUTDOWN_LIMIT:?}; stopping anyway"
            );
        }
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves a side listener (metrics, the HTTPS redirect) with axum's own loop until the server
/// stops: small answers, none of the dashboard listener's limits needed.
async fn serve_plain(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
    what: &'static str,
) {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(err) = served {
        tracing::error!(%err, "{what} failed");
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// Puts every stored device into the registry (offline, with its registration, last values and
/// a few recent readings for its sparkline) before anything connects.
async fn restore_devices(store: &Store, registry: &Registry) -> Result<(), StorageError> {
    let devices = store.devices().await?;
    let count = devices.len();
    for stored in devices {
        let id = stored.id;
        // History comes back with the sequence numbers of an earlier run; 0 keeps them from
        // being mistaken for events of this one.
        let recent: Vec<Reading> = store
            .history(&id, 0, SPARKLINE_POINTS as u32)
            .await?
            .into_iter()
            .map(|r| Reading { seq: 0, ..r })
            .collect();
        registry.restore(
            &id,
            Restored {
                last_seen_ms: stored.last_seen_ms,
                registration: stored.registration,
                display_name: stored.display_name,
                recent,
            },
        );
    }
    if count > 0 {
        tracing::info!(devices = count, "listed the stored devices as offline");
    }
    Ok(())
}

/// The first line of a password file, without its line ending.
fn read_password(path: &std::path::Path) -> Result<String, StartupError> {
    let text = std::fs::read_to_string(path).map_err(|source| StartupError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    let password = text.lines().next().unwrap_or_default().to_string();
    if password.is_empty() {
        return Err(StartupError::EmptyPasswordFile(path.to_path_buf()));
    }
    Ok(password)
}

/// Writes a file so that no reader ever sees half of it: a temporary file beside it, renamed.
/// What `--acme-domain` asks the CA for, and the certificate kept from an earlier run.
type AcmeStart = (AcmeSettings, Option<CertificateFacts>);

/// The HTTPS set-up: from certificate files, or from an ACME CA (`--acme-domain`), serving
/// the certificate kept from an earlier run at once if there is a good one.
fn tls_from(
    config: &ServeArgs,
) -> Result<(Option<listener::Tls>, Option<AcmeStart>), StartupError> {
    if let (Some(cert), Some(key)) = (&config.tls.tls_cert, &config.tls.tls_key) {
        return Ok((Some(listener::load_tls(cert, key)?), None));
    }
    if config.tls.acme_domain.is_empty() {
        return Ok((None, None));
    }
    let settings = AcmeSettings {
        domains: config.tls.acme_domain.clone(),
        email: config.tls.acme_email.clone(),
        directory: config.tls.acme_directory.clone(),
        ca_root: config.tls.acme_ca_root.clone(),
        data_dir: config.store.data_dir.clone(),
    };
    let (served, kept) = match certificates::acme::kept(&settings) {
        Some((certified, facts)) => {
            tracing::info!(names = ?facts.names, serial = %facts.serial, "serving the certificate kept in the data folder");
            (ServedCertificate::with(certified), Some(facts))
        }
        None => (ServedCertificate::default(), None),
    };
    let tls = listener::serving(Arc::new(served), true)?;
    Ok((Some(tls), Some((settings, kept))))
}

fn write_whole(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}
