//! `/ws/device`: the WebSocket endpoint devices connect to. I/O only: text frames in, parsed by
//! [`crate::protocol`], recorded in the [`crate::registry`], queued for [`crate::storage`];
//! error lines and close frames out.
//!
//! A device is known by the id in its first reading, or by `?id=` in the URL. A bad line gets an
//! `error: …` line back and counts as an error for the device; the connection stays open.

use crate::application::AppState;
use crate::protocol::{self, DeviceId, ParseRules};
use crate::registry::{Attachment, Outbound};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// Read/write buffers per connection. tungstenite's defaults (128 KiB read) would cost
/// gigabytes with thousands of idle devices; readings are a few dozen bytes.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;
/// Close code for "server going away" (RFC 6455).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a connection replaced by a newer one for the same device (application range).
const CLOSE_REPLACED: u16 = 4000;

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    id: Option<String>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Response {
    let url_id = match params.id.as_deref().map(DeviceId::parse).transpose() {
        Ok(id) => id,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("error: {err}\n")).into_response(),
    };
    let max = state.config.max_frame_bytes as usize;
    let tasks = state.tasks.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| tasks.track_future(serve(socket, remote, url_id, state)))
}

/// One device connection, from upgrade to close.
struct Session {
    state: AppState,
    rules: ParseRules,
    transport: String,
    outbound: mpsc::Sender<Outbound>,
    attachment: Option<Attachment>,
}

#[tracing::instrument(name = "device", skip_all, fields(%remote, id = tracing::field::Empty))]
async fn serve(
    mut socket: WebSocket,
    remote: SocketAddr,
    url_id: Option<DeviceId>,
    state: AppState,
) {
    let (outbound, mut commands) = mpsc::channel(32);
    let rules = ParseRules {
        csv_fields: state.config.default_fields.clone(),
        max_fields: state.config.max_fields as usize,
    };
    let stopping = state.shutdown.clone();
    let mut session = Session {
        state,
        rules,
        transport: format!("websocket {remote}"),
        outbound,
        attachment: None,
    };
    if let Some(id) = url_id {
        session.attach(id);
    }
    tracing::info!("device connected");

    let reason = loop {
        tokio::select! {
            _ = stopping.cancelled() => {
                close(&mut socket, CLOSE_GOING_AWAY, "server shutting down").await;
                break "server shutting down".to_string();
            }
            Some(command) = commands.recv() => match command {
                Outbound::Line(line) => {
                    if socket.send(Message::Text(line.into())).await.is_err() {
                        break "send failed".into();
                    }
                }
                Outbound::Close(reason) => {
                    close(&mut socket, CLOSE_REPLACED, &reason).await;
                    break reason;
                }
            },
            frame = socket.recv() => match frame {
                None => break "closed by the device".into(),
                Some(Err(err)) => break format!("connection error: {err}"),
                Some(Ok(Message::Text(text))) => {
                    for line in text.as_str().lines() {
                        if !line.trim().is_empty() {
                            session.handle_line(line, &mut socket).await;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    session.reply_error(&mut socket, "binary frames are not supported; send text lines").await;
                }
                Some(Ok(Message::Close(_))) => break "closed by the device".into(),
                // axum answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            },
        }
    };
    tracing::info!(%reason, "device disconnected");
}

impl Session {
    fn attach(&mut self, id: DeviceId) {
        tracing::Span::current().record("id", tracing::field::display(&id));
        self.attachment = Some(self.state.registry.attach(
            id,
            self.transport.clone(),
            self.outbound.clone(),
        ));
    }

    async fn handle_line(&mut self, line: &str, socket: &mut WebSocket) {
        let parsed = match protocol::parse_line(line, &self.rules) {
            Ok(parsed) => parsed,
            Err(err) => return self.reply_error(socket, &err.to_string()).await,
        };
        match (&self.attachment, parsed.device_id) {
            (None, Some(id)) => self.attach(id),
            (None, None) => {
                return self
                    .reply_error(
                        socket,
                        "no device id: start the line with it, or connect with ?id=",
                    )
                    .await;
            }
            (Some(attached), Some(id)) if attached.device() != &id => {
                let msg = format!(
                    "device id {:?} does not match this connection's id {:?}",
                    id.as_str(),
                    attached.device().as_str()
                );
                return self.reply_error(socket, &msg).await;
            }
            (Some(_), _) => {}
        }
        let Some(attachment) = &self.attachment else {
            return;
        };
        let reading = self.state.registry.record(attachment, parsed.values);
        if let Err(err) = self.state.store.append(reading).await {
            tracing::warn!(%err, "reading not stored");
        }
    }

    async fn reply_error(&mut self, socket: &mut WebSocket, message: &str) {
        if let Some(attachment) = &self.attachment {
            self.state.registry.record_error(attachment);
        }
        tracing::debug!(message, "bad input from device");
        let _ = socket
            .send(Message::Text(format!("error: {message}").into()))
            .await;
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
