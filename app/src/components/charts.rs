use crate::api::device_series;
use crate::chart::{render_series_svg, ChartSpec};
use crate::links;
use crate::live::use_live;
use crate::model::TimeWindow;
use crate::time::{now_ms, Zone};
use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;

/// Points per field a history window asks the database for (it downsamples to this).
pub const HISTORY_POINTS: u32 = 600;

/// Links to the live view and the history windows. The window lives in the page's address,
/// so a window can be bookmarked and is rendered on the server too.
#[component]
pub fn WindowPicker(id: String, window: TimeWindow) -> impl IntoView {
    let links = TimeWindow::ALL
        .into_iter()
        .map(|w| {
            let current = w == window;
            view! {
                <a
                    href=links::device_page(&id, w)
                    class:current=current
                    aria-current=current.then_some("page")
                    data-window=w.key()
                >
                    {w.label()}
                </a>
            }
        })
        .collect_view();
    view! {
        <nav class="window-picker" aria-label="Time window">
            {links}
        </nav>
    }
}

/// One chart per field: the live points as they arrive, or a window of stored history.
#[component]
pub fn DeviceCharts(id: String, window: TimeWindow) -> impl IntoView {
    let live = use_live();
    let history_id = id.clone();
    let history = Resource::new(
        move || (history_id.clone(), window),
        |(id, window)| async move {
            let Some(span) = window.span_ms() else {
                return Ok(None);
            };
            let to = now_ms() + 1;
            device_series(id, to - span, to, HISTORY_POINTS)
                .await
                .map(Some)
        },
    );

    let live_charts = move || {
        let zone = live.zone.get();
        live.state.with(|s| {
            let device = s.devices.get(&id)?;
            let charts = device
                .series
                .iter()
                .map(|(field, points)| {
                    let points: Vec<(i64, f64)> = points.iter().copied().collect();
                    chart(
                        field,
                        device.unit(field),
                        &points,
                        None,
                        zone,
                        TimeWindow::Live,
                        marks(live, &id, field),
                    )
                })
                .collect_view();
            Some(charts)
        })
    };
    let history_charts = move || {
        Suspend::new(async move {
            let zone = live.zone.get();
            match history.await {
                Ok(Some(window_data)) => {
                    let units = live.state.with(|s| {
                        s.devices.get(&window_data.device_id).map(|d| {
                            window_data
                                .series
                                .iter()
                                .map(|series| d.unit(&series.field).map(str::to_string))
                                .collect::<Vec<_>>()
                        })
                    });
                    if window_data.series.is_empty() {
                        return EitherOf4::A(view! {
                            <p class="empty" data-testid="no-history">
                                "Nothing stored in this window."
                            </p>
                        });
                    }
                    let span = Some((window_data.from_ms, window_data.to_ms));
                    let level = window_data.level_label();
                    let charts = window_data
                        .series
                        .iter()
                        .enumerate()
                        .map(|(i, series)| {
                            let points: Vec<(i64, f64)> =
                                series.points.iter().map(|p| (p.t_ms, p.avg)).collect();
                            let unit = units.as_ref().and_then(|u| u[i].clone());
                            let marks = marks(live, &window_data.device_id, &series.field);
                            chart(
                                &series.field,
                                unit.as_deref(),
                                &points,
                                span,
                                zone,
                                window,
                                marks,
                            )
                        })
                        .collect_view();
                    EitherOf4::B(view! {
                        <p class="level" data-testid="history-level">
                            "Each point is an average, computed " {level} "."
                        </p>
                        {charts}
                    })
                }
                Ok(None) => EitherOf4::C(()),
                Err(err) => {
                    EitherOf4::D(view! { <p class="error" role="alert">{err.to_string()}</p> })
                }
            }
        })
    };

    view! {
        <section class="charts" aria-label="Charts">
            {if window == TimeWindow::Live {
                Either::Left(live_charts)
            } else {
                Either::Right(view! {
                    <Suspense fallback=|| {
                        view! { <p class="loading">"Loading history…"</p> }
                    }>{history_charts}</Suspense>
                })
            }}
        </section>
    }
}

/// What alarms add to a field's chart: the thresholds of the rules on it, and whether one of
/// them is up (the chart is then marked red).
struct Marks {
    thresholds: Vec<f64>,
    alarm: bool,
    /// The drawing's width (see [`crate::live::Live::chart_width`]).
    width: u32,
}

fn marks(live: crate::live::Live, device: &str, field: &str) -> Marks {
    live.rules.with(|rules| {
        let on_field: Vec<&crate::model::AlarmRule> = rules
            .iter()
            .filter(|r| r.threshold_for(device, field).is_some())
            .collect();
        Marks {
            thresholds: on_field
                .iter()
                .filter_map(|r| r.threshold_for(device, field))
                .collect(),
            alarm: live.state.with(|s| {
                s.alarms_for(Some(device))
                    .any(|a| on_field.iter().any(|r| r.id == a.rule_id))
            }),
            width: live.chart_width.get(),
        }
    })
}

/// One plotters chart. The render time is kept on the figure (`data-render-ms`) for the
/// dashboard benchmark.
fn chart(
    field: &str,
    unit: Option<&str>,
    points: &[(i64, f64)],
    window: Option<(i64, i64)>,
    zone: Zone,
    shown: TimeWindow,
    marks: Marks,
) -> impl IntoView {
    let started = crate::time::precise_ms();
    // plotters' SVG backend escapes the device-supplied field name and unit.
    let svg = render_series_svg(ChartSpec {
        title: field,
        unit,
        points,
        window,
        zone,
        thresholds: &marks.thresholds,
        width: marks.width,
    });
    let took = crate::time::precise_ms() - started;
    view! {
        <figure
            class="chart"
            class:alarm=marks.alarm
            data-field=field.to_string()
            data-points=points.len()
            data-window=shown.key()
            data-render-ms=format!("{took:.2}")
        >
            <div class="chart-svg" inner_html=svg></div>
        </figure>
    }
}
