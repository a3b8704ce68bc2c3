use crate::api::send_console_line;
use crate::components::shown;
use crate::live::use_live;
use crate::model::{ConsoleLine, Direction, Permission};
use crate::server_call::ServerCall;
use leptos::ev::SubmitEvent;
use leptos::html::Ol;
use leptos::prelude::*;

/// A device's raw lines in and out, newest at the bottom (it follows new lines unless the
/// reader scrolled up), with pause and clear, and a box to send a raw line.
#[component]
pub fn Console(#[prop(into)] id: Signal<String>) -> impl IntoView {
    let live = use_live();
    // While paused, the lines as they were when the reader pressed pause.
    let frozen = RwSignal::new(None::<Vec<ConsoleLine>>);
    // Lines at or before this time were cleared away.
    let cleared_through = RwSignal::new(None::<i64>);
    let lines = Memo::new(move |_| {
        if let Some(frozen) = frozen.get() {
            return frozen;
        }
        let cleared = cleared_through.get();
        live.state.with(|s| {
            s.devices
                .get(&id.get())
                .map(|d| {
                    d.console
                        .iter()
                        .filter(|l| cleared.is_none_or(|t| l.ms > t))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        })
    });
    let paused = move || frozen.with(Option::is_some);
    let toggle_pause = move |_| {
        if paused() {
            frozen.set(None);
        } else {
            frozen.set(Some(lines.get_untracked()));
        }
    };
    let clear = move |_| {
        let newest = lines.with_untracked(|l| l.last().map(|l| l.ms));
        if newest.is_some() {
            cleared_through.set(newest);
        }
        if paused() {
            frozen.set(Some(Vec::new()));
        }
    };

    // Follow the newest line, unless the reader scrolled up to read something.
    let list = NodeRef::<Ol>::new();
    let follow = StoredValue::new(true);
    let on_scroll = move |_| {
        if let Some(list) = list.get_untracked() {
            let at_bottom = list.scroll_top() + list.client_height() >= list.scroll_height() - 8;
            follow.set_value(at_bottom);
        }
    };

    let draft = RwSignal::new(String::new());
    let send = ServerCall::new();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let line = draft.get();
        if !line.trim().is_empty() {
            send.run(send_console_line(id.get_untracked(), line));
            draft.set(String::new());
        }
    };
    let failed = move || send.error();

    view! {
        <section class="console" aria-label="Console">
            <div class="console-head">
                <h3>"Console"</h3>
                <button
                    type="button"
                    class="console-pause"
                    aria-pressed=move || paused().to_string()
                    on:click=toggle_pause
                >
                    {move || if paused() { "Resume" } else { "Pause" }}
                </button>
                <button type="button" class="console-clear" on:click=clear>
                    "Clear"
                </button>
            </div>
            <ol class="console-lines" node_ref=list on:scroll=on_scroll data-paused=move || paused().to_string()>
                {move || {
                    let zone = live.zone.get();
                    // Scroll once the new lines are in the page (only in the browser).
                    if follow.get_value() && live.hydrated.get_untracked() {
                        request_animation_frame(move || {
                            if let Some(list) = list.get_untracked() {
                                list.set_scroll_top(list.scroll_height());
                            }
                        });
                    }
                    lines
                        .get()
                        .into_iter()
                        .map(|line| {
                            let (class, arrow) = match line.direction {
                                Direction::In => ("in", "←"),
                                Direction::Out => ("out", "→"),
                                Direction::Error => ("error", "✕"),
                            };
                            view! {
                                <li class=class>
                                    <time>{zone.clock(line.ms)}</time>
                                    " " {arrow} " " <span class="text">{line.text}</span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
            {shown(
                move || live.may(Permission::Control),
                move || {
                    view! {
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
                    }
                },
            )}
        </section>
    }
}
