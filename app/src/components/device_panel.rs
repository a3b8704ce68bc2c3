use crate::chart::render_series_svg;
use crate::components::Console;
use crate::model::DashboardState;
use leptos::prelude::*;

/// The selected device (or the first one): one live chart per field.
#[component]
pub fn DevicePanel(state: RwSignal<DashboardState>, selected: RwSignal<Option<String>>) -> AnyView {
    let current = Memo::new(move |_| {
        selected
            .get()
            .filter(|id| state.with(|s| s.devices.contains_key(id)))
            .or_else(|| state.with(|s| s.devices.keys().next().cloned()))
    });

    let charts = move || {
        let id = current.get()?;
        state.with(|s| {
            let device = s.devices.get(&id)?;
            Some(
                device
                    .series
                    .iter()
                    .map(|(field, points)| {
                        let points: Vec<(i64, f64)> = points.iter().copied().collect();
                        // plotters' SVG backend escapes the device-supplied field name.
                        let svg = render_series_svg(field, &points);
                        view! {
                            <figure class="chart" data-field=field.clone() data-points=points.len()>
                                <div class="chart-svg" inner_html=svg></div>
                            </figure>
                        }
                    })
                    .collect_view(),
            )
        })
    };

    view! {
        <section class="device-panel" aria-label="Selected device">
            {move || {
                current
                    .get()
                    .map(|id| {
                        let csv = csv_link(state, &id);
                        view! {
                            <div class="panel-head">
                                <h2 class="panel-title" data-testid="panel-title">{id.clone()}</h2>
                                {csv}
                            </div>
                            <div class="charts">{charts}</div>
                            <Console state device_id=id />
                        }
                    })
            }}
        </section>
    }
    .into_any()
}

/// Download link for the day of the device's newest reading (UTC), as stored.
fn csv_link(state: RwSignal<DashboardState>, id: &str) -> impl IntoView {
    let newest = state.with(|s| {
        s.devices.get(id).and_then(|d| {
            d.series
                .iter()
                .filter_map(|(_, p)| p.back().map(|(t, _)| *t))
                .max()
        })
    });
    newest.map(|ms| {
        let day = crate::chart::format_utc_date(ms);
        let href = format!("/export/{}.csv?day={day}", encode_path_segment(id));
        view! {
            <a class="csv-link" href=href download="">
                {format!("CSV {day}")}
            </a>
        }
    })
}

/// Percent-encodes everything but unreserved characters, so any device id is one path segment.
fn encode_path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
