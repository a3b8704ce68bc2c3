use crate::live::LinkStatus;
use leptos::prelude::*;

/// Whether the live stream is connected; it reconnects by itself.
#[component]
pub fn ConnectionBadge(status: RwSignal<LinkStatus>) -> impl IntoView {
    view! {
        <span
            class="link-badge"
            role="status"
            aria-label="Live updates"
            data-status=move || status.get().label()
        >
            {move || status.get().label()}
        </span>
    }
}
