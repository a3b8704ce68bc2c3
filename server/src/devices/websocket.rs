//! `/ws/device`: the WebSocket endpoint devices connect to. I/O only: text frames in, each line
//! handed to the device's [`DeviceSession`]; commands, error lines, pings and close frames out.
//!
//! Before the upgrade the device must present a token (`Authorization: Bearer …` or `?token=`,
//! see [`crate::auth`]); a token names the device, so its id is known from the start. Without
//! tokens (`--allow-tokenless-devices`) a device is known by the id in its first line, or by
//! `?id=` in the URL. A bad line gets an
//! `error: …` line back and counts as an error for the device; the connection stays open unless
//! errors persist ([`super::session::ERROR_BUDGET`] within [`super::session::ERROR_WINDOW`]). A silent device is pinged after
//! `--ping-after-ms` and dropped after `--keepalive-timeout-ms` more.

use super::session::{DeviceSession, Handled};
use super::DeviceContext;
use crate::auth::{DeviceAccess, DeviceRefusal};
use crate::protocol::DeviceId;
use crate::registry::Outbound;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

/// Read/write buffers per connection. tungstenite's defaults (128 KiB read) would cost
/// gigabytes with thousands of idle devices; readings are a few dozen bytes. The read buffer is
/// allocated whole for every connection and also caps one read: 2 KiB flooded as fast as
/// 4 KiB (ten-line frames, 100 devices) and saved 1.5 KiB per idle device; 512 B cost a third
/// of the throughput.
const SOCKET_BUFFER_BYTES: usize = 2 * 1024;

// Close codes (RFC 6455 and the application range 4000–4999).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_REPLACED: u16 = 4000;
const CLOSE_SILENT: u16 = 4001;

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    id: Option<String>,
    token: Option<String>,
}

pub async fn upgrade(
    State(context): State<Arc<DeviceContext>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(params): Query<ConnectParams>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let url_id = match params.id.as_deref().map(DeviceId::parse).transpose() {
        Ok(id) => id,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("error: {err}\n")).into_response(),
    };
    let token = bearer_token(&headers).or(params.token.as_deref());
    let (url_id, token_id) = match context.auth.admit_device(token).await {
        Ok(DeviceAccess::Tokenless) => (url_id, None),
        Ok(DeviceAccess::Device {
            device_id,
            token_id,
        }) => match url_id {
            Some(other) if other != device_id => {
                return refuse_upgrade(remote, DeviceRefusal::OtherDevice(device_id.to_string()))
            }
            _ => (Some(device_id), token_id),
        },
        Err(refusal) => return refuse_upgrade(remote, refusal),
    };
    let max = context.limits.max_frame_bytes;
    let tasks = context.tasks.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            tasks.track_future(serve(socket, remote, url_id, token_id, context))
        })
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Answers a refused handshake before any frame is read: 401 for a missing or bad token, 403 for
/// a token of another device, 503 if tokens cannot be checked.
fn refuse_upgrade(remote: SocketAddr, refusal: DeviceRefusal) -> Response {
    let status = match refusal {
        DeviceRefusal::NoToken | DeviceRefusal::BadToken => StatusCode::UNAUTHORIZED,
        DeviceRefusal::OtherDevice(_) => StatusCode::FORBIDDEN,
        DeviceRefusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    tracing::warn!(%remote, %refusal, "device connection refused");
    (status, format!("error: {refusal}\n")).into_response()
}

/// Why the loop ended, for the log and the close frame.
struct Ending {
    code: Option<u16>,
    reason: String,
}

impl Ending {
    fn quiet(reason: impl Into<String>) -> Self {
        Ending {
            code: None,
            reason: reason.into(),
        }
    }
    fn close(code: u16, reason: impl Into<String>) -> Self {
        Ending {
            code: Some(code),
            reason: reason.into(),
        }
    }
}

/// The WebSocket and the device's conversation on it.
struct Connection {
    socket: WebSocket,
    session: DeviceSession,
}

#[tracing::instrument(name = "device", skip_all, fields(%remote, id = tracing::field::Empty))]
async fn serve(
    socket: WebSocket,
    remote: SocketAddr,
    url_id: Option<DeviceId>,
    token_id: Option<i64>,
    context: Arc<DeviceContext>,
) {
    let stopping = context.shutdown.clone();
    let ping_after = context.limits.ping_after;
    let give_up_after = context.limits.keepalive_timeout;
    let (session, mut commands) =
        DeviceSession::new(context, format!("websocket {remote}"), url_id, token_id);
    let mut conn = Connection { socket, session };
    tracing::info!("device connected");

    let mut heard = Instant::now();
    let mut pinged = false;
    let quiet_until = |heard: Instant, pinged: bool| {
        if pinged {
            heard + ping_after + give_up_after
        } else {
            heard + ping_after
        }
    };
    // One timer per connection, moved only when it fires: a frame just notes when it came.
    // (A new timer and a new cancellation waiter per frame cost more than reading the frame.)
    let quiet = tokio::time::sleep_until(quiet_until(heard, pinged));
    let stopped = stopping.cancelled();
    tokio::pin!(quiet, stopped);

    let ending = loop {
        tokio::select! {
            _ = &mut stopped => break Ending::close(CLOSE_GOING_AWAY, "server shutting down"),
            _ = &mut quiet => {
                let due = quiet_until(heard, pinged);
                if Instant::now() < due {
                    // Heard from meanwhile.
                    quiet.as_mut().reset(due);
                    continue;
                }
                if pinged {
                    break Ending::close(CLOSE_SILENT, "no data or pong: keepalive timeout");
                }
                pinged = true;
                quiet.as_mut().reset(quiet_until(heard, pinged));
                if conn.socket.send(Message::Ping(Default::default())).await.is_err() {
                    break Ending::quiet("ping failed");
                }
            }
            Some(out) = commands.recv() => match *out {
                Outbound::Line(line) => {
                    if conn.socket.send(Message::Text(line.into())).await.is_err() {
                        break Ending::quiet("send failed");
                    }
                }
                Outbound::Command { seq, line } => {
                    if conn.socket.send(Message::Text(line.into())).await.is_err() {
                        break Ending::quiet("send failed");
                    }
                    conn.session.delivered(seq);
                }
                Outbound::Close(reason) => break Ending::close(CLOSE_REPLACED, reason),
                Outbound::TokenRevoked(id) => {
                    if conn.session.token_id() == Some(id) {
                        break Ending::close(CLOSE_POLICY, "device token revoked");
                    }
                }
            },
            frame = conn.socket.recv() => {
                heard = Instant::now();
                pinged = false;
                match frame {
                    None => break Ending::quiet("connection lost"),
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite has queued the close reply (RFC 6455 §5.5.1); flushing
                        // sends it, so the device sees a clean close rather than a reset.
                        let _ = futures::SinkExt::close(&mut conn.socket).await;
                        break Ending::quiet("closed by the device");
                    }
                    Some(Err(err)) => break conn.read_failed(err).await,
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ending) = conn.handle_text(text.as_str()).await {
                            break ending;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let handled = conn.session.refuse("binary frames are not supported; send text lines");
                        if let Some(ending) = conn.answer(handled).await {
                            break ending;
                        }
                    }
                    // axum answers pings itself; any frame at all proves the device is alive.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                }
            }
        }
    };
    if let Some(code) = ending.code {
        let frame = CloseFrame {
            code,
            reason: ending.reason.clone().into(),
        };
        let _ = conn.socket.send(Message::Close(Some(frame))).await;
    }
    tracing::info!(reason = %ending.reason, "device disconnected");
}

impl Connection {
    /// Every line of a frame, then the frame's readings handed on as one batch.
    async fn handle_text(&mut self, text: &str) -> Option<Ending> {
        let mut ending = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let handled = self.session.line(line).await;
            ending = self.answer(handled).await;
            if ending.is_some() {
                break;
            }
        }
        self.session.flush().await;
        ending
    }

    /// Tells the device what was wrong with its input; ends the connection when errors persist.
    async fn answer(&mut self, handled: Handled) -> Option<Ending> {
        let Handled::Refused { message, give_up } = handled else {
            return None;
        };
        let _ = self
            .socket
            .send(Message::Text(format!("error: {message}").into()))
            .await;
        give_up.then(|| Ending::close(CLOSE_POLICY, "too many errors"))
    }

    /// A frame could not be read. After an oversized frame or invalid UTF-8 the stream cannot be
    /// resynchronised, so the device is told why and the connection closes.
    async fn read_failed(&mut self, err: axum::Error) -> Ending {
        let (code, message) = match err
            .into_inner()
            .downcast::<tungstenite::Error>()
            .map(|e| *e)
        {
            Ok(tungstenite::Error::Capacity(_)) => (
                CLOSE_TOO_BIG,
                format!(
                    "message larger than {} bytes",
                    self.session.context().limits.max_frame_bytes
                ),
            ),
            Ok(tungstenite::Error::Utf8(_)) => (
                CLOSE_INVALID_DATA,
                "text frame is not valid UTF-8".to_string(),
            ),
            Ok(other) => return Ending::quiet(format!("connection error: {other}")),
            Err(other) => return Ending::quiet(format!("connection error: {other}")),
        };
        self.session.note_error(&message);
        let _ = self
            .socket
            .send(Message::Text(format!("error: {message}").into()))
            .await;
        Ending::close(code, message)
    }
}
