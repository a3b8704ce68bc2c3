use crate::api::load_dashboard;
use crate::live::use_live;
use leptos::prelude::*;

/// Renders `children` once the page's snapshot is loaded: on the server, so that the HTML
/// already shows real devices, and on a navigation inside the app. The live stream takes over
/// from there.
#[component]
pub fn FirstPaint(#[prop(into)] focus: Signal<Option<String>>, children: ChildrenFn) -> AnyView {
    let live = use_live();
    let snapshot = Resource::new(move || focus.get(), load_dashboard);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading devices…"</p> }>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    match snapshot.await {
                        Ok(snapshot) => {
                            live.seed(snapshot);
                            children().into_any()
                        }
                        Err(err) => {
                            view! { <p class="error" role="alert">{err.to_string()}</p> }.into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
    .into_any()
}
