//! What a device connection may use of the hub ([`DeviceContext`]), and the flags that limit
//! every device whatever its transport ([`DeviceArgs`]).

use crate::auth::Auth;
use crate::registry::Registry;
use crate::storage::Store;
use app::model::Name;
use clap::Args;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every device connection may do, whatever its transport.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Devices")]
pub struct DeviceArgs {
    /// Let devices connect without a token. Only on a network you trust: anyone who can reach
    /// the hub can then send readings as any device. The dashboard warns while this is on.
    #[arg(long, env = "IOTHUB_ALLOW_TOKENLESS_DEVICES", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_tokenless_devices: bool,

    /// Names for the values of a positional CSV line after the device id (`7,42,23.5`);
    /// values beyond the list are named `f3`, `f4`, ….
    #[arg(
        long,
        env = "IOTHUB_DEFAULT_FIELDS",
        value_delimiter = ',',
        default_value = "counter,temp"
    )]
    pub default_fields: Vec<String>,

    /// Most numeric fields one reading may carry.
    #[arg(long, env = "IOTHUB_MAX_FIELDS", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_fields: u16,

    /// Largest WebSocket message or frame a device may send, in bytes.
    #[arg(long, env = "IOTHUB_MAX_FRAME_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(128..=16 * 1024 * 1024))]
    pub max_frame_bytes: u32,

    /// Most readings per second one device may send (short bursts of one second's worth are
    /// fine); extra readings are refused with an error line.
    #[arg(long, env = "IOTHUB_MAX_READINGS_PER_SEC", default_value_t = 100.0, value_parser = parse_positive)]
    pub max_readings_per_sec: f64,

    /// A device silent for this long is pinged (ms).
    #[arg(long, env = "IOTHUB_PING_AFTER_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub ping_after_ms: u64,

    /// …and disconnected (marked offline) if it stays silent this much longer (ms).
    #[arg(long, env = "IOTHUB_KEEPALIVE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub keepalive_timeout_ms: u64,
}

fn parse_positive(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{raw:?} is not a positive number")),
    }
}

/// [`DeviceArgs`] in the form the connections use them.
#[derive(Debug, Clone)]
pub struct DeviceLimits {
    /// Names of a CSV line's values after the id: shared by every connection until a device
    /// registers names of its own.
    pub csv_fields: Arc<[Name]>,
    pub max_fields: usize,
    pub max_frame_bytes: usize,
    pub max_readings_per_sec: f64,
    /// A silent device is pinged after `ping_after`, and dropped after `keepalive_timeout` more.
    pub ping_after: Duration,
    pub keepalive_timeout: Duration,
}

impl DeviceLimits {
    /// Fails with what is wrong with `--default-fields`.
    pub fn new(args: &DeviceArgs) -> Result<Self, String> {
        check_default_fields(&args.default_fields)?;
        Ok(DeviceLimits {
            csv_fields: args
                .default_fields
                .iter()
                .map(|f| f.as_str().into())
                .collect(),
            max_fields: usize::from(args.max_fields),
            max_frame_bytes: args.max_frame_bytes as usize,
            max_readings_per_sec: args.max_readings_per_sec,
            ping_after: Duration::from_millis(args.ping_after_ms),
            keepalive_timeout: Duration::from_millis(args.keepalive_timeout_ms),
        })
    }
}

/// What every device connection shares, behind one `Arc`: an idle connection holds a pointer
/// to it rather than a copy of each part.
pub struct DeviceContext {
    pub registry: Registry,
    pub store: Store,
    /// Checks the token a device presents.
    pub auth: Auth,
    pub limits: DeviceLimits,
    /// Cancelled when the server starts shutting down: every connection closes.
    pub shutdown: CancellationToken,
    /// Connections outlive the request or accept that started them; shutdown waits for them.
    pub tasks: TaskTracker,
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
