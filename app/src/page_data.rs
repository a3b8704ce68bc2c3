//! What a page is first drawn with: the snapshot of its scope, the alarm rules it shows and,
//! on a device page showing stored history, that window ([`PageData`]).
//!
//! The server loads it before it renders the page ([`load`], called by the page handler), so
//! the page renders in one pass with real data, and sends it inside the page as a JSON script
//! element in the head ([`PageDataScript`]). The browser reads it from there before hydrating
//! ([`PageData::from_document`]) and draws the same page from the same data without asking
//! again; the live stream takes over from there.
//!
//! Why not a Leptos resource: a resource and its `<Suspense>` carry an asynchronous copy of the
//! hydration code of everything inside them into the bundle (27 KiB gzip of the device page's,
//! measured by building without).

use crate::error::AppError;
use crate::model::{DashboardSnapshot, HistoryWindow};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

/// The `id` of the script element that carries [`PageData`].
pub const ELEMENT_ID: &str = "page-data";

/// Most points per field a device page's history window is drawn with.
pub const HISTORY_POINTS: u32 = 600;

/// What a page is first drawn with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageData {
    /// The page's scope as the server saw it when the page was asked for.
    pub snapshot: Result<DashboardSnapshot, AppError>,
    /// A device page's window of stored history (`None` for live charts and other pages).
    pub history: Option<Result<HistoryWindow, AppError>>,
    /// The alarm rules: all of them on the Alarms page, those that cover its device on a device
    /// page (for their threshold lines), none elsewhere. Carried as JSON for each page to read
    /// what it needs of them ([`PageData::rules`]): a type here would bring the decoder of
    /// whole rules into every page's bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Box<RawValue>>,
}

impl PageData {
    /// This page's data: provided by the page handler on the server, read from the page by
    /// [`crate::hydrate`] in the browser. Shared, not copied: the parts that draw with it take
    /// what they need.
    pub fn current() -> Result<Arc<PageData>, AppError> {
        use_context::<Arc<PageData>>()
            .ok_or_else(|| AppError::Transport("this page came without its data: reload it".into()))
    }

    /// The page's alarm rules (see [`PageData::rules`](struct@PageData)) read as `T`: a
    /// `Vec` of [`crate::model::AlarmRule`]s or of what a page needs of each. None on a page
    /// without rules.
    pub fn rules<T: DeserializeOwned>(&self) -> Option<T> {
        let json = self.rules.as_ref()?.get();
        match serde_json::from_slice(json.as_bytes()) {
            Ok(rules) => Some(rules),
            Err(err) => {
                leptos::logging::warn!("the page's alarm rules did not read: {err}");
                None
            }
        }
    }

    /// Reads the data the server put into the page.
    #[cfg(not(feature = "ssr"))]
    pub fn from_document() -> Option<Arc<PageData>> {
        let text = document().get_element_by_id(ELEMENT_ID)?.text_content()?;
        // As bytes: the server functions decode their answers from bytes too, and one reader
        // type means one copy of every type's decoder in the bundle.
        serde_json::from_slice(text.as_bytes()).ok().map(Arc::new)
    }
}

/// The script element carrying this page's [`PageData`] (for the shell's head, which the
/// browser does not hydrate). Nothing on pages without data.
#[component]
pub fn PageDataScript() -> impl IntoView {
    let json = use_context::<Arc<PageData>>()
        .and_then(|data| serde_json::to_string(&*data).ok())
        .map(|json| script_safe(&json));
    json.map(|json| {
        view! { <script type="application/json" id=ELEMENT_ID inner_html=json></script> }
    })
}

/// JSON that cannot end the script element it sits in, nor open a comment there: each `<` (in
/// JSON only ever inside a string) written as its escape, which decodes to the same text.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// Loads what the page at `route` is first drawn with, for `who` (`None` for a page that has no
/// live data: the sign-in and not-found pages).
#[cfg(feature = "ssr")]
pub async fn load(
    hub: &crate::api::ssr::SharedHub,
    route: &crate::links::Route,
    who: Option<crate::api::ssr::SignedIn>,
) -> Option<PageData> {
    use crate::links::Route;
    let scope = route.scope()?;
    let snapshot = crate::api::ssr::snapshot(hub, scope, who).await;
    let rules = match route {
        Route::Device { id, .. } => Some(hub.alarm_rules().await.map(|mut rules| {
            // Matched here: matching device patterns in the browser brings Unicode case
            // tables into its bundle (12 KiB, for wildmatch's case-insensitive mode).
            rules.retain(|rule| rule.covers(id));
            rules
        })),
        Route::Alarms => Some(hub.alarm_rules().await),
        _ => None,
    };
    // Rules that could not be read fail the page as its snapshot would.
    let (snapshot, rules) = match rules.transpose() {
        // Serialising plain structs cannot fail.
        Ok(rules) => (
            snapshot,
            rules.and_then(|r| serde_json::value::to_raw_value(&r).ok()),
        ),
        Err(err) => (Err(err), None),
    };
    let history = match route {
        Route::Device { id, window, .. } => match window.bounds(crate::time::now_ms()) {
            Some((from, to)) => {
                Some(crate::api::ssr::series(&**hub, id, from, to, HISTORY_POINTS).await)
            }
            None => None,
        },
        _ => None,
    };
    Some(PageData {
        snapshot,
        history,
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_text_cannot_end_the_script_element() {
        let snapshot = DashboardSnapshot {
            seq: 7,
            ..Default::default()
        };
        let hostile = "</script><script>alert(1)</script><!--";
        let data = PageData {
            snapshot: Ok(snapshot),
            history: Some(Err(AppError::BadRequest(hostile.into()))),
            rules: None,
        };
        let json = script_safe(&serde_json::to_string(&data).unwrap());
        assert!(!json.contains('<'), "{json}");
        let back: PageData = serde_json::from_str(&json).unwrap();
        assert_eq!(back.snapshot.unwrap().seq, 7);
        assert_eq!(
            back.history.unwrap().unwrap_err(),
            AppError::BadRequest(hostile.into())
        );
    }
}
