use crate::api::send_console_line;
use crate::chart::format_utc_time;
use crate::model::{DashboardState, Direction};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// A device's raw lines in and out, newest at the bottom, and a box to send a raw line.
#[component]
pub fn Console(state: RwSignal<DashboardState>, device_id: String) -> AnyView {
    let id = device_id.clone();
    let lines = move || {
        state.with(|s| {
            s.devices
                .get(&id)
                .map(|d| d.console.iter().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    let draft = RwSignal::new(String::new());
    let send = Action::new(|(device, line): &(String, String)| {
        let (device, line) = (device.clone(), line.clone());
        async move { send_console_line(device, line).await }
    });
    let target = device_id.clone();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let line = draft.get();
        if !line.trim().is_empty() {
            send.dispatch((target.clone(), line));
            draft.set(String::new());
        }
    };
    let failed = move || {
        send.value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    };

    view! {
        <section class="console" aria-label="Console">
            <h3>"Console"</h3>
            <ol class="console-lines">
                {move || {
                    lines()
                        .into_iter()
                        .map(|line| {
                            let (class, arrow) = match line.direction {
                                Direction::In => ("in", "←"),
                                Direction::Out => ("out", "→"),
                                Direction::Error => ("error", "✕"),
                            };
                            view! {
                                <li class=class>
                                    <time>{format_utc_time(line.ms)}</time>
                                    " " {arrow} " " <span class="text">{line.text}</span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
            <form class="console-send" on:submit=on_submit>
                <input
                    aria-label="Line to send to the device"
                    autocomplete="off"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                />
                <button type="submit">"Send line"</button>
            </form>
            <p class="form-error" role="alert">{failed}</p>
        </section>
    }
    .into_any()
}
