//! The device page's "Remove this device…": folded away until opened, then two choices, with
//! or without its readings. Done, the browser goes to the overview.

use crate::api::remove_device;
use leptos::prelude::*;

#[component]
pub fn RemoveDevice(id: String) -> impl IntoView {
    let remove = Action::new(move |keep_readings: &bool| {
        let (id, keep_readings) = (id.clone(), *keep_readings);
        async move { remove_device(id, keep_readings).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = remove.value().get() {
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href("/");
        }
    });
    let error = move || {
        remove
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    };
    view! {
        <details class="remove-device">
            <summary>"Remove this device…"</summary>
            <p>
                "It is disconnected, its tokens are revoked and it leaves the dashboard (it comes "
                "back if it sends readings again)."
            </p>
            <div class="remove-choices">
                <button
                    type="button"
                    data-keep-readings="true"
                    disabled=move || remove.pending().get()
                    on:click=move |_| {
                        remove.dispatch(true);
                    }
                >
                    "Remove, keep its readings"
                </button>
                <button
                    type="button"
                    class="danger"
                    data-keep-readings="false"
                    disabled=move || remove.pending().get()
                    on:click=move |_| {
                        remove.dispatch(false);
                    }
                >
                    "Remove with all its readings"
                </button>
            </div>
            <p class="form-error" role="alert">{error}</p>
        </details>
    }
}
