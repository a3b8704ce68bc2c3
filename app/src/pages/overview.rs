//! `/`: the alarms up, a card per device (sorted and filtered), the command form and recent
//! commands.

use crate::components::{
    first_paint, ActiveAlarms, CommandForm, DeviceCard, RecentCommands, TopBar,
};
use crate::live::use_live;
use crate::model::{DeviceOrder, Permission};
use leptos::either::Either;
use leptos::prelude::*;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let live = use_live();

    let filter = RwSignal::new(String::new());
    let order = RwSignal::new(DeviceOrder::Name);
    let ids = Memo::new(move |_| {
        let (filter, order) = (filter.get(), order.get());
        live.state.with(|s| s.device_ids(&filter, order))
    });
    let any_device = move || live.state.with(|s| !s.devices.is_empty());

    view! {
        <TopBar />
        <main
            class="overview"
            data-hydrated=move || live.hydrated.get().to_string()
            data-flushes=move || live.flushes.get()
        >
            {first_paint(
                None,
                move || view! {
                <ActiveAlarms />
                <section class="devices" aria-label="Devices">
                    <div class="toolbar">
                        <input
                            type="search"
                            name="filter"
                            aria-label="Filter devices by id or name"
                            placeholder="Filter by id or name"
                            autocomplete="off"
                            prop:value=move || filter.get()
                            on:input=move |ev| filter.set(event_target_value(&ev))
                        />
                        <label>
                            "Sort"
                            <select
                                name="order"
                                aria-label="Sort devices"
                                prop:value=move || order.get().key()
                                on:change=move |ev| {
                                    order.set(DeviceOrder::from_key(&event_target_value(&ev)))
                                }
                            >
                                {DeviceOrder::ALL
                                    .into_iter()
                                    .map(|o| view! { <option value=o.key()>{o.label()}</option> })
                                    .collect_view()}
                            </select>
                        </label>
                    </div>
                    <Show
                        when=move || ids.with(|ids| !ids.is_empty())
                        fallback=move || {
                            if any_device() {
                                Either::Left(view! { <p class="empty">"No device matches the filter."</p> })
                            } else {
                                Either::Right(
                                view! {
                                    <p class="empty">
                                        "No devices yet. Point a device at " <code>"/ws/device"</code>
                                        " and send a line such as " <code>"7,42,23.5"</code> "."
                                    </p>
                                })
                            }
                        }
                    >
                        <ul class="cards">
                            <For each=move || ids.get() key=|id| id.clone() let:id>
                                <DeviceCard id />
                            </For>
                        </ul>
                    </Show>
                </section>
                <aside class="side">
                    <Show when=move || live.may(Permission::Control)>
                        <CommandForm />
                    </Show>
                    <RecentCommands />
                </aside>
                },
            )}
        </main>
    }
}
