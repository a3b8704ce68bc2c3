use leptos::prelude::*;

/// "online" or "offline", for a device card and the device page's heading.
#[component]
pub fn OnlineBadge(#[prop(into)] online: Signal<bool>) -> impl IntoView {
    view! {
        <span class="badge" class:online=online class:offline=move || !online.get()>
            {move || if online.get() { "online" } else { "offline" }}
        </span>
    }
}
