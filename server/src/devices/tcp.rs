//! Raw TCP devices (`--tcp-listen`, port 5070): for boards that cannot speak WebSocket. I/O
//! only: accepting connections (TLS first with `--tcp-tls`) and reading the token; the
//! conversation itself, in lines or `|START|…|END|` frames, is [`super::stream`]'s.
//!
//! The first line or frame may carry the device token (`token=…`, `|START|TOKEN=…|END|`);
//! without one the connection is refused unless tokenless devices are allowed. With
//! `--tcp-tls` the same conversation runs inside TLS, on the dashboard's certificate.

use super::conversation::{converse, Keepalive};
use super::session::{Admission, DeviceSession};
use super::stream::{
    first_message, frame_meaning, Decoder, FrameMeaning, Framing, Message, StreamWire, Writer,
    READ_CHUNK,
};
use super::DeviceContext;
use crate::auth::DeviceAccess;
use crate::listener::{next_connection, ConnectionCap, ConnectionCounts};
use crate::protocol::Dialect;
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Raw TCP devices.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Raw TCP devices")]
pub struct TcpArgs {
    /// Also accept raw TCP devices (lines, or `|START|…|END|` frames) on this address; the
    /// flag alone means `0.0.0.0:5070`. Off unless given. Plain TCP unless `--tcp-tls`: tokens
    /// travel unencrypted, so use it on your own network.
    #[arg(long, env = "IOTHUB_TCP_LISTEN", num_args = 0..=1, default_missing_value = "0.0.0.0:5070")]
    pub tcp_listen: Option<SocketAddr>,

    /// Raw TCP devices must speak TLS, with the dashboard's certificate (`--tls-cert`).
    #[arg(long, env = "IOTHUB_TCP_TLS", requires = "tls_cert")]
    pub tcp_tls: bool,

    /// A framed TCP device silent this long is sent `COMMAND=HELLO!`, and dropped if it stays
    /// silent this long again (ms).
    #[arg(long, env = "IOTHUB_TCP_KEEPALIVE_MS", default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub tcp_keepalive_ms: u64,
}

/// How the raw TCP listener treats connections: its flags and the HTTP listener's limits.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    pub args: TcpArgs,
    /// `--max-connections-per-ip`, shared with the dashboard's listener.
    pub max_connections_per_ip: usize,
    /// `--header-timeout-ms`: for the TLS handshake and the first message.
    pub first_message_timeout: Duration,
    /// `--max-connections`, shared with the dashboard's listener.
    pub cap: ConnectionCap,
}

/// Accepts raw TCP devices until the server stops; with `tls` (`--tcp-tls`), each connection
/// must complete a TLS handshake first, within the head timeout.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: TcpSettings,
    context: Arc<DeviceContext>,
) {
    let counts = ConnectionCounts::default();
    let max = settings.max_connections_per_ip;
    let handshake_limit = settings.first_message_timeout;
    let settings = Arc::new(settings);
    loop {
        let Some((tcp, remote)) = next_connection(&listener, &context.shutdown).await else {
            return;
        };
        let Some(place) = settings.cap.take() else {
            continue;
        };
        let Some(slot) = counts.take_unless_local(remote.ip(), max) else {
            tracing::debug!(%remote, "TCP device refused: per-address limit");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let context = context.clone();
        let settings = settings.clone();
        let tls = tls.clone();
        context.tasks.clone().spawn(async move {
            let _held = (slot, place);
            let Some(acceptor) = tls else {
                let (reader, writer) = tcp.into_split();
                return serve_device(reader, writer, remote, &settings, context).await;
            };
            match tokio::time::timeout(handshake_limit, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let (reader, writer) = tokio::io::split(stream);
                    serve_device(reader, writer, remote, &settings, context).await;
                }
                Ok(Err(err)) => tracing::debug!(%remote, %err, "TCP device: TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TCP device: TLS handshake timed out"),
            }
        });
    }
}

#[tracing::instrument(name = "tcp device", skip_all, fields(%remote, id = tracing::field::Empty))]
async fn serve_device(
    mut reader: impl AsyncRead + Unpin,
    writer: impl AsyncWrite + Send + Unpin + 'static,
    remote: SocketAddr,
    settings: &TcpSettings,
    context: Arc<DeviceContext>,
) {
    let limits = &context.limits;
    let mut decoder = Decoder::new(limits.max_frame_bytes);
    let mut chunk = vec![0u8; READ_CHUNK];

    // The first message: a token, or (tokenless devices allowed) already data.
    let first = tokio::time::timeout(
        settings.first_message_timeout,
        first_message(&mut reader, &mut decoder, &mut chunk),
    )
    .await;
    let framing = decoder.framing().unwrap_or(Framing::Lines);
    let mut writer = Writer::new(writer, framing);
    let first = match first {
        Ok(Some(Ok(message))) => message,
        Ok(Some(Err(err))) => {
            let _ = writer.error(&err.to_string()).await;
            return;
        }
        Ok(None) | Err(_) => return, // closed, or silent from the start
    };
    let (token, pending) = match &first {
        Message::Line(line) => match line.split_once('=') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("token") => {
                (Some(value.trim().to_string()), None)
            }
            _ => (None, Some(first)),
        },
        Message::Frame(pairs) => match frame_meaning(pairs) {
            Ok(FrameMeaning::Token(token)) => (Some(token), None),
            _ => (None, Some(first)),
        },
    };
    let admission = match context.auth.admit_device(token.as_deref()).await {
        Ok(DeviceAccess::Device {
            device_id,
            token_id,
        }) => Admission::Token {
            device: device_id,
            token_id,
        },
        Ok(DeviceAccess::Tokenless) => Admission::Tokenless(None),
        Err(refusal) => {
            tracing::warn!(%refusal, "TCP device refused");
            let _ = writer.error(&refusal.to_string()).await;
            return;
        }
    };
    let transport = match framing {
        Framing::Lines => format!("tcp {remote}"),
        Framing::Frames => format!("tcp framed {remote}"),
    };
    let keepalive = match framing {
        Framing::Frames => {
            let idle = Duration::from_millis(settings.args.tcp_keepalive_ms);
            Keepalive::Probe {
                after: idle,
                give_up_after: idle,
            }
        }
        // Line devices cannot be pinged, so they must send something within the WebSocket
        // ping interval plus timeout.
        Framing::Lines => Keepalive::Drop {
            after: limits.ping_after + limits.keepalive_timeout,
        },
    };
    let stopping = context.shutdown.clone();
    let (mut session, commands) = DeviceSession::new(context, transport, admission);
    if framing == Framing::Frames {
        session.record_as(Dialect::Framed);
    }
    tracing::info!(?framing, "device connected");
    let mut wire = StreamWire::with_buffer(reader, writer, decoder, chunk);
    // The first message, if it was not a token, and whatever arrived with it.
    if let Some(ending) = wire.drain(pending, &mut session).await {
        tracing::info!(reason = %ending.reason(), "device disconnected");
        return;
    }
    let ending = converse(&mut wire, &mut session, commands, keepalive, &stopping).await;
    tracing::info!(reason = %ending.reason(), "device disconnected");
}
