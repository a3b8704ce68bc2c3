//! The tokens page's API tokens: what a person's programs (scripts, Home Assistant, Node-RED)
//! call the REST API with. Made for the signed-in user with a scope (the most it may do) and
//! an optional lifetime; shown once; revoked here or with `iothub api-token revoke`.

use crate::api::{create_api_token, list_api_tokens, revoke_api_token};
use crate::live::use_live;
use crate::model::{ApiToken, NewApiToken, Role};
use leptos::either::Either;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

#[component]
pub fn ApiTokens() -> impl IntoView {
    let live = use_live();
    let version = RwSignal::new(0u64);
    let tokens = Resource::new(move || version.get(), |_| list_api_tokens());
    let label = RwSignal::new(String::new());
    let scope = RwSignal::new(Role::Viewer);
    let days = RwSignal::new(String::new());
    let created = RwSignal::new(None::<NewApiToken>);
    let create = Action::new(|(label, scope, days): &(String, Role, Option<u32>)| {
        let (label, scope, days) = (label.clone(), *scope, *days);
        async move { create_api_token(label, scope, days).await }
    });
    let revoke = Action::new(|id: &i64| {
        let id = *id;
        async move { revoke_api_token(id).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(new)) = create.value().get() {
            created.set(Some(new));
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
        let days = days.get().trim().parse::<u32>().ok();
        create.dispatch((label.get(), scope.get(), days));
    };
    let error = move || {
        let failed = |r: Option<Result<(), crate::error::AppError>>| r.and_then(Result::err);
        failed(create.value().get().map(|r| r.map(|_| ())))
            .or_else(|| failed(revoke.value().get().map(|r| r.map(|_| ()))))
            .map(|e| e.to_string())
    };
    let time = move |ms: i64| {
        let zone = live.zone.get();
        format!("{} {}", zone.date(ms), zone.clock(ms))
    };
    let row = move |t: ApiToken| {
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
            <tr data-api-token-id=id data-revoked=t.revoked_ms.is_some().to_string()>
                <td>{id}</td>
                <td>{t.user.clone()}</td>
                <td>{t.scope.as_str()}</td>
                <td>{t.label.clone()}</td>
                <td data-label="Expires">{t.expires_ms.map_or_else(|| "never".to_string(), time)}</td>
                <td data-label="Last used">
                    {t.last_used_ms.map_or_else(|| "never".to_string(), time)}
                </td>
                <td>{state}</td>
            </tr>
        }
    };
    view! {
        <section class="token-create" aria-label="New API token">
            <h2>"New API token"</h2>
            <p class="hint">
                "For your programs: send it as " <code>"Authorization: Bearer …"</code>
                " to the REST API (" <a href="/api/v1/docs">"API reference"</a>
                "). It acts as you, with at most its scope."
            </p>
            <form class="token-form" on:submit=on_create>
                <label>
                    "Label"
                    <input
                        name="api_label"
                        placeholder="optional, e.g. Home Assistant"
                        autocomplete="off"
                        prop:value=move || label.get()
                        on:input=move |ev| label.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Scope"
                    <select
                        name="scope"
                        prop:value=move || scope.get().as_str()
                        on:change=move |ev| {
                            scope.set(Role::parse(&event_target_value(&ev)).unwrap_or_default())
                        }
                    >
                        <option value="viewer">"viewer: reads"</option>
                        <option value="operator">"operator: also commands"</option>
                        <option value="admin">"admin: everything"</option>
                    </select>
                </label>
                <label>
                    "Days valid"
                    <input
                        name="expires_days"
                        inputmode="numeric"
                        placeholder="until revoked"
                        prop:value=move || days.get()
                        on:input=move |ev| days.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit">"Create API token"</button>
            </form>
            <p class="form-error" role="alert">{error}</p>
            {move || {
                created
                    .get()
                    .map(|new| {
                        view! {
                            <div class="new-token" role="status">
                                <p>
                                    "API token " {new.token.id} " (" {new.token.scope.as_str()}
                                    "). Copy it now: it is not shown again."
                                </p>
                                <code data-testid="new-api-token">{new.secret.clone()}</code>
                            </div>
                        }
                    })
            }}
        </section>
        <section class="token-list" aria-label="API tokens">
            <h2>"API tokens"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading API tokens…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(list) if list.is_empty() => {
                            Either::Left(view! { <p class="empty">"No API tokens yet."</p> })
                        }
                        Ok(list) => Either::Right(Either::Left(view! {
                            <div class="table-scroll">
                                <table>
                                    <thead>
                                        <tr>
                                            <th>"#"</th>
                                            <th>"User"</th>
                                            <th>"Scope"</th>
                                            <th>"Label"</th>
                                            <th>"Expires"</th>
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
    }
}
