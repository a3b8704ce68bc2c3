use crate::chart::sparkline_points;
use crate::components::{DeviceControls, OnlineBadge};
use crate::links;
use crate::live::use_live;
use crate::model::{DeviceView, TimeWindow};
use crate::time::format_value;
use leptos::prelude::*;

const SPARK_WIDTH: f64 = 120.0;
const SPARK_HEIGHT: f64 = 28.0;

/// What one overview card shows, derived from the device's state. Compared on every update,
/// so a card whose device did not change is not touched.
#[derive(Debug, Clone, PartialEq)]
struct Card {
    name: Option<String>,
    online: bool,
    last_seen_ms: i64,
    /// (field, value with unit)
    latest: Vec<(String, String)>,
    trend_field: String,
    trend: String,
}

impl Card {
    fn of(view: &DeviceView) -> Card {
        let summary = view.summary.as_ref();
        let latest = summary
            .map(|s| {
                s.latest
                    .iter()
                    .map(|f| {
                        let unit = view.unit(&f.field).map(|u| format!(" {u}"));
                        let shown =
                            format!("{}{}", format_value(f.value), unit.unwrap_or_default());
                        (f.field.to_string(), shown)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (trend_field, values) = view
            .trend()
            .map(|(field, points)| (field.clone(), points.iter().map(|p| p.1).collect()))
            .unwrap_or_else(|| (String::new(), Vec::new()));
        Card {
            name: view.name().map(str::to_string),
            online: summary.is_some_and(|s| s.online),
            last_seen_ms: summary.map_or(0, |s| s.last_seen_ms),
            latest,
            trend_field,
            trend: sparkline_points(&values, SPARK_WIDTH, SPARK_HEIGHT),
        }
    }
}

/// One device on the overview: status, name, latest values, a sparkline, last seen. The whole
/// card links to the device page.
#[component]
pub fn DeviceCard(id: String) -> impl IntoView {
    let live = use_live();
    let card = {
        let id = id.clone();
        Memo::new(move |_| live.state.with(|s| s.devices.get(&id).map(Card::of)))
    };
    let get = move |f: fn(&Card) -> String| move || card.with(|c| c.as_ref().map(f));
    let online = move || card.with(|c| c.as_ref().is_some_and(|c| c.online));
    let last_seen = move || card.with(|c| c.as_ref().map(|c| live.age(c.last_seen_ms)));
    let latest = move || {
        card.with(|c| {
            c.as_ref()
                .map(|c| c.latest.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|(field, value)| {
                    view! {
                        <div class="value">
                            <dt>{field}</dt>
                            <dd>{value}</dd>
                        </div>
                    }
                })
                .collect_view()
        })
    };
    let href = links::device_page(&id, TimeWindow::Live);
    let alarmed = {
        let id = id.clone();
        move || {
            live.state
                .with(|s| s.alarms_for(Some(&id)).next().is_some())
        }
    };
    view! {
        <li
            class="card"
            class:offline=move || !online()
            class:alarm=alarmed
            data-device-id=id.clone()
        >
            <a class="card-link" href=href aria-label=format!("Open device {id}")>
                <span class="card-head">
                    <OnlineBadge online=Signal::derive(online) />
                    <span class="device-name">
                        {
                            let id = id.clone();
                            move || {
                                card.with(|c| c.as_ref().and_then(|c| c.name.clone()))
                                    .unwrap_or_else(|| id.clone())
                            }
                        }
                    </span>
                    // A registered name hides the id, so the id is shown beside it.
                    <span class="device-id">
                        {
                            let id = id.clone();
                            move || card.with(|c| c.as_ref().is_some_and(|c| c.name.is_some())).then(|| id.clone())
                        }
                    </span>
                </span>
                <dl class="latest" data-testid="latest">
                    {latest}
                </dl>
                <svg
                    class="sparkline"
                    viewBox=format!("0 0 {SPARK_WIDTH} {SPARK_HEIGHT}")
                    preserveAspectRatio="none"
                    role="img"
                    aria-label=get(|c| format!("recent {}", c.trend_field))
                >
                    <polyline points=get(|c| c.trend.clone()) />
                </svg>
                <span class="last-seen">"last seen " {last_seen}</span>
            </a>
            // Outside the link: a control inside it would be a link too.
            <DeviceControls id=id.clone() />
        </li>
    }
}
