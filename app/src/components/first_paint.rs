use crate::api::load_dashboard;
use crate::live::use_live;
use leptos::either::Either;
use leptos::prelude::*;

/// Renders `content` once the page's snapshot (of the page's scope, as it was when the page
/// loaded) is loaded, on the server, so that the HTML already shows real devices; the live
/// stream takes over from there, also when the scope changes.
///
/// A generic function rather than a component with `children`: children are type-erased views,
/// and each erased view carries a second, asynchronous copy of its hydration code into the
/// browser bundle.
pub fn first_paint<V, F>(content: F) -> impl IntoView
where
    V: IntoView + 'static,
    F: Fn() -> V + Clone + Send + Sync + 'static,
{
    let live = use_live();
    let scope = live.scope.get_untracked();
    let snapshot = Resource::new(move || scope.clone(), load_dashboard);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading devices…"</p> }>
            {move || {
                let content = content.clone();
                Suspend::new(async move {
                    match snapshot.await {
                        Ok(snapshot) => {
                            live.seed(snapshot);
                            Either::Left(content())
                        }
                        Err(err) => {
                            Either::Right(view! { <p class="error" role="alert">{err.to_string()}</p> })
                        }
                    }
                })
            }}
        </Suspense>
    }
}
