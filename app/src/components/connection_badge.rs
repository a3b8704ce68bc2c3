use crate::live::use_live;
use leptos::prelude::*;

/// Whether the live stream is connected; it reconnects by itself.
#[component]
pub fn ConnectionBadge() -> impl IntoView {
    let status = use_live().status;
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
