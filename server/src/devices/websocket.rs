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

mod frames;
mod upgrade;

use super::conversation::{converse, Ending, Keepalive, Wire, WRITE_LIMIT};
use super::session::{Admission, DeviceSession, Handled};
use super::DeviceContext;
use crate::auth::{DeviceAccess, DeviceRefusal};
use crate::protocol::DeviceId;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use frames::{Decoder, FrameError, Incoming};
use serde::Deserialize;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWriteExt;
use upgrade::{DeviceUpgrade, UpgradedStream};

/// How much room a read gets. The buffer exists only while a connection has bytes to work
/// through (see [`Socket::fill`]), so this costs busy connections, not idle ones; one read of
/// 4 KiB takes several ten-line frames.
const READ_CHUNK: usize = 4 * 1024;
/// Less room than this left, and the buffer grows by [`READ_CHUNK`] before reading.
const MIN_READ_ROOM: usize = 512;

// Close codes (RFC 6455 and the application range 4000–4999).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
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
    ws: DeviceUpgrade,
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
    let tasks = context.tasks.clone();
    ws.accept(&tasks, move |stream| {
        serve(stream, remote, admission, context)
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
    stream: UpgradedStream,
    /// Bytes read and not yet taken as frames. Unallocated while the device is idle.
    buffer: BytesMut,
    decoder: Decoder,
    /// What the next `read` returns: a message (or failure) found after a batch of text
    /// frames, when the batch stopped at it. Boxed: rare, and part of every connection.
    next: Option<Box<Result<Incoming, ReadFailure>>>,
}

/// Why reading stopped.
#[derive(Debug)]
enum ReadFailure {
    Lost(io::Error),
    Ended,
    Frame(FrameError),
}

// No tracing span per connection: it would cost every idle device a few hundred bytes of
// the subscriber's memory. The lines that matter name the device and its address themselves.
//
// Not an `async fn`: one would keep its arguments in its state beside what is made of them,
// for as long as the device is connected. The session and the socket are made here, and the
// future uses them in place.
fn serve(
    stream: UpgradedStream,
    remote: SocketAddr,
    admission: Admission,
    context: Arc<DeviceContext>,
) -> impl Future<Output = ()> {
    let stopping = context.shutdown.clone();
    let keepalive = Keepalive::Probe {
        after: context.limits.ping_after,
        give_up_after: context.limits.keepalive_timeout,
    };
    let decoder = Decoder::new(context.limits.max_frame_bytes);
    let (mut session, outbound) =
        DeviceSession::new(context, format!("websocket {remote}"), admission);
    let mut wire = Socket {
        stream,
        buffer: BytesMut::new(),
        decoder,
        next: None,
    };
    async move {
        tracing::info!(%remote, "device connected");
        let ending = converse(&mut wire, &mut session, outbound, keepalive, &stopping).await;
        tracing::info!(%remote, id = session.label(), reason = %ending.reason(), "device disconnected");
    }
}

impl Wire for Socket {
    type Input = Result<Incoming, ReadFailure>;

    async fn read(&mut self) -> Self::Input {
        if let Some(next) = self.next.take() {
            return *next;
        }
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(err) => return Err(ReadFailure::Frame(err)),
            }
            match poll_fn(|cx| self.fill(cx)).await {
                Ok(0) => return Err(ReadFailure::Ended),
                Ok(_) => {}
                Err(err) => return Err(ReadFailure::Lost(err)),
            }
        }
    }

    async fn handle(&mut self, input: Self::Input, session: &mut DeviceSession) -> Option<Ending> {
        match input {
            Ok(Incoming::Text(text)) => self.handle_text(text.as_str(), session).await,
            Ok(Incoming::Ping(payload)) => {
                if self.write(frames::PONG, &payload).await {
                    None
                } else {
                    Some(Ending::Ended("send failed".into()))
                }
            }
            // Any frame at all proves the device is alive.
            Ok(Incoming::Pong) => None,
            Ok(Incoming::Binary) => {
                let handled = session.refuse("binary frames are not supported; send text lines");
                self.answer(handled).await
            }
            Ok(Incoming::Close(code)) => {
                // The close handshake (RFC 6455 §5.5.1): answer with the device's code, so it
                // sees a clean close rather than a reset.
                let payload = frames::close_payload(code.unwrap_or(CLOSE_NORMAL), "");
                self.write(frames::CLOSE, &payload).await;
                Some(Ending::Ended("closed by the device".into()))
            }
            Err(ReadFailure::Ended) => Some(Ending::Ended("connection lost".into())),
            Err(ReadFailure::Lost(err)) => Some(Ending::Ended(format!("connection error: {err}"))),
            Err(ReadFailure::Frame(err)) => Some(self.broken(err, session).await),
        }
    }

    async fn send(&mut self, line: &str) -> bool {
        self.write(frames::TEXT, line.as_bytes()).await
    }

    async fn probe(&mut self) -> bool {
        self.write(frames::PING, b"").await
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
    /// Reads what the socket has into the buffer. The buffer is allocated only when the socket
    /// has something: a connection that finds nothing to read with nothing left over gives its
    /// buffer back, so an idle device holds none.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buffer.capacity() - self.buffer.len() < MIN_READ_ROOM {
            self.buffer.reserve(READ_CHUNK);
        }
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer);
        if read.is_pending() && self.buffer.is_empty() {
            self.buffer = BytesMut::new();
        }
        read
    }

    /// Sends one frame; false if it failed or the device did not take it within
    /// [`WRITE_LIMIT`] (a device that stops reading must not hold its task forever).
    async fn write(&mut self, opcode: u8, payload: &[u8]) -> bool {
        let mut frame = Vec::new();
        frames::encode(opcode, payload, &mut frame);
        let stream = &mut self.stream;
        let sending = async move {
            stream.write_all(&frame).await?;
            stream.flush().await
        };
        matches!(tokio::time::timeout(WRITE_LIMIT, sending).await, Ok(Ok(())))
    }

    async fn close(&mut self, code: u16, reason: &str) {
        self.write(frames::CLOSE, &frames::close_payload(code, reason))
            .await;
    }

    /// Every line of a frame, and of the text frames read with it, then their readings handed
    /// on as one batch. A device sending one line per frame under load has dozens of frames
    /// in one read; handing each on alone cost a registry lock and a message to the writer per
    /// line.
    async fn handle_text(&mut self, text: &str, session: &mut DeviceSession) -> Option<Ending> {
        let mut ending = self.lines(text, session).await;
        while ending.is_none() {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(Incoming::Text(text))) => ending = self.lines(text.as_str(), session).await,
                Ok(None) => break,
                Ok(Some(other)) => {
                    self.next = Some(Box::new(Ok(other)));
                    break;
                }
                Err(err) => {
                    self.next = Some(Box::new(Err(ReadFailure::Frame(err))));
                    break;
                }
            }
        }
        session.flush().await;
        ending
    }

    async fn lines(&mut self, text: &str, session: &mut DeviceSession) -> Option<Ending> {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let handled = session.line(line).await;
            if let Some(ending) = self.answer(handled).await {
                return Some(ending);
            }
        }
        None
    }

    /// Tells the device what was wrong with its input; ends the connection when errors persist.
    async fn answer(&mut self, handled: Handled) -> Option<Ending> {
        let (message, give_up) = match handled {
            Handled::Accepted => return None,
            Handled::Reply(line) => {
                self.send(&line).await;
                return None;
            }
            Handled::Refused { message, give_up } => (message, give_up),
        };
        self.send(&format!("error: {message}")).await;
        if !give_up {
            return None;
        }
        self.close(CLOSE_POLICY, "too many errors").await;
        Some(Ending::Ended("too many errors".into()))
    }

    /// The device broke the protocol (an oversized frame, text that is not UTF-8, a frame
    /// no client may send). The stream cannot be resynchronised after that, so the device is
    /// told why and the connection closes.
    async fn broken(&mut self, err: FrameError, session: &mut DeviceSession) -> Ending {
        let message = err.to_string();
        session.note_error(&message);
        self.send(&format!("error: {message}")).await;
        self.close(err.close_code(), &message).await;
        Ending::Ended(message)
    }
}
