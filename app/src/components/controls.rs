//! Switches and sliders for a device's declared commands (`{"register":{"commands":[{"name":
//! "LED","min":0,"max":1}]}}`): a 0–1 command gets a switch, a wider range a slider with the
//! declared step and unit. A control shows the value sent while the device has not
//! acknowledged it ("waiting…"), and goes back to the last acknowledged value, saying so, when
//! no acknowledgement comes. Operators and admins only (the server checks again).

use crate::api::send_command;
use crate::components::shown;
use crate::live::use_live;
use crate::model::{
    control_state, parse_decimal, CommandRequest, CommandSpec, CommandTarget, ControlKind,
    Permission,
};
use crate::server_call::ServerCall;
use crate::time::format_value;
use leptos::either::Either;
use leptos::prelude::*;

/// Every control of device `id`, if it declared commands with a range.
#[component]
pub fn DeviceControls(id: String) -> impl IntoView {
    let live = use_live();
    let specs = {
        let id = id.clone();
        Memo::new(move |_| {
            live.state.with(|s| {
                s.devices
                    .get(&id)
                    .and_then(|d| d.summary.as_ref()?.registration.as_ref())
                    .map(|r| {
                        r.commands
                            .iter()
                            .filter(|c| c.control().is_some())
                            .cloned()
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
        })
    };
    let when = move || live.may(Permission::Control) && specs.with(|s| !s.is_empty());
    view! {
        {shown(
            when,
            move || {
                let id = id.clone();
                view! {
                    <div class="controls" role="group" aria-label="Controls">
                        {move || {
                            specs
                                .get()
                                .into_iter()
                                .map(|spec| view! { <Control device=id.clone() spec /> })
                                .collect_view()
                        }}
                    </div>
                }
            },
        )}
    }
}

#[component]
fn Control(device: String, spec: CommandSpec) -> impl IntoView {
    let live = use_live();
    let name = spec.name.clone();
    let state = {
        let (device, name) = (device.clone(), name.clone());
        Memo::new(move |_| {
            live.state
                .with(|s| control_state(&s.commands, &device, &name))
        })
    };
    let call = ServerCall::new();
    let send = {
        let (device, name) = (device.clone(), name.clone());
        move |value: f64| {
            call.run(send_command(CommandRequest {
                target: CommandTarget::Device(device.clone()),
                variable: name.clone(),
                value,
                duration_ms: None,
                queue_ms: None,
            }))
        }
    };
    let waiting = move || state.with(|s| s.pending.is_some());
    let status = move || {
        if waiting() {
            return Some("waiting for the device…".to_string());
        }
        let refused = call.error();
        state
            .with(|s| s.failed.clone())
            .map(|why| format!("not confirmed ({why}): back to the last confirmed value"))
            .or(refused)
    };
    let unit = spec.unit.clone().unwrap_or_default();
    let control = match spec.control() {
        Some(ControlKind::Switch) => {
            let on = move || state.with(|s| s.shown().is_some_and(|v| v >= 0.5));
            Some(Either::Left(view! {
                <button
                    type="button"
                    class="switch"
                    role="switch"
                    aria-label=name.clone()
                    aria-checked=move || on().to_string()
                    aria-busy=move || waiting().to_string()
                    on:click=move |_| {
                        send(if on() { 0.0 } else { 1.0 });
                    }
                >
                    <span class="knob"></span>
                </button>
            }))
        }
        Some(ControlKind::Slider { min, max, step }) => {
            let value = move || state.with(|s| s.shown().unwrap_or(min));
            let text = {
                let unit = unit.clone();
                move || {
                    format!("{} {unit}", format_value(value()))
                        .trim_end()
                        .to_string()
                }
            };
            Some(Either::Right(view! {
                <input
                    type="range"
                    class="slider"
                    aria-label=name.clone()
                    min=min
                    max=max
                    step=step
                    prop:value=move || value().to_string()
                    aria-valuetext=text.clone()
                    aria-busy=move || waiting().to_string()
                    on:change=move |ev| {
                        if let Some(v) = parse_decimal(&event_target_value(&ev)) {
                            send(v);
                        }
                    }
                />
                <output>{text}</output>
            }))
        }
        None => None,
    };
    view! {
        <div class="control" class:waiting=waiting data-control=name.clone()>
            <span class="control-name">{name.clone()}</span>
            {control}
            <span class="control-status" role="status">{status}</span>
        </div>
    }
}
