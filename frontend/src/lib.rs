//! The browser entry point: hydrate the server-rendered page into the live app.
//!
//! Built once per page that runs in the browser (`--features overview`, `device`, `tokens` or
//! `alarms`; see `scripts/build-site.sh`): the entry then reaches that page's code only, and
//! the linker leaves the other pages out of its bundle. Without a page feature the bundle
//! hydrates whichever page it is loaded on (what `cargo leptos` builds).

#[cfg(any(
    all(
        feature = "overview",
        any(feature = "device", feature = "tokens", feature = "alarms")
    ),
    all(feature = "device", any(feature = "tokens", feature = "alarms")),
    all(feature = "tokens", feature = "alarms"),
))]
compile_error!("a bundle is built for one page: enable at most one of the page features");

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    #[cfg(feature = "overview")]
    app::hydrate::overview();
    #[cfg(feature = "device")]
    app::hydrate::device();
    #[cfg(feature = "tokens")]
    app::hydrate::tokens();
    #[cfg(feature = "alarms")]
    app::hydrate::alarms();
    #[cfg(not(any(
        feature = "overview",
        feature = "device",
        feature = "tokens",
        feature = "alarms"
    )))]
    app::hydrate::any();
}
