//! The WebSocket opening handshake (RFC 6455 §4.2) of `/ws/device`, answered by hand so the
//! connection that comes out of it is the plain upgraded stream, read by [`super::frames`]
//! (axum's `WebSocketUpgrade` would hand over a tungstenite socket with its own buffers).

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::task::TaskTracker;

/// The connection once the handshake is done: bytes both ways.
pub type UpgradedStream = TokioIo<Upgraded>;

/// A request that asks for a WebSocket, checked; answering it with [`DeviceUpgrade::accept`]
/// switches the connection over.
pub struct DeviceUpgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket handshake.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeRefused {
    #[error("a WebSocket handshake is a GET request")]
    NotGet,
    #[error("not a WebSocket handshake: the {0} header must say {1:?}")]
    Header(HeaderName, &'static str),
    #[error("only WebSocket version 13 is spoken here")]
    Version,
    #[error("the Sec-WebSocket-Key header is missing")]
    NoKey,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeRefused {
    fn into_response(self) -> Response {
        let status = match self {
            UpgradeRefused::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRefused::Version => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, format!("error: {self}\n")).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeviceUpgrade {
    type Rejection = UpgradeRefused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRefused::NotGet);
        }
        if !has_token(&parts.headers, CONNECTION, "upgrade") {
            return Err(UpgradeRefused::Header(CONNECTION, "upgrade"));
        }
        if !has_token(&parts.headers, UPGRADE, "websocket") {
            return Err(UpgradeRefused::Header(UPGRADE, "websocket"));
        }
        if parts
            .headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            != Some(b"13")
        {
            return Err(UpgradeRefused::Version);
        }
        let key = parts
            .headers
            .get(SEC_WEBSOCKET_KEY)
            .ok_or(UpgradeRefused::NoKey)?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| UpgradeRefused::NoKey)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRefused::NotUpgradable)?;
        Ok(DeviceUpgrade { accept, on_upgrade })
    }
}

impl DeviceUpgrade {
    /// Answers 101 Switching Protocols and runs `serve` on the connection once the response
    /// is out, as a task of `tasks` (so shutdown waits for it).
    pub fn accept<F, Fut>(self, tasks: &TaskTracker, serve: F) -> Response
    where
        F: FnOnce(UpgradedStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let tracker = tasks.clone();
        // The connection gets a task of its own once the upgrade is done: a task is as large
        // as its future, and this one's would also hold the upgrade and `serve`'s captures
        // for as long as the device stays.
        tasks.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    tracker.spawn(serve(TokioIo::new(upgraded)));
                }
                Err(err) => tracing::debug!(%err, "WebSocket upgrade failed"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// Whether a comma-separated header holds `token` (any case): `Connection: keep-alive, Upgrade`.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_are_found_in_lists_and_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(has_token(&headers, CONNECTION, "upgrade"));
        assert!(!has_token(&headers, UPGRADE, "websocket"));
        headers.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(has_token(&headers, UPGRADE, "websocket"));
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
