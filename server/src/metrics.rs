//! Prometheus metrics: `GET /metrics` (signed-in, like every page) and, for a scraper,
//! `--metrics-bind` (the same text on a separate address without sign-in: keep it local).
//!
//! Counters are recorded where things happen (readings, device errors, command status changes,
//! store flushes, lagged browser streams) through the `metrics` facade; gauges (devices online,
//! browser subscribers, store queue) are read when the page is rendered (`crate::router`).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const READINGS: &str = "iothub_readings_total";
pub const DEVICE_ERRORS: &str = "iothub_device_errors_total";
/// New device ids refused because the hub knows `--max-devices` already.
pub const DEVICES_REFUSED: &str = "iothub_devices_refused_total";
pub const COMMANDS: &str = "iothub_commands_total";
pub const STORE_FLUSH_SECONDS: &str = "iothub_store_flush_seconds";
pub const STORE_WRITE_FAILURES: &str = "iothub_store_write_failures_total";
/// Alarms up, by rule name (a gauge).
pub const ALARMS_ACTIVE: &str = "iothub_alarms_active";
/// Notifications sent or failed, by channel and result.
pub const NOTIFICATIONS: &str = "iothub_notifications_total";
/// When the certificate from `--acme-domain` ends (seconds since 1970): alert when it is near.
pub const TLS_CERTIFICATE_EXPIRY: &str = "iothub_tls_certificate_expiry_seconds";

/// The process-wide recorder (installed once; test servers in one process share it).
pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!(%err, "metrics are not available");
                None
            }
        })
        .clone()
}
