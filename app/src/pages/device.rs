//! `/devices/<id>`: one chart per field (live or a history window), the console, the command
//! form for this device, and what the device said about itself; its alarms up on top.

use crate::components::{
    first_paint, shown, ActiveAlarms, Console, DeviceCharts, DeviceCommandForm, DeviceControls,
    DeviceDetails, DeviceHeader, RecentCommands, RemoveDevice, TopBar, WindowPicker,
};
use crate::live::use_live;
use crate::model::{Permission, TimeWindow};
use leptos::prelude::*;

#[component]
pub fn DevicePage(id: String, window: TimeWindow, fields: Vec<String>) -> impl IntoView {
    let live = use_live();
    let content = {
        let id = id.clone();
        move || {
            let fields = fields.clone();
            let id = id.clone();
            let (command_id, remove_id, controls_id) = (id.clone(), id.clone(), id.clone());
            view! {
                <DeviceHeader id=id.clone() window />
                <ActiveAlarms device=id.clone() />
                <div class="device-layout">
                    <div class="main-col">
                        <WindowPicker id=id.clone() window fields=fields.clone() />
                        <DeviceCharts id=id.clone() window fields=fields.clone() />
                        <Console id=id.clone() />
                    </div>
                    <aside class="side">
                        <DeviceControls id=controls_id.clone() />
                        {shown(
                            move || live.may(Permission::Control),
                            move || view! { <DeviceCommandForm device=command_id.clone() /> },
                        )}
                        <RecentCommands device=id.clone() />
                        <DeviceDetails id=id.clone() />
                        {shown(
                            move || live.may(Permission::Administer),
                            move || view! { <RemoveDevice id=remove_id.clone() /> },
                        )}
                    </aside>
                </div>
            }
        }
    };
    view! {
        <TopBar />
        <main
            class="device-page"
            data-hydrated=move || live.hydrated.get().to_string()
            data-flushes=move || live.flushes.get()
        >
            {first_paint(content)}
        </main>
    }
}
