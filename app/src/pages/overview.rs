//! `/`: the alarms up, one page of device cards (filtered and sorted by the server), the command
//! form and recent commands.
//!
//! The filter, order and page are the page's [`Scope`]: changing one starts the live stream over
//! with a snapshot of the new page, and the address bar follows (`/?q=…&sort=…&page=…`), so a
//! view can be bookmarked. Without the WebAssembly the same controls are a plain GET form and
//! links.

use crate::components::{
    first_paint, shown, shown_or, ActiveAlarms, CommandForm, DeviceCard, RecentCommands, TopBar,
};
use crate::links::overview_page;
use crate::live::use_live;
use crate::model::{DeviceOrder, DeviceQuery, Permission, Scope, PAGE_SIZE};
use leptos::either::Either;
use leptos::prelude::*;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let live = use_live();

    let query = Memo::new(move |_| match live.scope.get() {
        Scope::Devices(query) => query,
        _ => DeviceQuery::default(),
    });
    let show = move |query: DeviceQuery| {
        // The address bar follows, so that the view can be bookmarked and reloaded.
        if let Ok(history) = window().history() {
            let url = overview_page(&query);
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
        live.scope.set(Scope::Devices(query));
    };
    // As the page was asked for: attributes for the server-rendered HTML (properties are not
    // rendered), which works without the WebAssembly.
    let asked = query.get_untracked();
    let ids = Memo::new(move |_| live.state.with(|s| s.page.clone()));
    let any_device = move || live.state.with(|s| s.fleet.known > 0);
    let matching = move || live.state.with(|s| s.matching);

    // "Showing 49–96 of 10,000", and links to the pages either side.
    let first_shown = move || query.with(|q| q.page as usize * PAGE_SIZE);
    let summary = move || {
        let (first, shown, matching) = (first_shown(), ids.with(Vec::len), matching());
        if shown == 0 {
            format!("{matching} matching")
        } else {
            format!("Showing {}–{} of {matching}", first + 1, first + shown)
        }
    };
    let neighbour = move |forward: bool| {
        let q = query.get();
        let page = if forward {
            let next_first = (q.page as usize + 1) * PAGE_SIZE;
            (next_first < matching() as usize).then_some(q.page + 1)
        } else {
            q.page.checked_sub(1)
        };
        page.map(|page| DeviceQuery { page, ..q })
    };
    let page_link = move |forward: bool, label: &'static str| {
        move || {
            neighbour(forward).map(|target| {
                let href = overview_page(&target);
                view! {
                    <a
                        href=href
                        class="page-link"
                        on:click=move |ev| {
                            ev.prevent_default();
                            show(target.clone());
                        }
                    >
                        {label}
                    </a>
                }
            })
        }
    };

    view! {
        <TopBar />
        <main
            class="overview"
            data-hydrated=move || live.hydrated.get().to_string()
            data-flushes=move || live.flushes.get()
        >
            {first_paint(move || view! {
                <ActiveAlarms />
                <section class="devices" aria-label="Devices">
                    // A GET form: without the WebAssembly, Enter in the search box loads the
                    // filtered page; with it, each keystroke refilters.
                    <form
                        class="toolbar"
                        method="get"
                        action="/"
                        role="search"
                        on:submit=move |ev| ev.prevent_default()
                    >
                        <input
                            type="search"
                            name="q"
                            aria-label="Filter devices by id or name"
                            placeholder="Filter by id or name"
                            autocomplete="off"
                            maxlength=crate::model::MAX_FILTER_CHARS
                            value=asked.filter.clone()
                            prop:value=move || query.with(|q| q.filter.clone())
                            on:input=move |ev| {
                                show(DeviceQuery {
                                    filter: event_target_value(&ev),
                                    page: 0,
                                    ..query.get()
                                })
                            }
                        />
                        <label>
                            "Sort"
                            <select
                                name="sort"
                                aria-label="Sort devices"
                                prop:value=move || query.with(|q| q.order.key())
                                on:change=move |ev| {
                                    show(DeviceQuery {
                                        order: DeviceOrder::from_key(&event_target_value(&ev)),
                                        page: 0,
                                        ..query.get()
                                    })
                                }
                            >
                                {DeviceOrder::ALL
                                    .into_iter()
                                    .map(|o| {
                                        view! {
                                            <option value=o.key() selected=o == asked.order>
                                                {o.label()}
                                            </option>
                                        }
                                    })
                                    .collect_view()}
                            </select>
                        </label>
                    </form>
                    <nav class="pager" aria-label="Pages of devices">
                        {page_link(false, "‹ Previous")}
                        <span class="page-summary" data-testid="page-summary">{summary}</span>
                        {page_link(true, "Next ›")}
                    </nav>
                    {shown_or(
                        move || ids.with(|ids| !ids.is_empty()),
                        move || view! {
                            <ul class="cards">
                                <For each=move || ids.get() key=|id| id.clone() let:id>
                                    <DeviceCard id />
                                </For>
                            </ul>
                        },
                        move || {
                            if !any_device() {
                                Either::Left(view! {
                                    <p class="empty">
                                        "No devices yet. Point a device at " <code>"/ws/device"</code>
                                        " and send a line such as " <code>"7,42,23.5"</code> "."
                                    </p>
                                })
                            } else {
                                Either::Right(view! { <p class="empty">"No device matches the filter."</p> })
                            }
                        },
                    )}
                </section>
                <aside class="side">
                    {shown(move || live.may(Permission::Control), || view! { <CommandForm /> })}
                    <RecentCommands />
                </aside>
            })}
        </main>
    }
}
