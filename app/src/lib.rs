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
pub mod page_data;
pub mod server_call;
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
                <bundle::BundleTags files page=Route::current().page() />
                <page_data::PageDataScript />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The whole app: the page the address names. The server renders every page through this; a
/// browser hydrates only its page's root (see [`hydrate`]), which renders the same markup.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    match Route::current() {
        Route::Overview { .. } => EitherOf6::A(roots::overview()),
        Route::Device { .. } => EitherOf6::B(roots::device()),
        Route::Tokens => EitherOf6::C(roots::tokens()),
        Route::Alarms => EitherOf6::D(roots::alarms()),
        Route::Login { failed, next } => EitherOf6::E(view! {
            <Title text="IoT Hub" />
            <pages::login::LoginPage failed next />
        }),
        Route::NotFound => EitherOf6::F(roots::not_found()),
    }
}

/// The pages that run code in the browser. Each has a bundle of its own (`frontend`'s features,
/// `scripts/build-site.sh`), so a page downloads the code it runs and no other page's; the
/// sign-in and not-found pages are plain HTML and load none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Page {
    Overview,
    Device,
    Tokens,
    Alarms,
}

impl Page {
    pub const ALL: [Page; 4] = [Page::Overview, Page::Device, Page::Tokens, Page::Alarms];

    /// The name in bundle file names and in `pkg/bundle.txt`.
    pub fn name(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Device => "device",
            Page::Tokens => "tokens",
            Page::Alarms => "alarms",
        }
    }

    pub fn from_name(name: &str) -> Option<Page> {
        Page::ALL.into_iter().find(|page| page.name() == name)
    }
}

/// Each page's root: the live signals for its scope, its title and the page. Plain functions
/// rather than branches of one `match`, so that a page's bundle holds its own root only.
mod roots {
    use super::*;

    /// The live signals for the page's scope (see [`Route::scope`]).
    fn provide_live(route: &Route) {
        live::Live::provide(route.scope().unwrap_or(model::Scope::Fleet));
    }

    pub fn overview() -> impl IntoView {
        provide_live(&Route::current());
        view! {
            <Title text="IoT Hub" />
            <pages::overview::OverviewPage />
        }
    }

    pub fn device() -> impl IntoView {
        let route = Route::current();
        provide_live(&route);
        let (id, window, fields) = match route {
            Route::Device { id, window, fields } => (id, window, fields),
            _ => Default::default(),
        };
        view! {
            <Title text="IoT Hub" />
            <pages::device::DevicePage id window fields />
        }
    }

    pub fn tokens() -> impl IntoView {
        provide_live(&Route::current());
        view! {
            <Title text="IoT Hub" />
            <pages::tokens::TokensPage />
        }
    }

    pub fn alarms() -> impl IntoView {
        provide_live(&Route::current());
        view! {
            <Title text="IoT Hub" />
            <pages::alarms::AlarmsPage />
        }
    }

    pub fn not_found() -> impl IntoView {
        #[cfg(feature = "ssr")]
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
        view! {
            <Title text="IoT Hub" />
            <p class="not-found">"Page not found. " <a href="/">"To the overview"</a></p>
        }
    }
}

/// Hydrating a server-rendered page in the browser: `frontend` calls the one its bundle is
/// built for, or [`hydrate::any`] in a bundle for every page (what `cargo leptos` builds).
#[cfg(feature = "hydrate")]
pub mod hydrate {
    use super::*;

    /// Hydrates the body with `root`, given the data the server drew the page with.
    fn mount<V: IntoView + 'static>(root: fn() -> V) {
        let data = page_data::PageData::from_document();
        leptos::mount::hydrate_body(move || {
            if let Some(data) = data {
                provide_context(data);
            }
            provide_meta_context();
            root()
        });
    }

    /// Whichever page the address names.
    pub fn any() {
        mount(App);
    }

    pub fn overview() {
        mount(roots::overview);
    }

    pub fn device() {
        mount(roots::device);
    }

    pub fn tokens() {
        mount(roots::tokens);
    }

    pub fn alarms() {
        mount(roots::alarms);
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
