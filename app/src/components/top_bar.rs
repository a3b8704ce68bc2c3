use crate::components::ConnectionBadge;
use crate::links::{ALARMS_PAGE, LOGOUT, TOKENS_PAGE};
use crate::live::use_live;
use crate::model::Permission;
use crate::time::Zone;
use leptos::prelude::*;

/// The bar on every page: home link, online/offline counts, time-zone choice, stream status,
/// alarms (how many are up), device tokens, who is signed in and signing out; below it, a warning while devices may
/// connect without a token.
#[component]
pub fn TopBar() -> impl IntoView {
    let live = use_live();
    let online = move || live.state.with(|s| s.online_count());
    let offline = move || live.state.with(|s| s.devices.len() - s.online_count());
    let alarms_up = move || live.state.with(|s| s.alarms.len());
    let on_zone = move |ev| {
        live.choose_zone(Zone::from_key(&event_target_value(&ev)).unwrap_or_default());
    };
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <h1>"IoT Hub"</h1>
            </a>
            <span class="counts" data-testid="device-counts">
                <span class="online-count">{online} " online"</span>
                " · "
                <span class="offline-count">{offline} " offline"</span>
            </span>
            <label class="zone-picker">
                "Times"
                <select
                    name="zone"
                    aria-label="Time zone"
                    prop:value=move || live.zone.get().key()
                    on:change=on_zone
                >
                    <option value="browser">"local"</option>
                    <option value="utc">"UTC"</option>
                </select>
            </label>
            <ConnectionBadge />
            <nav class="account" aria-label="Account">
                <a href=ALARMS_PAGE class="alarms-link" class:up=move || { alarms_up() > 0 }>
                    "Alarms"
                    {move || (alarms_up() > 0).then(|| format!(" ({})", alarms_up()))}
                </a>
                <Show when=move || live.may(Permission::Administer)>
                    <a href=TOKENS_PAGE>"Tokens"</a>
                </Show>
                <span class="user" data-testid="user">
                    {move || live.viewer.with(|v| v.as_ref().map(|v| v.user.clone()))}
                </span>
                // A form, not a link: signing out changes state, so it is a POST (and works
                // without the WebAssembly).
                <form method="post" action=LOGOUT>
                    <button type="submit" class="link-button">"Sign out"</button>
                </form>
            </nav>
        </header>
        {move || {
            live.viewer
                .with(|v| v.as_ref().is_some_and(|v| v.tokenless_devices))
                .then(|| {
                    view! {
                        <p class="banner warning" role="alert" data-testid="tokenless-warning">
                            "Devices may connect without a token (--allow-tokenless-devices): "
                            "anyone who can reach this hub can send readings as any device. "
                            "Use this only on a network you trust."
                        </p>
                    }
                })
        }}
    }
}
