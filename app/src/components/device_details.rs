use crate::components::shown;
use crate::components::OnlineBadge;
use crate::links;
use crate::live::use_live;
use crate::model::{DeviceSummary, TimeWindow};
use crate::time::{format_value, now_ms, Zone};
use leptos::prelude::*;

/// The device page's heading: name and id, online badge, last seen, CSV downloads.
#[component]
pub fn DeviceHeader(#[prop(into)] id: Signal<String>, window: TimeWindow) -> impl IntoView {
    let live = use_live();
    let summary = Memo::new(move |_| {
        live.state
            .with(|s| s.devices.get(&id.get()).and_then(|d| d.summary.clone()))
    });
    let name = move || {
        summary.with(|s| {
            s.as_ref()
                .and_then(|s| s.registration.as_ref()?.name.clone())
        })
    };
    let online = move || summary.with(|s| s.as_ref().is_some_and(|s| s.online));
    let last_seen = move || {
        summary.with(|s| {
            s.as_ref()
                .map(|s| format!("last seen {}", live.age(s.last_seen_ms)))
        })
    };
    // The newest data decides which day "today" is, so a device that went quiet yesterday
    // still offers its last day.
    let csv_links = move || {
        let id = id.get();
        let last = summary.with(|s| s.as_ref().map(|s| s.last_seen_ms))?;
        let day = Zone::Utc.date(last);
        let (from, to) = match window.bounds(live.now.get().unwrap_or_else(now_ms)) {
            Some(bounds) => bounds,
            None => live.state.with(|s| {
                let series = s
                    .devices
                    .get(&id)
                    .map(|d| d.series.as_slice())
                    .unwrap_or(&[]);
                let first = series
                    .iter()
                    .filter_map(|(_, p)| p.front())
                    .map(|p| p.0)
                    .min();
                (first.unwrap_or(last), last + 1)
            }),
        };
        Some(view! {
            <a class="csv-link" href=links::csv_day(&id, &day) download="">
                {format!("CSV {day} (UTC day)")}
            </a>
            <a class="csv-link" href=links::csv_window(&id, from, to) download="">
                "CSV of this window"
            </a>
        })
    };
    view! {
        <div class="device-head">
            <h2 class="device-title" data-testid="device-title">
                {move || name().unwrap_or_else(|| id.get())}
            </h2>
            {move || name().map(|_| view! { <span class="device-id">{id.get()}</span> })}
            <OnlineBadge online=Signal::derive(online) />
            <span class="last-seen">{last_seen}</span>
            <span class="downloads">{csv_links}</span>
        </div>
        {shown(
            move || summary.with(Option::is_none),
            || view! {
                <p class="empty" data-testid="unknown-device">
                    "This device has not connected since the server started. "
                    "Its stored history is still available in the time windows."
                </p>
            },
        )}
    }
}

/// What the device said about itself, and its connection's counters.
#[component]
pub fn DeviceDetails(#[prop(into)] id: Signal<String>) -> impl IntoView {
    let live = use_live();
    let summary = Memo::new(move |_| {
        live.state
            .with(|s| s.devices.get(&id.get()).and_then(|d| d.summary.clone()))
    });
    view! {
        <section class="details" aria-label="Device details">
            <h3>"Details"</h3>
            {move || summary.get().map(|s| details(s, live.zone.get()))}
        </section>
    }
}

fn details(s: DeviceSummary, zone: Zone) -> impl IntoView {
    let registration = s.registration.clone().unwrap_or_default();
    let since = s
        .connected_since_ms
        .map(|ms| format!("{} {} ({})", zone.date(ms), zone.clock(ms), zone.label(ms)));
    let fields = registration
        .fields
        .into_iter()
        .map(|f| match f.unit {
            Some(unit) => format!("{} ({unit})", f.name),
            None => f.name,
        })
        .collect::<Vec<_>>()
        .join(", ");
    let commands = registration
        .commands
        .into_iter()
        .map(|c| match (c.min, c.max) {
            (None, None) => c.name,
            (min, max) => format!(
                "{} {}…{}",
                c.name,
                min.map_or("".into(), format_value),
                max.map_or("".into(), format_value)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let none = || "—".to_string();
    view! {
        <dl class="detail-list">
            <dt>"Connection"</dt>
            <dd>{s.transport}</dd>
            <dt>"Connected since"</dt>
            <dd>{since.unwrap_or_else(none)}</dd>
            <dt>"Readings"</dt>
            <dd>{s.readings}</dd>
            <dt>"Errors"</dt>
            <dd>{s.errors}</dd>
            <dt>"Received"</dt>
            <dd>{format!("{} bytes", s.bytes_in)}</dd>
            <dt>"Registered fields"</dt>
            <dd data-testid="registered-fields">{if fields.is_empty() { none() } else { fields }}</dd>
            <dt>"Commands"</dt>
            <dd>{if commands.is_empty() { none() } else { commands }}</dd>
        </dl>
    }
}
