//! [`AppState`]: what the web side (routes, server functions) may use. Defined below the
//! modules that use it, so that none of them is imported back by what it imports: the device
//! side gets the narrower [`DeviceContext`] instead.

use crate::alerts::Alerts;
use crate::auth::Auth;
use crate::config::ServeArgs;
use crate::devices::DeviceContext;
use crate::registry::Registry;
use crate::storage::Store;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a request handler or server function may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    /// The names the browser bundle is served under (see `app::bundle`).
    pub bundle: app::bundle::BundleFiles,
    pub config: Arc<ServeArgs>,
    pub registry: Registry,
    pub store: Store,
    pub auth: Auth,
    /// Alarm rules and alarms.
    pub alerts: Alerts,
    /// What device connections share (the same registry, store and shutdown signal).
    pub devices: Arc<DeviceContext>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Device connections, which outlive their HTTP request; shutdown waits for them.
    pub tasks: TaskTracker,
    /// `--cluster-nats`: whether the link to the other hubs is up (for `/healthz`).
    pub cluster: Option<crate::cluster::LinkStatus>,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

impl FromRef<AppState> for Arc<DeviceContext> {
    fn from_ref(state: &AppState) -> Self {
        state.devices.clone()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
