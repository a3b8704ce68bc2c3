//! `/alarms`: the alarms up (live, with acknowledge buttons), the rules the hub watches for
//! (admins create, edit and delete them here), the history of alarms with filters, and what
//! automations sent.

use crate::api::{
    create_alarm_rule, delete_alarm_rule, list_alarm_rules, list_alarms, list_automation_runs,
    update_alarm_rule,
};
use crate::components::{first_paint, shown, shown_or, ActiveAlarms, TopBar};
use crate::links::device_page;
use crate::live::use_live;
use crate::model::{Alarm, AlarmRule, AutomationRun, Permission, RuleForm, TimeWindow};
use crate::page_data::PageData;
use crate::time::format_value;
use leptos::either::Either;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

#[component]
pub fn AlarmsPage() -> impl IntoView {
    let live = use_live();
    view! {
        <TopBar />
        <main class="alarms-page" data-hydrated=move || live.hydrated.get().to_string()>
            // Rendered once the snapshot says who is signed in (and which rules exist), on the
            // server as in the browser, so that what an admin sees hydrates unchanged.
            {first_paint(|| view! {
                    <ActiveAlarms />
                    <Rules />
                    <History />
                    <Runs />
                },
            )}
        </main>
    }
}

/// The rules, and for admins the form that adds one and a button that deletes one.
#[component]
fn Rules() -> impl IntoView {
    let live = use_live();
    // The rules the page was drawn with; read again after each change.
    let rules = RwSignal::new(
        PageData::current()
            .ok()
            .and_then(|data| data.rules::<Vec<AlarmRule>>())
            .unwrap_or_default(),
    );
    let form = RwSignal::new(RuleForm {
        kind: "above".into(),
        devices: "*".into(),
        ..RuleForm::default()
    });
    let error = RwSignal::new(None::<String>);
    // The rule the form is editing, if any (else it makes a new one).
    let editing = RwSignal::new(None::<i64>);
    // After a change the list is read again.
    let reload = move || {
        leptos::task::spawn_local(async move {
            match list_alarm_rules().await {
                Ok(list) => rules.set(list),
                Err(err) => error.set(Some(err.to_string())),
            }
        })
    };
    let create = Action::new(|(id, rule): &(Option<i64>, crate::model::NewRule)| {
        let (id, rule) = (*id, rule.clone());
        async move {
            match id {
                Some(id) => update_alarm_rule(id, rule).await,
                None => create_alarm_rule(rule).await,
            }
        }
    });
    let delete = Action::new(|id: &i64| {
        let id = *id;
        async move { delete_alarm_rule(id).await }
    });
    Effect::new(move |_| match create.value().get() {
        Some(Ok(_)) => {
            form.update(|f| {
                f.name.clear();
                f.webhook_secret.clear();
            });
            editing.set(None);
            reload();
        }
        Some(Err(err)) => error.set(Some(err.to_string())),
        None => {}
    });
    Effect::new(move |_| match delete.value().get() {
        Some(Ok(())) => reload(),
        Some(Err(err)) => error.set(Some(err.to_string())),
        None => {}
    });
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let id = editing.get();
        let checked = match id {
            Some(_) => form.with(RuleForm::to_changed_rule),
            None => form.with(RuleForm::to_rule),
        };
        match checked {
            Ok(rule) => {
                error.set(None);
                create.dispatch((id, rule));
            }
            Err(why) => error.set(Some(why)),
        }
    };
    let admin = move || live.may(Permission::Administer);
    let row = move |rule: AlarmRule| {
        let id = rule.id;
        let channels: Vec<&str> = [
            rule.webhook_url.as_ref().map(|_| "webhook"),
            rule.ntfy_url.as_ref().map(|_| "ntfy"),
            rule.email_to.as_ref().map(|_| "email"),
            rule.on_raised.as_ref().map(|_| "command"),
        ]
        .into_iter()
        .flatten()
        .collect();
        view! {
            <li data-rule-id=id>
                <span class="rule-text">
                    <strong>{rule.name.clone()}</strong>
                    " · " {rule.devices.clone()} " · " {rule.condition.describe()}
                    {(!channels.is_empty()).then(|| format!(" → {}", channels.join(", ")))}
                </span>
                {move || {
                    admin()
                    .then(|| {
                        view! {
                            <button type="button" class="edit" on:click={
                                let rule = rule.clone();
                                move |_| {
                                    form.set(RuleForm::from_rule(&rule));
                                    editing.set(Some(id));
                                }
                            }>"Edit"</button>
                            <button type="button" class="delete" on:click=move |_| {
                                delete.dispatch(id);
                            }>"Delete"</button>
                        }
                    })
                }}
            </li>
        }
    };
    // One text input of the form.
    let input = move |label: &'static str,
                      name: &'static str,
                      hint: &'static str,
                      get: fn(&RuleForm) -> &String,
                      set: fn(&mut RuleForm) -> &mut String| {
        view! {
            <label>
                {label}
                <input
                    name=name
                    placeholder=hint
                    autocomplete="off"
                    prop:value=move || form.with(|f| get(f).clone())
                    on:input=move |ev| form.update(|f| *set(f) = event_target_value(&ev))
                />
            </label>
        }
    };
    let threshold_kind = move || form.with(|f| f.kind == "above" || f.kind == "below");
    view! {
        <section class="rules" aria-label="Alarm rules">
            <h2>"Rules"</h2>
            {shown_or(
                move || rules.with(|r| !r.is_empty()),
                move || view! {
                    <ul class="rule-list">
                        // Keyed by what a row shows: an edited rule is drawn again.
                        <For
                            each=move || rules.get()
                            key=|r| (r.id, r.name.clone(), r.devices.clone(), r.condition.describe())
                            children=row
                        />
                    </ul>
                },
                || view! { <p class="empty">"No rules yet."</p> },
            )}
            {shown(admin, move || view! {
                <form class="rule-form" on:submit=on_submit novalidate aria-label="New rule">
                    <h3>
                        {move || if editing.get().is_some() { "Edit rule" } else { "New rule" }}
                    </h3>
                    {input("Name", "name", "kitchen too hot", |f| &f.name, |f| &mut f.name)}
                    {input("Devices", "devices", "an id, kitchen-*, or *", |f| &f.devices, |f| &mut f.devices)}
                    <label>
                        "When"
                        <select
                            name="kind"
                            prop:value=move || form.with(|f| f.kind.clone())
                            on:change=move |ev| form.update(|f| f.kind = event_target_value(&ev))
                        >
                            <option value="above">"a value is above"</option>
                            <option value="below">"a value is below"</option>
                            <option value="offline">"the device is offline"</option>
                            <option value="silent">"no reading comes"</option>
                        </select>
                    </label>
                    {shown(threshold_kind, move || view! {
                        {input("Field", "field", "temp", |f| &f.field, |f| &mut f.field)}
                        {input("Threshold", "threshold", "30", |f| &f.threshold, |f| &mut f.threshold)}
                        {input("Clears at", "clear", "optional, e.g. 28", |f| &f.clear, |f| &mut f.clear)}
                    })}
                    {input("For (s)", "seconds", "hold, or how long", |f| &f.seconds, |f| &mut f.seconds)}
                    {input("Webhook URL", "webhook_url", "optional", |f| &f.webhook_url, |f| &mut f.webhook_url)}
                    {input("Webhook secret", "webhook_secret", "16+ characters; empty: unchanged", |f| &f.webhook_secret, |f| &mut f.webhook_secret)}
                    {input("ntfy topic URL", "ntfy_url", "optional", |f| &f.ntfy_url, |f| &mut f.ntfy_url)}
                    {input("Email to", "email_to", "optional", |f| &f.email_to, |f| &mut f.email_to)}
                    {input("Command when raised", "on_raised", "e.g. FAN=1", |f| &f.on_raised, |f| &mut f.on_raised)}
                    {input("Command when cleared", "on_cleared", "e.g. FAN=0", |f| &f.on_cleared, |f| &mut f.on_cleared)}
                    <button type="submit">
                        {move || if editing.get().is_some() { "Save rule" } else { "Add rule" }}
                    </button>
                    {shown(move || editing.get().is_some(), move || view! {
                        <button
                            type="button"
                            class="cancel"
                            on:click=move |_| {
                                editing.set(None);
                                form.set(RuleForm {
                                    kind: "above".into(),
                                    devices: "*".into(),
                                    ..RuleForm::default()
                                });
                            }
                        >
                            "Cancel"
                        </button>
                    })}
                </form>
            })}
            <p class="form-error" role="alert">{move || error.get()}</p>
        </section>
    }
}

/// Alarms newest first, read again whenever one is raised, acknowledged or cleared.
#[component]
fn History() -> impl IntoView {
    let live = use_live();
    let device = RwSignal::new(String::new());
    let active_only = RwSignal::new(false);
    let changes = Memo::new(move |_| {
        live.state.with(|s| {
            s.alarms
                .values()
                .map(|a| (a.id, a.acked_ms))
                .collect::<Vec<_>>()
        })
    });
    // Read in the browser only, like the runs below (no resource, no suspense: smaller).
    let alarms = RwSignal::new(None::<Result<Vec<Alarm>, String>>);
    Effect::new(move |_| {
        changes.track();
        let (device, active_only) = (device.get(), active_only.get());
        leptos::task::spawn_local(async move {
            let list = list_alarms(active_only, Some(device)).await;
            alarms.set(Some(list.map_err(|e| e.to_string())));
        });
    });
    let time = move |ms: i64| {
        let zone = live.zone.get();
        format!("{} {}", zone.date(ms), zone.clock(ms))
    };
    let row = move |a: Alarm| {
        let deliveries: Vec<String> = [
            a.webhook_delivery.as_ref().map(|d| format!("webhook {d}")),
            a.ntfy_delivery.as_ref().map(|d| format!("ntfy {d}")),
            a.email_delivery.as_ref().map(|d| format!("email {d}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        view! {
            <tr data-alarm-id=a.id data-cleared=a.cleared_ms.is_some().to_string()>
                <td>{a.rule_name.clone()}</td>
                <td>
                    <a href=device_page(&a.device_id, TimeWindow::Live)>{a.device_id.clone()}</a>
                </td>
                <td data-label="Raised">
                    {time(a.raised_ms)} {a.raised_value.map(|v| format!(" ({})", format_value(v)))}
                </td>
                <td data-label="Acknowledged">
                    {a.acked_by.clone().zip(a.acked_ms).map(|(by, at)| format!("{by}, {}", time(at)))}
                </td>
                <td data-label="Cleared">
                    {a.cleared_ms.map_or_else(|| "up".to_string(), time)}
                </td>
                <td data-label="Sent">{deliveries.join("; ")}</td>
            </tr>
        }
    };
    view! {
        <section class="alarm-history" aria-label="Alarm history">
            <h2>"History"</h2>
            <div class="toolbar">
                <input
                    type="search"
                    name="history_device"
                    aria-label="Only this device"
                    placeholder="Device id"
                    autocomplete="off"
                    prop:value=move || device.get()
                    on:change=move |ev| device.set(event_target_value(&ev))
                />
                <label>
                    <input
                        type="checkbox"
                        name="active_only"
                        prop:checked=move || active_only.get()
                        on:change=move |ev| active_only.set(event_target_checked(&ev))
                    />
                    " only alarms up"
                </label>
            </div>
            {move || match alarms.get() {
                None => Either::Left(view! { <p class="loading">"Loading alarms…"</p> }),
                Some(Ok(list)) if list.is_empty() => {
                    Either::Left(view! { <p class="empty">"No alarms."</p> })
                }
                Some(Ok(list)) => Either::Right(Either::Left(view! {
                    <div class="table-scroll">
                        <table>
                            <thead>
                                <tr>
                                    <th>"Rule"</th>
                                    <th>"Device"</th>
                                    <th>"Raised"</th>
                                    <th>"Acknowledged"</th>
                                    <th>"Cleared"</th>
                                    <th>"Sent"</th>
                                </tr>
                            </thead>
                            <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                        </table>
                    </div>
                })),
                Some(Err(err)) => Either::Right(Either::Right(view! {
                    <p class="error" role="alert">{err}</p>
                })),
            }}
        </section>
    }
}

/// What automations sent (when an alarm was raised or cleared, or a schedule's time came),
/// with each command's status as the hub knows it now; read again with every command change.
/// Loaded in the browser only (an effect, no `Suspense`): the list is secondary to the page,
/// and a resource with its suspense costs ~10 KiB of the bundle.
#[component]
fn Runs() -> impl IntoView {
    let live = use_live();
    let runs = RwSignal::new(None::<Result<Vec<AutomationRun>, String>>);
    Effect::new(move |_| {
        live.state.with(|s| {
            (
                s.alarms.len(),
                s.commands
                    .iter()
                    .map(|c| c.status.label().len())
                    .sum::<usize>(),
            )
        });
        leptos::task::spawn_local(async move {
            runs.set(Some(
                list_automation_runs().await.map_err(|e| e.to_string()),
            ));
        });
    });
    let row = move |run: AutomationRun| {
        let zone = live.zone.get_untracked();
        let commands: Vec<String> = run
            .commands
            .iter()
            .map(|c| format!("{} {}", c.device_id, c.status.label()))
            .collect();
        view! {
            <li data-run-id=run.id>
                {format!("{} {} · {} · ", zone.date(run.at_ms), zone.clock(run.at_ms), run.source)}
                <code>{format!("{}={}", run.action.variable, format_value(run.action.value))}</code>
                " → "
                {run.error.unwrap_or_else(|| commands.join(", "))}
            </li>
        }
    };
    view! {
        <section class="runs" aria-label="Automation runs">
            <h2>"Automations"</h2>
            {move || match runs.get() {
                None => Either::Left(view! { <p class="loading">"Loading…"</p> }),
                Some(Ok(list)) if list.is_empty() => {
                    Either::Left(view! { <p class="empty">"Nothing sent yet."</p> })
                }
                Some(Ok(list)) => Either::Right(Either::Left(view! {
                    <ul class="run-list">{list.into_iter().map(row).collect_view()}</ul>
                })),
                Some(Err(err)) => Either::Right(Either::Right(view! {
                    <p class="error" role="alert">{err}</p>
                })),
            }}
        </section>
    }
}
