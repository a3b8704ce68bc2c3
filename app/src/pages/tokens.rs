//! `/tokens` (admins): the tokens that let devices connect, and API tokens for programs
//! ([`ApiTokens`]). Create a device token for a device id (its secret is
//! shown once, here, and never again: the server keeps only a hash), see when each was last
//! used, revoke one (a device connected with it is disconnected).

use crate::api::{create_device_token, list_device_tokens, revoke_device_token};
use crate::components::{first_paint, ApiTokens, TopBar};
use crate::links::device_page;
use crate::live::use_live;
use crate::model::{DeviceToken, NewDeviceToken, TimeWindow};
use leptos::either::Either;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

#[component]
pub fn TokensPage() -> impl IntoView {
    let live = use_live();
    // Bumped after each change, which reloads the list.
    let version = RwSignal::new(0u64);
    let tokens = Resource::new(move || version.get(), |_| list_device_tokens());
    let device = RwSignal::new(String::new());
    let label = RwSignal::new(String::new());
    let created = RwSignal::new(None::<NewDeviceToken>);
    let create = Action::new(|(device, label): &(String, String)| {
        let (device, label) = (device.clone(), label.clone());
        async move { create_device_token(device, label).await }
    });
    let revoke = Action::new(|id: &i64| {
        let id = *id;
        async move { revoke_device_token(id).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(new)) = create.value().get() {
            created.set(Some(new));
            device.set(String::new());
            label.set(String::new());
            version.update(|v| *v += 1);
        }
    });
    Effect::new(move |_| {
        if revoke.value().with(Option::is_some) {
            version.update(|v| *v += 1);
        }
    });

    let on_create = move |ev: SubmitEvent| {
        ev.prevent_default();
        create.dispatch((device.get(), label.get()));
    };
    let error = move || {
        let failed = |r: Option<Result<_, crate::error::AppError>>| r.and_then(Result::err);
        failed(create.value().get().map(|r| r.map(|_| ())))
            .or_else(|| failed(revoke.value().get().map(|r| r.map(|_| ()))))
            .map(|e| e.to_string())
    };
    let time = move |ms: i64| {
        let zone = live.zone.get();
        format!("{} {}", zone.date(ms), zone.clock(ms))
    };
    let row = move |t: DeviceToken| {
        let id = t.id;
        let state = match t.revoked_ms {
            Some(ms) => Either::Left(view! { <span class="revoked">"revoked " {time(ms)}</span> }),
            None => Either::Right(view! {
                <button type="button" class="revoke" on:click=move |_| { revoke.dispatch(id); }>
                    "Revoke"
                </button>
            }),
        };
        view! {
            <tr data-token-id=id data-revoked=t.revoked_ms.is_some().to_string()>
                <td>{id}</td>
                <td>
                    <a href=device_page(&t.device_id, TimeWindow::Live)>{t.device_id.clone()}</a>
                </td>
                <td>{t.label.clone()}</td>
                <td data-label="Created">{time(t.created_ms)}</td>
                <td data-label="Last used">
                    {t.last_used_ms.map_or_else(|| "never".to_string(), time)}
                </td>
                <td>{state}</td>
            </tr>
        }
    };

    view! {
        <TopBar />
        <main class="tokens-page" data-hydrated=move || live.hydrated.get().to_string()>
            // Fills the top bar (counts, who is signed in); the page itself shows no devices.
            {first_paint(|| ())}
            <section class="token-create" aria-label="New device token">
                <h2>"New device token"</h2>
                <p class="hint">
                    "A token lets one device id connect. Give it to the device as "
                    <code>"?token=…"</code> " in the WebSocket address or as the header "
                    <code>"Authorization: Bearer …"</code> "."
                </p>
                <form class="token-form" on:submit=on_create>
                    <label>
                        "Device id"
                        <input
                            name="device_id"
                            required
                            autocomplete="off"
                            prop:value=move || device.get()
                            on:input=move |ev| device.set(event_target_value(&ev))
                        />
                    </label>
                    <label>
                        "Label"
                        <input
                            name="label"
                            placeholder="optional, e.g. kitchen ESP32"
                            autocomplete="off"
                            prop:value=move || label.get()
                            on:input=move |ev| label.set(event_target_value(&ev))
                        />
                    </label>
                    <button type="submit">"Create token"</button>
                </form>
                <p class="form-error" role="alert">{error}</p>
                {move || {
                    created
                        .get()
                        .map(|new| {
                            view! {
                                <div class="new-token" role="status">
                                    <p>
                                        "Token " {new.token.id} " for device "
                                        <strong>{new.token.device_id.clone()}</strong>
                                        ". Copy it now: it is not shown again."
                                    </p>
                                    <code data-testid="new-token">{new.secret.clone()}</code>
                                </div>
                            }
                        })
                }}
            </section>
            <section class="token-list" aria-label="Device tokens">
                <h2>"Device tokens"</h2>
                <Suspense fallback=|| view! { <p class="loading">"Loading tokens…"</p> }>
                    {move || Suspend::new(async move {
                        match tokens.await {
                            Ok(list) if list.is_empty() => {
                                Either::Left(view! { <p class="empty">"No tokens yet."</p> })
                            }
                            Ok(list) => Either::Right(Either::Left(view! {
                                <div class="table-scroll">
                                    <table>
                                        <thead>
                                            <tr>
                                                <th>"#"</th>
                                                <th>"Device"</th>
                                                <th>"Label"</th>
                                                <th>"Created"</th>
                                                <th>"Last used"</th>
                                                <th></th>
                                            </tr>
                                        </thead>
                                        <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                                    </table>
                                </div>
                            })),
                            Err(err) => Either::Right(Either::Right(view! {
                                <p class="error" role="alert">{err.to_string()}</p>
                            })),
                        }
                    })}
                </Suspense>
            </section>
            <ApiTokens />
        </main>
    }
}
