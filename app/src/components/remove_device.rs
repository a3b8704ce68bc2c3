//! The device page's "Remove this device…": folded away until opened, then two choices, with
//! or without its readings. A plain form (no WebAssembly needed, and none shipped for it):
//! the server removes the device and sends the browser to the overview.

use crate::links;
use leptos::prelude::*;

#[component]
pub fn RemoveDevice(id: String) -> impl IntoView {
    view! {
        <details class="remove-device">
            <summary>"Remove this device…"</summary>
            <p>
                "It is disconnected, its tokens are revoked and it leaves the dashboard (it comes "
                "back if it sends readings again)."
            </p>
            <form method="post" action=links::remove_device(&id) class="remove-choices">
                <button type="submit" name="keep_readings" value="true">
                    "Remove, keep its readings"
                </button>
                <button type="submit" name="keep_readings" value="false" class="danger">
                    "Remove with all its readings"
                </button>
            </form>
        </details>
    }
}
