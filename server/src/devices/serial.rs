//! Devices on serial lines (`--serial /dev/ttyUSB0:115200[:id]`, repeatable): an Arduino on a
//! USB cable, a gadget on a UART. Each port is one device, read like a raw TCP device (lines,
//! or `|START|…|END|` frames) and written to with its commands and console lines. No token: a
//! port is wired to this machine and named by whoever configured the hub.
//!
//! When the port goes away (USB unplugged) the device goes offline and the port is reopened
//! with backoff until it is back.

use super::conversation::{converse, Keepalive};
use super::session::{Admission, DeviceSession};
use super::stream::{Decoder, Framing, StreamWire, Writer};
use super::DeviceContext;
use crate::protocol::DeviceId;
use crate::retry::Backoff;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_serial::SerialPortBuilderExt;

/// Devices on serial ports.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Serial devices")]
pub struct SerialArgs {
    /// A device on a serial port: `PATH:BAUD` or `PATH:BAUD:ID` (e.g. `/dev/ttyUSB0:115200`);
    /// repeat for more. Reopened with backoff when it goes away.
    #[arg(long = "serial", env = "IOTHUB_SERIAL", value_delimiter = ',', value_parser = parse_spec)]
    pub ports: Vec<SerialSpec>,
}

/// One `--serial` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSpec {
    pub path: PathBuf,
    pub baud: u32,
    /// The device's id; else the id in its first reading.
    pub device: Option<DeviceId>,
}

/// Parses `PATH:BAUD[:ID]`.
pub fn parse_spec(raw: &str) -> Result<SerialSpec, String> {
    let mut parts = raw.splitn(3, ':');
    let path = parts.next().filter(|p| !p.is_empty());
    let baud = parts.next();
    let (Some(path), Some(baud)) = (path, baud) else {
        return Err(format!(
            "{raw:?}: expected PATH:BAUD or PATH:BAUD:ID, e.g. /dev/ttyUSB0:115200"
        ));
    };
    let baud = match baud.parse::<u32>() {
        Ok(b) if (50..=4_000_000).contains(&b) => b,
        _ => {
            return Err(format!(
                "{raw:?}: {baud:?} is not a baud rate (50 to 4000000)"
            ))
        }
    };
    let device = parts
        .next()
        .map(|id| DeviceId::parse(id).map_err(|e| format!("{raw:?}: device id: {e}")))
        .transpose()?;
    Ok(SerialSpec {
        path: PathBuf::from(path),
        baud,
        device,
    })
}

/// Serves the device on `spec`'s port until the server stops, reopening the port when it goes.
pub async fn run(spec: SerialSpec, context: Arc<DeviceContext>) {
    let stopping = context.shutdown.clone();
    let mut backoff = Backoff::default();
    let mut reported = false;
    while !stopping.is_cancelled() {
        match tokio_serial::new(spec.path.to_string_lossy(), spec.baud).open_native_async() {
            Ok(port) => {
                backoff.reset();
                reported = false;
                tracing::info!(port = %spec.path.display(), baud = spec.baud, "serial port open");
                let reason = serve_port(port, &spec, context.clone()).await;
                tracing::info!(port = %spec.path.display(), %reason, "serial device disconnected");
            }
            Err(err) => {
                // Once per outage at warn; the retries are routine until it is back.
                if !reported {
                    tracing::warn!(port = %spec.path.display(), %err, "cannot open the serial port; retrying");
                    reported = true;
                }
            }
        }
        if !backoff.wait(&stopping).await {
            return;
        }
    }
}

/// A port's configured id is trusted like a token: whoever configured the hub wired it. A
/// port without one is known by its first line's id, like a device without a token.
fn admission(spec: &SerialSpec) -> Admission {
    match &spec.device {
        Some(id) => Admission::Configured(id.clone()),
        None => Admission::Tokenless(None),
    }
}

async fn serve_port(
    port: tokio_serial::SerialStream,
    spec: &SerialSpec,
    context: Arc<DeviceContext>,
) -> String {
    let (reader, writer) = tokio::io::split(port);
    let max = context.limits.max_frame_bytes;
    let transport = format!("serial {}", spec.path.display());
    let stopping = context.shutdown.clone();
    let (mut session, commands) = DeviceSession::new(context, transport, admission(spec));
    // Until the device speaks, answer in lines; a framed device is recognised by its first
    // message like on TCP, and its readings are then recorded as framed.
    let mut wire = StreamWire::new(
        reader,
        Writer::new(writer, Framing::Lines),
        Decoder::new(max),
    );
    wire.follow_framing_of_first_message();
    converse(
        &mut wire,
        &mut session,
        commands,
        Keepalive::None,
        &stopping,
    )
    .await
    .reason()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_name_path_baud_and_maybe_the_device() {
        assert_eq!(
            parse_spec("/dev/ttyUSB0:115200"),
            Ok(SerialSpec {
                path: "/dev/ttyUSB0".into(),
                baud: 115_200,
                device: None
            })
        );
        let spec = parse_spec("/dev/ttyACM1:9600:kitchen").unwrap();
        assert_eq!(spec.device.as_ref().map(DeviceId::as_str), Some("kitchen"));
        for bad in [
            "/dev/ttyUSB0",
            "/dev/ttyUSB0:fast",
            "/dev/ttyUSB0:10",
            ":9600",
            "/dev/x:9600:a\u{7}",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }
}
