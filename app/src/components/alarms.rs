//! The alarms that are up, live: at the top of the overview (all of them), the device page
//! (its own) and the Alarms page, each with who acknowledged it or a button to do so.

use crate::api::acknowledge_alarm;
use crate::components::shown;
use crate::links::{device_page, ALARMS_PAGE};
use crate::live::use_live;
use crate::model::{Alarm, Permission, TimeWindow};
use crate::server_call::ServerCall;
use crate::time::format_value;
use leptos::prelude::*;

/// The alarms up, oldest first; on a device page (`device`), only that device's. Nothing at all
/// while none is up.
#[component]
pub fn ActiveAlarms(#[prop(optional, into)] device: Option<String>) -> impl IntoView {
    let live = use_live();
    let alarms = Memo::new(move |_| {
        live.state
            .with(|s| s.alarms_for(device.as_deref()).cloned().collect::<Vec<_>>())
    });
    let acknowledge = ServerCall::new();
    let error = move || acknowledge.error();
    let row = move |alarm: Alarm| {
        let id = alarm.id;
        let value = alarm
            .raised_value
            .map(|v| format!(" at {}", format_value(v)));
        let acked = match (&alarm.acked_by, alarm.acked_ms) {
            (Some(by), Some(at)) => Some(format!("acknowledged by {by} {}", live.age(at))),
            _ => None,
        };
        let may_ack = acked.is_none() && live.may(Permission::Control);
        let is_acked = acked.is_some();
        view! {
            <li class="alarm" class:acked=is_acked data-alarm-id=id data-rule-id=alarm.rule_id>
                <span class="alarm-text">
                    <strong>{alarm.rule_name.clone()}</strong>
                    " on "
                    <a href=device_page(&alarm.device_id, TimeWindow::Live)>
                        {alarm.device_id.clone()}
                    </a>
                    {value}
                    ", raised "
                    {move || live.age(alarm.raised_ms)}
                </span>
                {acked.map(|a| view! { <span class="acked-by">{a}</span> })}
                {may_ack
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="ack"
                                on:click=move |_| {
                                    acknowledge.run(acknowledge_alarm(id));
                                }
                            >
                                "Acknowledge"
                            </button>
                        }
                    })}
            </li>
        }
    };
    view! {
        {shown(
            move || alarms.with(|a| !a.is_empty()),
            move || view! {
            <section class="alarms-up" aria-label="Alarms up" role="alert">
                <h2>
                    <a href=ALARMS_PAGE>
                        {move || match alarms.with(Vec::len) {
                            1 => "1 alarm up".to_string(),
                            n => format!("{n} alarms up"),
                        }}
                    </a>
                </h2>
                <ul>
                    // Keyed by what changes: an acknowledgement redraws the row.
                    <For
                        each=move || alarms.get()
                        key=|a| (a.id, a.acked_ms)
                        children=row
                    />
                </ul>
                <p class="form-error" role="alert">{error}</p>
            </section>
            },
        )}
    }
}
