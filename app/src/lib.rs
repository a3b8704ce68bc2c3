//! What the browser sees: the dashboard's pages, components and server functions, and the data
//! shapes shared with the server.
//!
//! # Layout
//! - [`model`]: the types that travel between server and browser (device summaries, readings,
//!   live events) and [`model::DashboardState`], the pure state machine the live stream drives.
//! - [`api`]: the `#[server]` functions the pages call. Under `ssr`, [`api::ssr::Hub`] is the
//!   small trait the server implements so this crate never depends on the server crate.
//! - [`chart`]: draws a series as SVG with `plotters` (same code on server and in the browser).
//! - [`live`]: the browser end of the live stream (connect, decode, coalesce, reconnect with
//!   backoff) and [`live::Live`], the signals every page shares.
//! - [`time`]: the time zone shown (UTC on the server, the reader's in the browser) and formats.
//! - [`links`]: addresses of pages and CSV downloads.
//! - `pages/` (`/` overview, `/devices/:id` device page, `/tokens` device tokens, `/login`)
//!   and `components/` (their pieces).

pub mod api;
pub mod bundle;
pub mod chart;
pub mod error;
pub mod links;
pub mod live;
#[cfg(feature = "ssr")]
mod live_stream;
pub mod model;
pub mod time;

mod components;
mod pages;

use leptos::either::EitherOf6;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use links::Route;

/// Name of the wasm/js/css bundle under `/pkg` (matches `name` in the workspace's leptos metadata).
pub const BUNDLE_NAME: &str = "iothub";
/// Where Leptos puts the server functions (`#[server]`'s default prefix); the REST API for
/// programs (`/api/v1/`) lives beside them.
pub const SERVER_FN_PREFIX: &str = "/api/";

/// The HTML document around the app; the server renders it for every page. `files` are the
/// bundle's names (see [`bundle`]).
pub fn shell(files: bundle::BundleFiles) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // Installable on a phone: "Add to home screen" opens the dashboard full screen.
                <link rel="manifest" href="/manifest.webmanifest" />
                <link rel="apple-touch-icon" href="/icon-192.png" />
                <meta name="theme-color" content="#2563eb" />
                <script src="/pwa.js" defer></script>
                <bundle::BundleTags files />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    let route = Route::current();
    // Every page but the login page shows live data (the login page has no session yet).
    match &route {
        Route::Login { .. } => {}
        Route::Device { id, .. } => {
            live::Live::provide(model::Scope::Device(id.clone()));
        }
        Route::Overview { query } => {
            live::Live::provide(model::Scope::Devices(query.clone()));
        }
        _ => {
            live::Live::provide(model::Scope::Fleet);
        }
    }
    let page = match route {
        Route::Overview { .. } => EitherOf6::A(view! { <pages::overview::OverviewPage /> }),
        Route::Device { id, window, fields } => {
            EitherOf6::B(view! { <pages::device::DevicePage id window fields /> })
        }
        Route::Tokens => EitherOf6::C(view! { <pages::tokens::TokensPage /> }),
        Route::Alarms => EitherOf6::F(view! { <pages::alarms::AlarmsPage /> }),
        Route::Login { failed, next } => {
            EitherOf6::D(view! { <pages::login::LoginPage failed next /> })
        }
        Route::NotFound => {
            #[cfg(feature = "ssr")]
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::NOT_FOUND);
            }
            EitherOf6::E(view! {
                <p class="not-found">"Page not found. " <a href="/">"To the overview"</a></p>
            })
        }
    };
    view! {
        <Title text="IoT Hub" />
        {page}
    }
}

/// The page's content security policy: its own scripts (the inline hydration scripts carry this
/// response's nonce), its own WebAssembly, styles, images and connections, and nothing from
/// anywhere else; no framing, no plugins, no `<base>` tricks. Style *attributes* are allowed:
/// plotters measures chart text in the browser with a styled `<span>`; style elements and
/// sheets from elsewhere are not.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    use http::header::{HeaderValue, CONTENT_SECURITY_POLICY};
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let nonce = leptos::nonce::use_nonce()
        .map(|n| format!(" 'nonce-{n}'"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; \
         style-src-attr 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(CONTENT_SECURITY_POLICY, value);
    }
}
