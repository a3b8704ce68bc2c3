use crate::components::shown;
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
    // The whole fleet's, whatever the page shows.
    let online = move || live.state.with(|s| s.fleet.online);
    let offline = move || {
        live.state
            .with(|s| s.fleet.known.saturating_sub(s.fleet.online))
    };
    let alarms_up = move || live.state.with(|s| s.alarms.len());
    let menu_open = RwSignal::new(false);
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
                <span class="sep">" · "</span>
                <span class="offline-count">{offline} " offline"</span>
            </span>
            <ConnectionBadge />
            // Always in sight, also on a phone: whether an alarm is up.
            <a href=ALARMS_PAGE class="alarms-link" class:up=move || { alarms_up() > 0 }>
                "Alarms"
                {move || (alarms_up() > 0).then(|| format!(" ({})", alarms_up()))}
            </a>
            // On a phone the rest folds behind a menu button, so the bar is one row; on wider
            // screens the button is hidden and the rest is laid out inline.
            <button
                type="button"
                class="menu-button"
                aria-label="Menu"
                aria-expanded=move || menu_open.get().to_string()
                on:click=move |_| menu_open.update(|open| *open = !*open)
            >
                "☰"
            </button>
            <div class="more" class:open=move || menu_open.get()>
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
                <nav class="account" aria-label="Account">
                    {shown(
                        move || live.may(Permission::Administer),
                        || view! { <a href=TOKENS_PAGE>"Tokens"</a> },
                    )}
                    <span class="user" data-testid="user">
                        {move || live.viewer.with(|v| v.as_ref().map(|v| v.user.clone()))}
                    </span>
                    // A form, not a link: signing out changes state, so it is a POST (and works
                    // without the WebAssembly).
                    <form method="post" action=LOGOUT>
                        <button type="submit" class="link-button">"Sign out"</button>
                    </form>
                </nav>
            </div>
        </header>
        {move || {
            live.state
                .with(|s| s.fleet.cut_off)
                .then(|| {
                    view! {
                        <p class="banner warning" role="alert" data-testid="cut-off">
                            "This hub is cut off from the other hubs (NATS): their devices are "
                            "shown as they were last told."
                        </p>
                    }
                })
        }}
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
