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

use super::conversation::{converse, Ending, Keepalive, Wire, WRITE_LIMIT};
use super::session::{Admission, DeviceSession, Handled};
use super::DeviceContext;
use crate::auth::{DeviceAccess, DeviceRefusal};
use crate::protocol::DeviceId;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
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
    let admission = match context.auth.admit_device(token).await {
        Ok(DeviceAccess::Tokenless) => {
            // An id that a token holds is that token's alone.
            if let Some(id) = &url_id {
                if let Err(refusal) = context.auth.tokenless_may_use(id).await {
                    return refuse_upgrade(remote, refusal);
                }
            }
            Admission::Tokenless(url_id)
        }
        Ok(DeviceAccess::Device {
            device_id,
            token_id,
        }) => match url_id {
            Some(other) if other != device_id => {
                return refuse_upgrade(remote, DeviceRefusal::OtherDevice(device_id.to_string()))
            }
            _ => Admission::Token {
                device: device_id,
                token_id,
            },
        },
        Err(refusal) => return refuse_upgrade(remote, refusal),
    };
    let max = context.limits.max_frame_bytes;
    let tasks = context.tasks.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| tasks.track_future(serve(socket, remote, admission, context)))
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
        DeviceRefusal::OtherDevice(_) | DeviceRefusal::NeedsItsToken(_) => StatusCode::FORBIDDEN,
        DeviceRefusal::TooManyReconnects => StatusCode::TOO_MANY_REQUESTS,
        DeviceRefusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    tracing::warn!(%remote, %refusal, "device connection refused");
    (status, format!("error: {refusal}\n")).into_response()
}

/// The WebSocket as the conversation's [`Wire`]: text frames in, text frames out, pings to
/// probe a silent device and close frames with a code to end.
struct Socket {
    socket: WebSocket,
    /// `--max-frame-bytes`, for the error that names it.
    max_frame_bytes: usize,
}

#[tracing::instrument(name = "device", skip_all, fields(%remote, id = tracing::field::Empty))]
async fn serve(
    socket: WebSocket,
    remote: SocketAddr,
    admission: Admission,
    context: Arc<DeviceContext>,
) {
    let stopping = context.shutdown.clone();
    let keepalive = Keepalive::Probe {
        after: context.limits.ping_after,
        give_up_after: context.limits.keepalive_timeout,
    };
    let max_frame_bytes = context.limits.max_frame_bytes;
    let (mut session, outbound) =
        DeviceSession::new(context, format!("websocket {remote}"), admission);
    let mut wire = Socket {
        socket,
        max_frame_bytes,
    };
    tracing::info!("device connected");
    let ending = converse(&mut wire, &mut session, outbound, keepalive, &stopping).await;
    tracing::info!(reason = %ending.reason(), "device disconnected");
}

impl Wire for Socket {
    type Input = Option<Result<Message, axum::Error>>;

    async fn read(&mut self) -> Self::Input {
        self.socket.recv().await
    }

    async fn handle(&mut self, frame: Self::Input, session: &mut DeviceSession) -> Option<Ending> {
        match frame {
            None => Some(Ending::Ended("connection lost".into())),
            Some(Ok(Message::Close(_))) => {
                // tungstenite has queued the close reply (RFC 6455 §5.5.1); flushing sends it,
                // so the device sees a clean close rather than a reset.
                let _ =
                    tokio::time::timeout(WRITE_LIMIT, futures::SinkExt::close(&mut self.socket))
                        .await;
                Some(Ending::Ended("closed by the device".into()))
            }
            Some(Err(err)) => Some(self.read_failed(err, session).await),
            Some(Ok(Message::Text(text))) => self.handle_text(text.as_str(), session).await,
            Some(Ok(Message::Binary(_))) => {
                let handled = session.refuse("binary frames are not supported; send text lines");
                self.answer(handled).await
            }
            // axum answers pings itself; any frame at all proves the device is alive.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
        }
    }

    async fn send(&mut self, line: &str) -> bool {
        self.write(Message::Text(line.into())).await
    }

    async fn probe(&mut self) -> bool {
        self.write(Message::Ping(Default::default())).await
    }

    async fn farewell(&mut self, ending: &Ending) {
        let (code, reason) = match ending {
            Ending::ShuttingDown => (CLOSE_GOING_AWAY, "server shutting down"),
            Ending::Replaced(reason) => (CLOSE_REPLACED, reason.as_str()),
            Ending::TokenRevoked => (CLOSE_POLICY, "device token revoked"),
            Ending::Silent => (CLOSE_SILENT, "no data or pong: keepalive timeout"),
            Ending::Ended(_) => return,
        };
        self.close(code, reason).await;
    }
}

impl Socket {
    /// Sends one message; false if it failed or the device did not take it within
    /// [`WRITE_LIMIT`] (a device that stops reading must not hold its task forever).
    async fn write(&mut self, message: Message) -> bool {
        matches!(
            tokio::time::timeout(WRITE_LIMIT, self.socket.send(message)).await,
            Ok(Ok(()))
        )
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.write(Message::Close(Some(frame))).await;
    }

    /// Every line of a frame, then the frame's readings handed on as one batch.
    async fn handle_text(&mut self, text: &str, session: &mut DeviceSession) -> Option<Ending> {
        let mut ending = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let handled = session.line(line).await;
            ending = self.answer(handled).await;
            if ending.is_some() {
                break;
            }
        }
        session.flush().await;
        ending
    }

    /// Tells the device what was wrong with its input; ends the connection when errors persist.
    async fn answer(&mut self, handled: Handled) -> Option<Ending> {
        let Handled::Refused { message, give_up } = handled else {
            return None;
        };
        self.write(Message::Text(format!("error: {message}").into()))
            .await;
        if !give_up {
            return None;
        }
        self.close(CLOSE_POLICY, "too many errors").await;
        Some(Ending::Ended("too many errors".into()))
    }

    /// A frame could not be read. After an oversized frame or invalid UTF-8 the stream cannot be
    /// resynchronised, so the device is told why and the connection closes.
    async fn read_failed(&mut self, err: axum::Error, session: &mut DeviceSession) -> Ending {
        let (code, message) = match err
            .into_inner()
            .downcast::<tungstenite::Error>()
            .map(|e| *e)
        {
            Ok(tungstenite::Error::Capacity(_)) => (
                CLOSE_TOO_BIG,
                format!("message larger than {} bytes", self.max_frame_bytes),
            ),
            Ok(tungstenite::Error::Utf8(_)) => (
                CLOSE_INVALID_DATA,
                "text frame is not valid UTF-8".to_string(),
            ),
            Ok(other) => return Ending::Ended(format!("connection error: {other}")),
            Err(other) => return Ending::Ended(format!("connection error: {other}")),
        };
        session.note_error(&message);
        self.write(Message::Text(format!("error: {message}").into()))
            .await;
        self.close(code, &message).await;
        Ending::Ended(message)
    }
}
