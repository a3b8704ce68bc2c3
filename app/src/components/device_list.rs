use crate::chart::{format_utc_time, format_value};
use crate::model::{DashboardState, DeviceSummary};
use leptos::prelude::*;

/// One row per known device: online badge, id, latest values, last seen. Clicking selects it.
#[component]
pub fn DeviceList(state: RwSignal<DashboardState>, selected: RwSignal<Option<String>>) -> AnyView {
    let summaries = Memo::new(move |_| {
        state.with(|s| {
            s.devices
                .values()
                .filter_map(|d| d.summary.clone())
                .collect::<Vec<_>>()
        })
    });

    view! {
        <section class="devices" aria-label="Devices">
            <Show
                when=move || summaries.with(|v| !v.is_empty())
                fallback=|| {
                    view! {
                        <p class="empty">
                            "No devices yet. Point a device at " <code>"/ws/device"</code>
                            " and send a line such as " <code>"7,42,23.5"</code> "."
                        </p>
                    }
                }
            >
                <ul class="device-list">
                    // Keyed on what changes, so a row is redrawn when its device changes.
                    <For
                        each=move || summaries.get()
                        key=|d| (d.id.clone(), d.online, d.readings, d.last_seen_ms)
                        let:device
                    >
                        <DeviceRow device selected />
                    </For>
                </ul>
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn DeviceRow(device: DeviceSummary, selected: RwSignal<Option<String>>) -> AnyView {
    let id = device.id.clone();
    let is_selected = {
        let id = id.clone();
        move || selected.with(|s| s.as_deref() == Some(id.as_str()))
    };
    let latest = device
        .latest
        .iter()
        .map(|f| format!("{} {}", f.field, format_value(f.value)))
        .collect::<Vec<_>>()
        .join(" · ");
    let (badge, badge_class) = if device.online {
        ("online", "badge online")
    } else {
        ("offline", "badge offline")
    };
    let select_id = id.clone();
    view! {
        <li class="device" class:selected=is_selected data-device-id=id.clone()>
            <button
                type="button"
                on:click=move |_| selected.set(Some(select_id.clone()))
                aria-label=format!("Show device {id}")
            >
                <span class=badge_class>{badge}</span>
                <span class="device-name">{id.clone()}</span>
                <span class="latest" data-testid="latest">{latest}</span>
                <span class="last-seen">
                    "last seen " {format_utc_time(device.last_seen_ms)} " UTC"
                </span>
            </button>
        </li>
    }
    .into_any()
}
