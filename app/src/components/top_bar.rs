use crate::components::ConnectionBadge;
use crate::live::use_live;
use crate::time::Zone;
use leptos::prelude::*;

/// The bar on every page: home link, online/offline counts, time-zone choice, stream status.
#[component]
pub fn TopBar() -> impl IntoView {
    let live = use_live();
    let online = move || live.state.with(|s| s.online_count());
    let offline = move || live.state.with(|s| s.devices.len() - s.online_count());
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
        </header>
    }
}
