use crate::api::send_command;
use crate::components::shown_or;
use crate::live::use_live;
use crate::model::{CommandRequest, CommandTarget};
use crate::server_call::ServerCall;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// Send a command to one device or to all (the overview): the device picker lists the devices
/// the page knows, "All devices" picked at first.
#[component]
pub fn CommandForm() -> impl IntoView {
    let state = use_live().state;
    let device_ids = move || state.with(|s| s.devices.keys().cloned().collect::<Vec<_>>());
    let devices = view! {
        <For each=device_ids key=|id| id.clone() let:id>
            <option value=format!("device:{id}")>{id.clone()}</option>
        </For>
    };
    command_form("all".to_string(), devices)
}

/// The command form of a device page: to this device (picked at first) or to all. A fixed
/// choice rather than [`CommandForm`]'s live list (a device page knows no other device), which
/// keeps the list's keyed updating out of the device page's bundle.
#[component]
pub fn DeviceCommandForm(device: String) -> impl IntoView {
    let this = view! { <option value=format!("device:{device}")>{device.clone()}</option> };
    command_form(format!("device:{device}"), this)
}

/// Address picker (`devices` are its options after "All devices"), variable (suggested from
/// the device's declared commands), value, optional duration, and for one device how long the
/// command may wait if the device is asleep. Invalid input is refused here and nothing is sent;
/// the server checks again.
fn command_form(first_target: String, devices: impl IntoView + 'static) -> impl IntoView {
    let state = use_live().state;
    let target = RwSignal::new(first_target);
    let variable = RwSignal::new("LED".to_string());
    let value = RwSignal::new(String::new());
    let duration = RwSignal::new(String::new());
    // Milliseconds as text, as the select's option values; empty: do not wait.
    let queue = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let send = ServerCall::new();

    // The declared commands of the chosen device, for suggestions and range checks.
    let declared = move || {
        let id = target.get();
        let id = id.strip_prefix("device:")?.to_string();
        state.with(|s| {
            s.devices
                .get(&id)?
                .summary
                .as_ref()?
                .registration
                .as_ref()
                .map(|r| r.commands.clone())
        })
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let checked = CommandRequest::from_form(
            &target.get(),
            &variable.get(),
            &value.get(),
            &duration.get(),
            // Only a command to one device can wait; "All devices" leaves the choice disabled.
            &if target.get().starts_with("device:") {
                queue.get()
            } else {
                String::new()
            },
        )
        .and_then(|request| {
            let specs = match &request.target {
                CommandTarget::Device(_) => declared().unwrap_or_default(),
                CommandTarget::All => Vec::new(),
            };
            request.validate(specs.iter().find(|c| c.name == request.variable))?;
            Ok(request)
        });
        match checked {
            Ok(request) => {
                error.set(None);
                send.run(send_command(request));
            }
            Err(message) => error.set(Some(message)),
        }
    };
    let server_error = move || send.error();

    view! {
        <form class="command-form" on:submit=on_submit aria-label="Send a command" novalidate>
            <h2>"Send a command"</h2>
            <label>
                "Device"
                <select
                    name="target"
                    prop:value=move || target.get()
                    on:change=move |ev| target.set(event_target_value(&ev))
                >
                    <option value="all">"All devices"</option>
                    {devices}
                </select>
            </label>
            <label>
                "Variable"
                <input
                    name="variable"
                    list="declared-commands"
                    autocomplete="off"
                    prop:value=move || variable.get()
                    on:input=move |ev| variable.set(event_target_value(&ev))
                />
            </label>
            <datalist id="declared-commands">
                {move || {
                    declared()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| view! { <option value=c.name.clone()></option> })
                        .collect_view()
                }}
            </datalist>
            <label>
                "Value"
                <input
                    name="value"
                    inputmode="decimal"
                    autocomplete="off"
                    prop:value=move || value.get()
                    on:input=move |ev| value.set(event_target_value(&ev))
                />
            </label>
            <label>
                "Duration (ms)"
                <input
                    name="duration"
                    inputmode="numeric"
                    placeholder="optional"
                    autocomplete="off"
                    prop:value=move || duration.get()
                    on:input=move |ev| duration.set(event_target_value(&ev))
                />
            </label>
            <label>
                "If offline"
                <select
                    name="queue"
                    prop:value=move || queue.get()
                    on:change=move |ev| queue.set(event_target_value(&ev))
                    prop:disabled=move || !target.get().starts_with("device:")
                >
                    <option value="">"Fail at once"</option>
                    <option value="3600000">"Wait up to 1 hour"</option>
                    <option value="86400000">"Wait up to 1 day"</option>
                    <option value="604800000">"Wait up to 1 week"</option>
                </select>
            </label>
            <button type="submit">"Send"</button>
            <p class="form-error" role="alert">{move || error.get().or_else(server_error)}</p>
        </form>
    }
}

/// The newest commands and their live status (queued, pending, delivered, acked, timed out,
/// failed, expired);
/// on a device page, only those to `device`.
#[component]
pub fn RecentCommands(#[prop(optional, into)] device: Option<Signal<String>>) -> impl IntoView {
    const SHOWN: usize = 12;
    let state = use_live().state;
    let recent = Memo::new(move |_| {
        let device = device.map(|d| d.get());
        state.with(|s| {
            s.commands
                .iter()
                .rev()
                .filter(|c| device.as_ref().is_none_or(|d| &c.device_id == d))
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    view! {
        <section class="commands" aria-label="Recent commands">
            <h2>"Recent commands"</h2>
            {shown_or(
                move || recent.with(|r| !r.is_empty()),
                move || view! {
                <ul class="command-list">
                    <For each=move || recent.get() key=|c| (c.seq, c.status.label().to_string()) let:c>
                        <li data-seq=c.seq data-device-id=c.device_id.clone() data-status=c.status.label().to_string()>
                            <span class="command-text">
                                {format!("#{} {} → {}={}", c.seq, c.device_id, c.variable, c.value)}
                                {c.duration_ms.map(|d| format!(" for {d} ms"))}
                            </span>
                            <span class=format!("status {}", c.status.label().replace(' ', "-"))>
                                {c.status.label().to_string()}
                            </span>
                        </li>
                    </For>
                </ul>
                },
                || view! { <p class="empty">"None sent yet."</p> },
            )}
        </section>
    }
}
