//! `/devices/:id`: one chart per field (live or a history window), the console, the command
//! form for this device, and what the device said about itself.

use crate::components::{
    CommandForm, Console, DeviceCharts, DeviceDetails, DeviceHeader, FirstPaint, RecentCommands,
    TopBar, WindowPicker,
};
use crate::live::use_live;
use crate::model::TimeWindow;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn DevicePage() -> AnyView {
    let live = use_live();
    let params = use_params_map();
    let query = use_query_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let window = Memo::new(move |_| {
        query.with(|q| TimeWindow::from_key(q.get("window").as_deref().unwrap_or_default()))
    });
    live.show(Some(id.get_untracked()));
    // Moving from one device page to another keeps this component: follow the address.
    Effect::new(move |_| live.show(Some(id.get())));

    view! {
        <TopBar />
        <main
            class="device-page"
            data-hydrated=move || live.hydrated.get().to_string()
            data-flushes=move || live.flushes.get()
        >
            <FirstPaint focus=Signal::derive(move || Some(id.get()))>
                <DeviceHeader id window />
                <div class="device-layout">
                    <div class="main-col">
                        <WindowPicker id window />
                        <DeviceCharts id window />
                        <Console id />
                    </div>
                    <aside class="side">
                        <CommandForm device=id />
                        <RecentCommands device=id />
                        <DeviceDetails id />
                    </aside>
                </div>
            </FirstPaint>
        </main>
    }
    .into_any()
}
