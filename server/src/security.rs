//! What every HTTP response and request goes through before the handlers: security headers on
//! every response, and a check that browser requests which stream or change something come from
//! the dashboard's own origin.
//!
//! Browsers always send `Origin` on WebSocket handshakes and on `POST` requests made by scripts,
//! so a page on another site cannot use a visitor's browser to send commands or read the live
//! stream. Devices and command-line clients usually send no `Origin` and are not affected (their
//! authentication is a separate matter).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{
    HeaderValue, HOST, ORIGIN, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use leptos::server_fn::ServerFn;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Largest request body the server reads (413 beyond it).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// The names the hub answers to in a request's `Host`: IP addresses and `localhost` always, the
/// host of `--public-origin`, and those of `--allowed-hosts`. Any other name is a DNS name the
/// owner never gave the hub: most likely a rebinding attack, where a page on another site has
/// its own name point at the hub so that the browser treats the hub as that site.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    pub fn new(public_origin: Option<&str>, extra: &[String]) -> Self {
        let public = public_origin
            .and_then(|origin| url::Url::parse(origin).ok())
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
        let names = public
            .into_iter()
            .chain(extra.iter().map(|name| name.trim().to_ascii_lowercase()))
            .filter(|name| !name.is_empty())
            .collect();
        AllowedHosts { names }
    }

    /// Whether a `Host` header value (`name[:port]`) is one the hub answers to.
    pub fn allows(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        let name = authority.host().to_ascii_lowercase();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || self.names.contains(&name)
    }
}

/// Answers 421 to a request addressed to a name the hub does not answer to (see
/// [`AllowedHosts`]). A request without `Host` (HTTP/1.0) is let through: no browser sends one.
pub async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(host) = request.headers().get(HOST) {
        if !host.to_str().is_ok_and(|host| allowed.allows(host)) {
            tracing::warn!(host = ?host, "refused a request for a name this hub does not answer to");
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this hub does not answer to that name; its owner can add it with --allowed-hosts\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Parses `--public-origin`: `scheme://host[:port]`, http or https, nothing after it.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?}: the origin must be http:// or https://"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{raw:?}: an origin is scheme://host[:port], without a path"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// Whether a browser request from `origin` may reach the dashboard: the configured public
/// origin if there is one, else the host the request was addressed to (same origin).
pub fn origin_allowed(origin: &str, host: Option<&str>, public: Option<&str>) -> bool {
    let Ok(origin) = parse_origin(origin) else {
        // `null` (sandboxed frames, file://) and garbage are never the dashboard.
        return false;
    };
    match public {
        Some(public) => origin == public,
        None => host.is_some_and(|host| {
            let host = host.to_ascii_lowercase();
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }),
    }
}

/// Refuses cross-origin server-function calls and WebSocket handshakes (403).
pub async fn check_origin(
    State(public): State<Arc<Option<String>>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    // Anything that can change something (POST, DELETE, PATCH, PUT), and WebSocket upgrades;
    // not a request with a bearer token, which no other site's page can have (it is all the
    // session check looks at then, cookie or not; `--api-cors-origins` says who may send one
    // from a browser).
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..7))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "));
    let changes = !bearer
        && !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
    let checked = changes
        || request
            .headers()
            .get("upgrade")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if checked {
        if let Some(origin) = request.headers().get(ORIGIN) {
            let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
            let allowed = origin
                .to_str()
                .is_ok_and(|origin| origin_allowed(origin, host, public.as_deref()));
            if !allowed {
                tracing::warn!(
                    origin = ?origin,
                    path = request.uri().path(),
                    "refused a cross-origin request"
                );
                return (StatusCode::FORBIDDEN, "cross-origin request refused\n").into_response();
            }
        }
    }
    next.run(request).await
}

/// Every request must arrive whole within `limit` of its head: a client sending its body a
/// byte at a time (to hold a connection open for nothing) gets an error when the time is up.
/// Requests that are not streams (everything but the device socket, CSV downloads and the live
/// stream) must also be answered within it, else 408.
pub async fn request_deadline(
    State(limit): State<Duration>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let deadline = Instant::now() + limit;
    let streams = is_stream(request.uri().path());
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
    });
    let request = Request::from_parts(parts, body);
    if streams {
        return next.run(request).await;
    }
    match tokio::time::timeout_at(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::debug!("a request took longer than {limit:?}");
            (StatusCode::REQUEST_TIMEOUT, "the request took too long\n").into_response()
        }
    }
}

/// Routes whose answer is a stream that may last (its request still has the deadline).
fn is_stream(path: &str) -> bool {
    path == crate::paths::DEVICE_SOCKET
        || path.starts_with("/export/")
        || path == crate::paths::API_EVENTS
        || (path.starts_with(crate::paths::API_V1) && path.ends_with("/export"))
        || path == app::api::LiveUpdates::PATH
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTooSlow;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Headers every response carries: no sniffing, no framing, no referrer to other sites. The
/// content security policy is set by the page itself (it needs the page's script nonce).
pub async fn security_headers(request: Request<Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// With TLS on: browsers use HTTPS for this host from then on, for a year.
pub async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_checked() {
        assert_eq!(
            parse_origin("HTTPS://Hub.Example.org:443/").as_deref(),
            Ok("https://hub.example.org")
        );
        assert_eq!(
            parse_origin("http://hub.local:3000").as_deref(),
            Ok("http://hub.local:3000")
        );
        for bad in [
            "hub.local",
            "ftp://hub.local",
            "http://hub.local/app",
            "null",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn same_origin_unless_a_public_origin_is_configured() {
        let host = Some("hub.local:3000");
        assert!(origin_allowed("http://hub.local:3000", host, None));
        assert!(origin_allowed("https://HUB.local:3000", host, None));
        assert!(!origin_allowed("http://evil.example", host, None));
        assert!(!origin_allowed("http://hub.local:3001", host, None));
        assert!(!origin_allowed("null", host, None));
        assert!(!origin_allowed("http://hub.local:3000", None, None));
        let public = Some("https://hub.example.org");
        assert!(origin_allowed("https://hub.example.org", host, public));
        assert!(!origin_allowed("http://hub.local:3000", host, public));
    }
}
