//! The device page's charts: the window picker, the choice of fields drawn together, and one
//! chart per field (or one for the fields picked, then one for each of the rest), live or over
//! a window of stored history.

use super::chart_figure::{ChartFigure, Figure, FigureLine, Pointer};
use crate::chart::ChartPoint;
use crate::links;
use crate::live::{use_live, Live};
use crate::model::{RuleThreshold, TimeWindow};
use crate::page_data::PageData;
use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;

/// Links to the live view and the history windows. The window lives in the page's address,
/// so a window can be bookmarked and is rendered on the server too; the fields drawn together
/// stay as they are.
#[component]
pub fn WindowPicker(id: String, window: TimeWindow, fields: Vec<String>) -> impl IntoView {
    let links = TimeWindow::ALL
        .into_iter()
        .map(|w| {
            let current = w == window;
            view! {
                <a
                    href=links::device_view(&id, w, &fields)
                    class:current=current
                    aria-current=current.then_some("page")
                    data-window=w.key()
                >
                    {w.label()}
                </a>
            }
        })
        .collect_view();
    // A window picked by dragging across a chart is none of the links.
    let zoomed = matches!(window, TimeWindow::Range { .. }).then(|| {
        view! {
            <span class="current" aria-current="page" data-window="range">
                {window.label()}
            </span>
        }
    });
    view! {
        <nav class="window-picker" aria-label="Time window">
            {links}
            {zoomed}
        </nav>
    }
}

/// Which fields to draw on one chart: a form of checkboxes that loads the page with them in
/// its address (it works before the page is hydrated, and the result can be bookmarked).
/// Shown for a device with two fields or more.
#[component]
fn FieldPicker(id: String, window: TimeWindow, fields: Vec<String>) -> impl IntoView {
    let live = use_live();
    // The form keeps the window as the page's address names it.
    let kept = links::window_params(window);
    move || {
        let names = live.state.with(|s| {
            s.devices
                .get(&id)
                .map(|d| d.series.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        });
        (names.len() > 1).then(|| {
            let boxes = names
                .into_iter()
                .map(|name| {
                    let checked = fields.contains(&name);
                    view! {
                        <label>
                            <input type="checkbox" name="field" value=name.clone() checked=checked />
                            {name}
                        </label>
                    }
                })
                .collect_view();
            let kept = kept
                .iter()
                .map(|(name, value)| {
                    view! { <input type="hidden" name=*name value=value.clone() /> }
                })
                .collect_view();
            let separate = (!fields.is_empty()).then(|| {
                view! {
                    <a href=links::device_page(&id, window) data-testid="separate">
                        "One chart each"
                    </a>
                }
            });
            view! {
                <form
                    class="field-picker"
                    method="get"
                    action=links::device_page(&id, TimeWindow::Live)
                    data-testid="field-picker"
                >
                    {kept}
                    <fieldset>
                        <legend>"Draw together"</legend>
                        {boxes}
                        <button type="submit">"Show on one chart"</button>
                        {separate}
                    </fieldset>
                </form>
            }
        })
    }
}

/// The charts: the live points as they arrive, or a window of stored history.
#[component]
pub fn DeviceCharts(id: String, window: TimeWindow, fields: Vec<String>) -> impl IntoView {
    let live = use_live();
    // The window of stored history the server drew the page with (history windows are links:
    // a new window is a new page).
    let data = PageData::current().ok();
    let picker = view! { <FieldPicker id=id.clone() window fields=fields.clone() /> };
    let together = StoredValue::new(fields);
    let drawing = Drawing {
        live,
        // Outlives the live charts, which are drawn anew with each reading.
        pointer: RwSignal::new(None::<Pointer>),
        rules: StoredValue::new(
            data.as_ref()
                .and_then(|d| d.rules::<Vec<RuleThreshold>>())
                .unwrap_or_default(),
        ),
    };
    let live_charts = move || {
        live.state.with(|s| {
            let device = s.devices.get(&id)?;
            let lines = device
                .series
                .iter()
                .map(|(field, points)| FigureLine {
                    field: field.clone(),
                    unit: device.unit(field).map(str::to_string),
                    points: points
                        .iter()
                        .map(|&(t, v)| ChartPoint::reading(t, v))
                        .collect(),
                })
                .collect();
            let charts = together.with_value(|together| {
                arrange(drawing, &id, lines, together, None, TimeWindow::Live)
            });
            Some(charts)
        })
    };
    // Drawn anew when what the charts show besides the points changes (the width they get in
    // this browser, the time zone, an alarm on a field).
    let history_charts = move || match data.as_ref().and_then(|d| d.history.as_ref()) {
        Some(Ok(window_data)) => {
            if window_data.series.is_empty() {
                return EitherOf4::A(view! {
                    <p class="empty" data-testid="no-history">
                        "Nothing stored in this window."
                    </p>
                });
            }
            let device = window_data.device_id.clone();
            let lines = live.state.with_untracked(|s| {
                let known = s.devices.get(&device);
                window_data
                    .series
                    .iter()
                    .map(|series| FigureLine {
                        field: series.field.clone(),
                        unit: known.and_then(|d| d.unit(&series.field).map(str::to_string)),
                        points: series
                            .points
                            .iter()
                            .map(|p| ChartPoint {
                                t_ms: p.t_ms,
                                value: p.avg,
                                min: p.min,
                                max: p.max,
                                count: p.count,
                            })
                            .collect(),
                    })
                    .collect()
            });
            let span = Some((window_data.from_ms, window_data.to_ms));
            let charts = together
                .with_value(|together| arrange(drawing, &device, lines, together, span, window));
            EitherOf4::B(view! {
                <p class="level" data-testid="history-level">
                    "Each point is an average, computed " {window_data.level_label()} "."
                </p>
                <div class="chart-grid">{charts}</div>
            })
        }
        None => EitherOf4::C(()),
        Some(Err(err)) => {
            EitherOf4::D(view! { <p class="error" role="alert">{err.to_string()}</p> })
        }
    };

    view! {
        <section class="charts" aria-label="Charts">
            {picker}
            {if window == TimeWindow::Live {
                Either::Left(view! { <div class="chart-grid">{live_charts}</div> })
            } else {
                Either::Right(history_charts)
            }}
        </section>
    }
}

/// What every chart of the page is drawn with.
#[derive(Clone, Copy)]
struct Drawing {
    live: Live,
    /// Where the pointer is over a chart, if it is.
    pointer: RwSignal<Option<Pointer>>,
    /// The rules that cover the device (the page data's), for threshold lines.
    rules: StoredValue<Vec<RuleThreshold>>,
}

/// The fields picked to go `together` on one chart (when two or more of them have data),
/// first, then one chart for each of the rest.
fn arrange(
    drawing: Drawing,
    device: &str,
    lines: Vec<FigureLine>,
    together: &[String],
    window: Option<(i64, i64)>,
    shown: TimeWindow,
) -> impl IntoView {
    // In the order the person picked them: the first gets the first colour.
    let mut rest = lines;
    let picked: Vec<FigureLine> = together
        .iter()
        .filter_map(|field| {
            let at = rest.iter().position(|l| l.field == *field)?;
            Some(rest.remove(at))
        })
        .collect();
    let (combined, rest) = if picked.len() > 1 {
        let figure = figure(drawing, device, &picked, window, shown);
        let pointer = drawing.pointer;
        (
            Some(view! { <ChartFigure figure lines=picked pointer /> }),
            rest,
        )
    } else {
        (None, picked.into_iter().chain(rest).collect())
    };
    let single = rest
        .into_iter()
        .map(|line| {
            let lines = vec![line];
            let figure = figure(drawing, device, &lines, window, shown);
            view! { <ChartFigure figure lines pointer=drawing.pointer /> }
        })
        .collect_view();
    (combined, single)
}

/// What a chart of `lines` shows besides them; with the alarms on their fields: the
/// thresholds of the rules on them drawn as lines, and the chart framed red while one is up.
fn figure(
    drawing: Drawing,
    device: &str,
    lines: &[FigureLine],
    window: Option<(i64, i64)>,
    shown: TimeWindow,
) -> Figure {
    let live = drawing.live;
    let (thresholds, alarm) = drawing.rules.with_value(|rules| {
        let on_fields: Vec<(&RuleThreshold, f64)> = rules
            .iter()
            .filter_map(|r| {
                let t = lines.iter().find_map(|l| r.threshold_for(&l.field))?;
                Some((r, t))
            })
            .collect();
        let alarm = live.state.with(|s| {
            s.alarms_for(Some(device))
                .any(|a| on_fields.iter().any(|(r, _)| r.id == a.rule_id))
        });
        (on_fields.iter().map(|(_, t)| *t).collect(), alarm)
    });
    Figure {
        device: device.to_string(),
        window,
        zone: live.zone.get(),
        shown,
        thresholds,
        alarm,
        width: live.chart_width.get(),
    }
}
