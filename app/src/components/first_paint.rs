use crate::live::use_live;
use crate::page_data::PageData;
use leptos::either::Either;
use leptos::prelude::*;

/// Renders `content` with the page's snapshot (of the page's scope, as it was when the page
/// was asked for; see [`crate::page_data`]) seeded into the live signals, so that the HTML
/// already shows real devices and the browser hydrates it from the same data; the live stream
/// takes over from there, also when the scope changes. When the server could not load the
/// snapshot, says why instead.
///
/// A generic function rather than a component with `children`: children are type-erased views,
/// and each erased view carries a second, asynchronous copy of its hydration code into the
/// browser bundle.
pub fn first_paint<V, F>(content: F) -> impl IntoView
where
    V: IntoView + 'static,
    F: Fn() -> V + Send + Sync + 'static,
{
    let live = use_live();
    match PageData::current().and_then(|data| data.snapshot.clone()) {
        Ok(snapshot) => {
            live.seed(snapshot);
            Either::Left(content())
        }
        Err(err) => Either::Right(view! { <p class="error" role="alert">{err.to_string()}</p> }),
    }
}
