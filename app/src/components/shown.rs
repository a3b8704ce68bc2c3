use leptos::either::Either;
use leptos::prelude::*;

/// What `<Show>` does, without its type erasure: `view` while `when` holds, nothing otherwise.
/// `<Show>` takes its content as `children`, a type-erased view, and each erased view carries
/// a second, asynchronous copy of its hydration code into the browser bundle; a generic
/// function keeps the content's own type. Like `<Show>`, the condition is memoised, so the
/// content is built again only when it flips.
pub fn shown<V, W, F>(when: W, view: F) -> impl IntoView
where
    V: IntoView + 'static,
    W: Fn() -> bool + Send + Sync + 'static,
    F: Fn() -> V + Send + Sync + 'static,
{
    let when = Memo::new(move |_| when());
    move || when.get().then(&view)
}

/// [`shown`] with something in its place while `when` does not hold.
pub fn shown_or<V, E, W, F, G>(when: W, view: F, otherwise: G) -> impl IntoView
where
    V: IntoView + 'static,
    E: IntoView + 'static,
    W: Fn() -> bool + Send + Sync + 'static,
    F: Fn() -> V + Send + Sync + 'static,
    G: Fn() -> E + Send + Sync + 'static,
{
    let when = Memo::new(move |_| when());
    move || {
        if when.get() {
            Either::Left(view())
        } else {
            Either::Right(otherwise())
        }
    }
}
