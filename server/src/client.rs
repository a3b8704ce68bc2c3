//! The client side of signing in, for the benchmark tools that talk to a running hub over HTTP
//! as a browser would.

use crate::auth::web::{SECURE_SESSION_COOKIE, SESSION_COOKIE};
use anyhow::Context;

/// Posts the login form and returns the session as a `Cookie` header value
/// (`iothub_session=…`).
pub async fn sign_in(base: &url::Url, user: &str, password: &str) -> anyhow::Result<String> {
    // Not following the redirect: the cookie comes with the 303 itself.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = http
        .post(base.join(app::links::LOGIN_PAGE)?)
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .context("posting the login form")?;
    session_cookie(response.headers())
        .with_context(|| format!("signing in as {user} failed ({})", response.status()))
}

/// The session a login response sets, as a `Cookie` header value (`iothub_session=…`).
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| {
            pair.split_once('=')
                .is_some_and(|(name, _)| name == SESSION_COOKIE || name == SECURE_SESSION_COOKIE)
        })
        .map(str::to_string)
}
