//! One chart on the device page, and what a person can do with it: point at it (mouse, pen,
//! finger, or the arrow keys once it has focus) to read the time and value of the nearest
//! point, and drag across it to zoom into that stretch of time, which becomes the page's
//! address (a bookmarkable `?from=…&to=…` window of stored history).
//!
//! The drawing itself is the plotters SVG from [`crate::chart`]; the crosshair, its label and
//! the zoom band are elements laid over it, placed in percentages of the drawing so they stay
//! on the line whatever width the drawing is shown at.

use crate::chart::{
    line_colour, nearest, render_chart, ChartPoint, ChartSpec, PlotFrame, CHART_HEIGHT,
};
use crate::links;
use crate::model::TimeWindow;
use crate::time::Zone;
use leptos::prelude::*;
use std::sync::Arc;
use wasm_bindgen::JsCast;

/// A drag narrower than this (CSS pixels) is a tap or a click: it points, it does not zoom.
const MIN_DRAG_PX: f64 = 8.0;

/// One field's line on a chart.
#[derive(Debug, Clone)]
pub struct FigureLine {
    pub field: String,
    pub unit: Option<String>,
    /// Oldest first.
    pub points: Vec<ChartPoint>,
}

/// What a chart shows besides its lines.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The device, for the zoomed page's address.
    pub device: String,
    /// The time axis spans this window if given (history), else the points' own span (live).
    pub window: Option<(i64, i64)>,
    pub zone: Zone,
    /// The window the page shows (kept on the figure for tests and the benchmark).
    pub shown: TimeWindow,
    /// Alarm thresholds on this field, drawn as red lines.
    pub thresholds: Vec<f64>,
    /// An alarm on this field is up: the chart is framed red.
    pub alarm: bool,
    /// The drawing's width in pixels (see [`crate::live::Live::chart_width`]).
    pub width: u32,
}

/// Where the pointer is over one of the page's charts. The page keeps it, not the chart: a
/// live chart is drawn anew with each reading, and the crosshair stays where it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Pointer {
    /// Which chart (its fields, as in `data-field`).
    chart: Arc<str>,
    /// The time of the point the crosshair is on.
    t_ms: i64,
    /// Where a drag started, while a button or finger is down (drawing pixels).
    drag_from: Option<f64>,
    /// Where the pointer is (drawing pixels).
    x: f64,
}

/// One chart, of one field or several (with a legend), with its crosshair and zoom. The
/// render time is kept on the figure (`data-render-ms`) for the dashboard benchmark.
#[component]
pub fn ChartFigure(
    figure: Figure,
    lines: Vec<FigureLine>,
    /// Where the pointer is over the page's charts (see [`Pointer`]).
    pointer: RwSignal<Option<Pointer>>,
) -> impl IntoView {
    let started = crate::time::precise_ms();
    let drawn_lines: Vec<Vec<(i64, f64)>> = lines
        .iter()
        .map(|line| line.points.iter().map(|p| (p.t_ms, p.value)).collect())
        .collect();
    let fields: Vec<String> = lines.iter().map(|l| l.field.clone()).collect();
    let title = fields.join(", ");
    // One unit on the value axis, if every line has the same one.
    let unit = lines
        .first()
        .and_then(|l| l.unit.clone())
        .filter(|u| lines.iter().all(|l| l.unit.as_ref() == Some(u)));
    // plotters' SVG backend escapes the device-supplied field names and unit.
    let drawn = render_chart(ChartSpec {
        title: &title,
        unit: unit.as_deref(),
        lines: drawn_lines.iter().map(Vec::as_slice).collect(),
        window: figure.window,
        zone: figure.zone,
        thresholds: &figure.thresholds,
        width: figure.width,
    });
    let took = crate::time::precise_ms() - started;
    let frame = drawn.frame;
    let count: usize = lines.iter().map(|l| l.points.len()).sum();
    let legend = (lines.len() > 1).then(|| {
        let entries = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let unit = line.unit.as_ref().map(|u| format!(" ({u})"));
                view! {
                    <li>
                        <span class="swatch" style=format!("background:{}", line_colour(i))></span>
                        {line.field.clone()}
                        {unit}
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="chart-legend" aria-label="Lines">{entries}</ul> }
    });
    let lines = StoredValue::new(lines);
    let key: Arc<str> = fields.join(",").into();
    // The pointer, if it is over this chart.
    let mine = {
        let key = key.clone();
        move || pointer.get().filter(|p| p.chart == key)
    };
    let mine_untracked = {
        let key = key.clone();
        move || pointer.get_untracked().filter(|p| p.chart == key)
    };
    let place = {
        let key = key.clone();
        move |t_ms: i64, drag_from: Option<f64>, x: f64| {
            pointer.set(Some(Pointer {
                chart: key.clone(),
                t_ms,
                drag_from,
                x,
            }))
        }
    };
    let clear = {
        let mine_untracked = mine_untracked.clone();
        move || {
            if mine_untracked().is_some() {
                pointer.set(None);
            }
        }
    };

    // The pointer's position in the drawing's pixels: the drawing is scaled to the width of
    // the element the handlers sit on.
    let drawing_x = move |ev: &web_sys::PointerEvent| -> Option<f64> {
        let rect = handler_element(ev)?.get_bounding_client_rect();
        (rect.width() > 0.0)
            .then(|| (f64::from(ev.client_x()) - rect.left()) * frame.width / rect.width())
    };
    // The time of the drawn point nearest to `x`, over all lines.
    let point_at = move |x: f64| {
        let t = frame.time_at(x.clamp(frame.left, frame.right))?;
        lines.with_value(|lines| {
            lines
                .iter()
                .filter_map(|l| nearest(&l.points, t).map(|i| l.points[i].t_ms))
                .min_by_key(|p| (p - t).abs())
        })
    };
    let on_move = {
        let (mine_untracked, place) = (mine_untracked.clone(), place.clone());
        move |ev: web_sys::PointerEvent| {
            let Some(x) = drawing_x(&ev) else { return };
            let Some(t_ms) = point_at(x) else { return };
            place(t_ms, mine_untracked().and_then(|p| p.drag_from), x);
        }
    };
    let on_down = {
        let place = place.clone();
        move |ev: web_sys::PointerEvent| {
            if ev.button() != 0 {
                return;
            }
            let Some(x) = drawing_x(&ev) else { return };
            if frame.time_at(x).is_none() {
                return;
            }
            // Keep receiving the moves when the pointer leaves the chart mid-drag.
            if let Some(element) = handler_element(&ev) {
                let _ = element.set_pointer_capture(ev.pointer_id());
            }
            if let Some(t_ms) = point_at(x) {
                place(t_ms, Some(x), x);
            }
        }
    };
    let device = figure.device.clone();
    // A zoomed page keeps the fields drawn together (one field's chart adds none).
    let zoom_fields = fields.clone();
    let on_up = {
        let (mine_untracked, place) = (mine_untracked.clone(), place.clone());
        move |ev: web_sys::PointerEvent| {
            let Some(Pointer {
                drag_from: Some(from),
                t_ms,
                ..
            }) = mine_untracked()
            else {
                return;
            };
            let to = drawing_x(&ev).unwrap_or(from);
            place(t_ms, None, to);
            if let Some(window) = zoom_window(frame, from, to, &ev) {
                let address = links::device_view(&device, window, &zoom_fields);
                let _ = window_location().set_href(&address);
            }
        }
    };
    // The arrow keys step through the first line's points.
    let on_key = {
        let (mine_untracked, place, clear) = (mine_untracked.clone(), place.clone(), clear.clone());
        move |ev: web_sys::KeyboardEvent| {
            let step: isize = match ev.key().as_str() {
                "ArrowLeft" => -1,
                "ArrowRight" => 1,
                "Escape" => {
                    clear();
                    return;
                }
                _ => return,
            };
            let Some(t_ms) = lines.with_value(|lines| {
                let points = &lines.first()?.points;
                let last = points.len().checked_sub(1)?;
                let at = mine_untracked().map_or(last, |p| {
                    nearest(points, p.t_ms)
                        .unwrap_or(last)
                        .saturating_add_signed(step)
                        .min(last)
                });
                Some(points[at].t_ms)
            }) else {
                return;
            };
            ev.prevent_default();
            place(t_ms, None, frame.x_of(t_ms));
        }
    };

    let zone = figure.zone;
    let span = frame.to_ms - frame.from_ms;
    let percent_x = move |x: f64| format!("{:.2}%", x / frame.width * 100.0);
    let percent_y = move |y: f64| format!("{:.2}%", y / f64::from(CHART_HEIGHT) * 100.0);
    // The plot's rows: where the crosshair and the zoom band reach from and to.
    let plot_rows = format!(
        "top:{};height:{}",
        percent_y(frame.top),
        percent_y(frame.bottom - frame.top)
    );
    let crosshair = move || {
        let Pointer {
            t_ms, drag_from, x, ..
        } = mine()?;
        let line_x = frame.x_of(t_ms);
        // Each line's point nearest to the crosshair: a dot on the line and a row in the label.
        let (dots, rows) = lines.with_value(|lines| {
            let several = lines.len() > 1;
            let mut time = None;
            let mut dots = Vec::new();
            let mut rows = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                let Some(point) = nearest(&line.points, t_ms).map(|at| line.points[at]) else {
                    continue;
                };
                let (when, value) = point.describe(line.unit.as_deref(), zone, span);
                time.get_or_insert(when);
                let colour = line_colour(i);
                dots.push(view! {
                    <div
                        class="chart-dot"
                        style=format!(
                            "left:{};top:{};background:{colour}",
                            percent_x(frame.x_of(point.t_ms)),
                            percent_y(frame.y_of(point.value)),
                        )
                    ></div>
                });
                let name = several.then(|| {
                    view! {
                        <span class="swatch" style=format!("background:{colour}")></span>
                        {format!("{}: ", line.field)}
                    }
                });
                rows.push(view! { <span class="chart-tip-value">{name}{value}</span> });
            }
            (dots, time.map(|time| (time, rows)))
        });
        let (time, rows) = rows?;
        // The label sits on the side of the line with more room.
        let (side, offset) = if line_x < frame.width / 2.0 {
            ("left", percent_x(line_x))
        } else {
            ("right", percent_x(frame.width - line_x))
        };
        let band = drag_from.map(|from| {
            let (a, b) = (from.min(x), from.max(x));
            let (a, b) = (a.max(frame.left), b.min(frame.right));
            view! {
                <div
                    class="chart-zoom"
                    style=format!(
                        "left:{};width:{};{plot_rows}",
                        percent_x(a),
                        percent_x((b - a).max(0.0)),
                    )
                ></div>
            }
        });
        Some(view! {
            <div
                class="chart-crosshair"
                style=format!("left:{};{plot_rows}", percent_x(line_x))
            ></div>
            {dots}
            <div class="chart-tip" style=format!("{side}: {offset}") data-testid="chart-tip">
                <span class="chart-tip-time">{time}</span>
                {rows}
            </div>
            {band}
        })
    };

    let on_blur = {
        let clear = clear.clone();
        move |_| clear()
    };
    let on_cancel = move |_| clear();
    let combined = fields.len() > 1;
    // Leaving the chart ends pointing, but not a drag (the capture brings its end back here),
    // and not a tap: a finger lifted "leaves", and the label it asked for should stay.
    let on_leave = move |ev: web_sys::PointerEvent| {
        if ev.pointer_type() == "touch" {
            return;
        }
        if mine_untracked().is_some_and(|p| p.drag_from.is_none()) {
            pointer.set(None);
        }
    };
    view! {
        <figure
            class="chart"
            class:alarm=figure.alarm
            class:combined=combined
            data-field=key.to_string()
            data-points=count
            data-window=figure.shown.key()
            data-render-ms=format!("{took:.2}")
            tabindex="0"
            aria-label=format!(
                "Chart of {title}: arrow keys read the points, drag across it to zoom",
            )
            on:keydown=on_key
            on:blur=on_blur
        >
            <div
                class="chart-plot"
                on:pointermove=on_move
                on:pointerdown=on_down
                on:pointerup=on_up
                on:pointercancel=on_cancel
                on:pointerleave=on_leave
            >
                <div class="chart-svg" inner_html=drawn.svg></div>
                {crosshair}
            </div>
            {legend}
        </figure>
    }
}

/// The window a drag from `from` to `to` (drawing pixels) picks, if it is wide enough to be
/// a drag rather than a tap.
fn zoom_window(
    frame: PlotFrame,
    from: f64,
    to: f64,
    ev: &web_sys::PointerEvent,
) -> Option<TimeWindow> {
    let css_per_drawing = handler_element(ev)?.get_bounding_client_rect().width() / frame.width;
    if (to - from).abs() * css_per_drawing < MIN_DRAG_PX {
        return None;
    }
    let (a, b) = (from.min(to), from.max(to));
    let start = frame.time_at(a.max(frame.left))?;
    let end = frame.time_at(b.min(frame.right))?;
    TimeWindow::range(start, end)
}

/// The element whose handler is running (the plot), which the drawing is scaled to.
fn handler_element(ev: &web_sys::PointerEvent) -> Option<web_sys::Element> {
    ev.current_target()?.dyn_into::<web_sys::Element>().ok()
}

fn window_location() -> web_sys::Location {
    leptos::prelude::window().location()
}
