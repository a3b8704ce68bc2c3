//! The HTTP side of signing in: `POST /login`, `POST /logout`, the session cookie, and the
//! middleware that keeps everything but the login page, the static assets and the device
//! endpoint behind a session.
//!
//! The login form is a plain HTML form (it works before, and without, the WebAssembly), so its
//! answers are redirects: to where the person was going, or back to the form with a message.

use super::{policy, Auth, Login, Principal};
use app::api::ssr::{Credential, SignedIn};
use app::error::AppError;
use axum::body::Body;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

pub const SESSION_COOKIE: &str = "iothub_session";
/// The session cookie's name over HTTPS: the `__Host-` prefix makes browsers refuse it unless
/// it is `Secure`, for `/` and without a `Domain`, so a neighbouring (sub)domain cannot plant
/// one of its own beside it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-iothub_session";
pub const LOGIN_PATH: &str = app::links::LOGIN_PAGE;
pub const LOGOUT_PATH: &str = app::links::LOGOUT;

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`.
pub async fn login(
    State(auth): State<Auth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = client_address(peer, &headers, auth.config().behind_proxy);
    let next = safe_next(&form.next);
    match auth.login(&form.user, &form.password, client).await {
        Ok(Login::SignedIn { session, .. }) => {
            let mut response = see_other(next);
            set_cookie(&mut response, session_cookie(&auth, session));
            response
        }
        Ok(Login::Refused) => {
            see_other(&format!("{LOGIN_PATH}?failed=1&next={}", url_encode(next)))
        }
        Ok(Login::Busy(wait)) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many sign-ins at once; try again in a moment\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            response
        }
        Ok(Login::Throttled(wait)) => {
            let seconds = wait.as_secs().max(1);
            let body = format!(
                "<!DOCTYPE html><title>Too many attempts</title><p>Too many failed sign-ins \
                 from your address. Try again in {seconds} seconds.</p>\
                 <p><a href=\"{LOGIN_PATH}\">Back to sign-in</a></p>"
            );
            let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Err(err) => {
            tracing::error!(%err, "sign-in failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "sign-in is not possible right now\n",
            )
                .into_response()
        }
    }
}

/// `POST /logout`: ends the session and forgets the cookie.
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(session) = session_from(&headers, cookie_name(&auth)) {
        if let Err(err) = auth.logout(&session).await {
            tracing::error!(%err, "ending a session failed");
        }
    }
    let mut response = see_other(LOGIN_PATH);
    let mut gone = session_cookie(&auth, String::new());
    gone.make_removal();
    set_cookie(&mut response, gone);
    response
}

/// Lets through requests with a valid session or API token whose role allows what they ask
/// ([`policy::needed`]; noting who it is for the handlers), and the few routes that are
/// public; redirects page loads to the login page and answers anything else with 401, or 403
/// when the role falls short.
pub async fn require_session(
    State(auth): State<Auth>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let public = is_public(path);
    // Public routes do not need to know who is asking (the browser sends the cookie with every
    // asset too), except the login page, which sends a signed-in person on.
    let login_page = path == LOGIN_PATH && request.method() == Method::GET;
    // A browser's CORS preflight for the API carries no credentials by design; the CORS layer
    // answers it (or nothing does: 405).
    let preflight = request.method() == Method::OPTIONS && path.starts_with(crate::paths::API_V1);
    if (public && !login_page) || preflight {
        return next.run(request).await;
    }
    let signed_in = match who_is_asking(&auth, request.headers()).await {
        Ok(signed_in) => signed_in,
        Err(err) => {
            tracing::error!(%err, "checking a session failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response();
        }
    };
    let by_token = matches!(
        signed_in,
        Some(SignedIn {
            credential: Credential::ApiToken(_),
            ..
        })
    );
    match signed_in {
        // A signed-in person asking for the login page goes where they were going.
        // (The page reads `next` the same way, with `Route::parse`.)
        Some(_) if login_page => {
            let query = request.uri().query().unwrap_or_default();
            match app::links::Route::parse(path, query) {
                app::links::Route::Login { next, .. } => see_other(safe_next(&next)),
                _ => see_other("/"),
            }
        }
        // A browser's cookie goes with any request, so a POST must say it comes from a page;
        // a bearer token is sent only by a program that holds it.
        Some(_) if changes(request.method()) && !by_token && !from_a_page(&request) => {
            tracing::warn!(
                path,
                "refused a signed-in POST that says nothing of where it came from"
            );
            (
                StatusCode::FORBIDDEN,
                "a request that changes something must come from the dashboard's page (Origin)\n",
            )
                .into_response()
        }
        Some(signed_in) => {
            let action = policy::needed(request.method(), path);
            if !signed_in.role.may(action) {
                tracing::info!(user = %signed_in.user, role = %signed_in.role, ?action, path, "refused: the role does not allow it");
                return forbidden(&request, signed_in.role);
            }
            request.extensions_mut().insert(signed_in);
            next.run(request).await
        }
        None if public => next.run(request).await,
        None if wants_page(&request) => {
            let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            see_other(&format!("{LOGIN_PATH}?next={}", url_encode(target)))
        }
        None => json_error(StatusCode::UNAUTHORIZED, &AppError::SignedOut),
    }
}

/// The session cookie's or the bearer token's owner, if either is valid. A bearer token that
/// is not a valid API token counts as nobody (401), even with a cookie beside it.
async fn who_is_asking(
    auth: &Auth,
    headers: &HeaderMap,
) -> Result<Option<SignedIn>, super::AuthError> {
    if let Some(bearer) = bearer_from(headers) {
        return Ok(auth
            .api_principal(bearer)
            .await?
            .map(|(Principal { user, role }, id)| SignedIn {
                user,
                role,
                credential: Credential::ApiToken(id),
            }));
    }
    let Some(session) = session_from(headers, cookie_name(auth)) else {
        return Ok(None);
    };
    Ok(auth
        .session_principal(&session)
        .await?
        .map(|Principal { user, role }| SignedIn {
            user,
            role,
            credential: Credential::Session(session),
        }))
}

fn bearer_from(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// 403: a short page for a person's browser, the error as JSON for everything else.
fn forbidden(request: &Request<Body>, role: app::model::Role) -> Response {
    let why = format!("a {role} may not do this");
    if wants_page(request) {
        let body = format!(
            "<!DOCTYPE html><title>Not allowed</title><p>Your role ({role}) does not allow \
             this page.</p><p><a href=\"/\">Back to the dashboard</a></p>"
        );
        let mut response = (StatusCode::FORBIDDEN, body).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return response;
    }
    json_error(StatusCode::FORBIDDEN, &AppError::Forbidden(why))
}

/// An error as the server functions send it (the pages decode it into [`AppError`]).
fn json_error(status: StatusCode, error: &AppError) -> Response {
    let body = serde_json::to_string(error).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Routes anyone may reach: the login page and its form, signing out (which without a session
/// just goes to the login page), the REST API's description (no data), the health check (ok / not ok), the static assets it needs (the bundle is the same for
/// everyone and holds no data), and the device endpoint, which checks device tokens itself.
fn is_public(path: &str) -> bool {
    path == LOGIN_PATH
        || path == crate::paths::API_OPENAPI
        || path == crate::paths::API_DOCS
        || path == LOGOUT_PATH
        || path == crate::paths::DEVICE_SOCKET
        || path == crate::paths::HEALTH
        || PWA_FILES.contains(&path)
        || path.starts_with("/pkg/")
}

/// Whether a request may change something (everything but reading).
fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What a phone needs to install the dashboard and to show the offline page: the same for
/// everyone, no data.
const PWA_FILES: [&str; 7] = [
    "/favicon.svg",
    "/manifest.webmanifest",
    "/icon-192.png",
    "/icon-512.png",
    "/pwa.js",
    "/sw.js",
    "/offline.html",
];

/// A POST that says where it comes from: browsers send `Origin` with every POST (checked
/// against the dashboard's own by `security::check_origin`) and `Sec-Fetch-Site`. With the
/// `SameSite=Strict` cookie this is a second wall against requests forged by other sites.
fn from_a_page(request: &Request<Body>) -> bool {
    let headers = request.headers();
    headers.contains_key(axum::http::header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v == "same-origin")
}

/// A page load (a person's browser navigating) rather than a script's request.
fn wants_page(request: &Request<Body>) -> bool {
    let navigating = request
        .headers()
        .get("sec-fetch-mode")
        .is_some_and(|v| v == "navigate");
    let html = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    request.method() == Method::GET && (navigating || html)
}

fn session_from(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The session cookie's name: prefixed `__Host-` where cookies are `Secure` (HTTPS).
fn cookie_name(auth: &Auth) -> &'static str {
    if auth.config().secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

fn session_cookie(auth: &Auth, value: String) -> Cookie<'static> {
    let lifetime = auth.config().session_lifetime.as_secs() as i64;
    Cookie::build((cookie_name(auth), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(auth.config().secure_cookies)
        .max_age(cookie::time::Duration::seconds(lifetime))
        .build()
}

fn set_cookie(response: &mut Response, cookie: Cookie<'static>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Where to go after signing in: a path on this site, never another site (`//evil.example`
/// and `/\evil.example` are other sites to a browser), never back to the login page.
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control())
        && !next.starts_with(LOGIN_PATH);
    if local {
        next
    } else {
        "/"
    }
}

/// The address login throttling counts: the TCP peer, or with `--behind-proxy` and a peer on
/// this machine, the last address the proxy appended to `X-Forwarded-For`.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, behind_proxy: bool) -> IpAddr {
    if behind_proxy && peer.ip().is_loopback() {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(address) = forwarded {
            return address;
        }
    }
    peer.ip()
}

fn url_encode(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/devices/7?window=1h"), "/devices/7?window=1h");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/login?next=/",
            "/\n",
            "devices",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; iothub_session=abc; b=2"),
        );
        assert_eq!(
            session_from(&headers, SESSION_COOKIE).as_deref(),
            Some("abc")
        );
        assert_eq!(session_from(&headers, SECURE_SESSION_COOKIE), None);
        headers.insert(COOKIE, HeaderValue::from_static("iothub_session="));
        assert_eq!(session_from(&headers, SESSION_COOKIE), None);
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_local_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7"),
        );
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(
            client_address(local, &headers, true),
            "198.51.100.7".parse::<IpAddr>().unwrap(),
            "the proxy appended the last entry; earlier ones are the client's word"
        );
        assert_eq!(client_address(local, &headers, false), local.ip());
        assert_eq!(client_address(remote, &headers, true), remote.ip());
    }
}
