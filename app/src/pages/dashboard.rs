//! The overview: device list, the selected device's live charts, and the stream's status.

use crate::api::load_dashboard;
use crate::components::{CommandForm, ConnectionBadge, DeviceList, DevicePanel, RecentCommands};
use crate::live::{self, LinkStatus};
use crate::model::DashboardState;
use leptos::prelude::*;

#[component]
pub fn DashboardPage() -> impl IntoView {
    // Rendered on the server with real data; the browser then takes over with the live stream.
    let first_paint = Resource::new(|| (), |_| load_dashboard());
    let state = RwSignal::new(DashboardState::default());
    let status = RwSignal::new(LinkStatus::Connecting);
    let selected = RwSignal::new(None::<String>);
    let hydrated = RwSignal::new(false);

    // Effects run only in the browser, once the page is hydrated.
    Effect::new(move |_| {
        hydrated.set(true);
        live::start(state, status);
    });

    let online = move || state.with(|s| s.online_count());
    let total = move || state.with(|s| s.devices.len());

    view! {
        <header class="topbar">
            <h1>"IoT Hub"</h1>
            <span class="counts" data-testid="device-counts">
                {online} " of " {total} " online"
            </span>
            <ConnectionBadge status />
        </header>
        <main class="dashboard" data-hydrated=move || hydrated.get().to_string()>
            <Suspense fallback=|| view! { <p class="loading">"Loading devices…"</p> }>
                {move || Suspend::new(async move {
                    match first_paint.await {
                        Ok(snapshot) => {
                            // The live stream may already have delivered something newer.
                            state.update_untracked(|s| {
                                if s.seq == 0 && s.devices.is_empty() {
                                    *s = snapshot.into();
                                }
                            });
                            view! {
                                <div class="side">
                                    <DeviceList state selected />
                                    <CommandForm state />
                                    <RecentCommands state />
                                </div>
                                <DevicePanel state selected />
                            }
                                .into_any()
                        }
                        Err(err) => {
                            view! { <p class="error" role="alert">{err.to_string()}</p> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}
