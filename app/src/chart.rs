//! Draws one field's series as an SVG line chart with `plotters`.
//!
//! The same function runs during server rendering and in the browser, so the first paint already
//! has charts and live updates redraw them without a reload. Time labels come from
//! [`crate::time::Zone`]: UTC on the server, the reader's zone once the page is hydrated.

use crate::time::{format_value, Zone};
use plotters::prelude::*;

/// The width charts are drawn at unless the page knows better (on the server, and on screens
/// wide enough for it); see [`chart_width_for`].
pub const CHART_WIDTH: u32 = 480;
pub const CHART_HEIGHT: u32 = 250;

/// What one chart shows.
#[derive(Debug, Clone, Copy)]
pub struct ChartSpec<'a> {
    /// The field name (device-supplied; the SVG backend escapes it).
    pub title: &'a str,
    /// The field's unit from the device's registration, shown on the value axis.
    pub unit: Option<&'a str>,
    /// (time in ms since the epoch, value), oldest first. Non-finite values are skipped.
    pub points: &'a [(i64, f64)],
    /// The time axis spans this window if given (history), else the points' own span (live).
    pub window: Option<(i64, i64)>,
    pub zone: Zone,
    /// Alarm thresholds on this field: drawn as red lines across the chart.
    pub thresholds: &'a [f64],
    /// Drawn this many pixels wide: the width it is shown at, so that its text keeps its size.
    pub width: u32,
}

/// The width to draw charts at on a screen `viewport` CSS pixels wide. On a phone a chart gets
/// the whole width less the page's margins (about 40 px); drawn at 480 and shrunk to that, its
/// 16 px labels would shrink to 11.
pub fn chart_width_for(viewport: f64) -> u32 {
    if viewport.is_finite() && viewport < 760.0 {
        ((viewport - 40.0).max(240.0)) as u32
    } else {
        CHART_WIDTH
    }
}

/// An SVG document for one series.
pub fn render_series_svg(spec: ChartSpec<'_>) -> String {
    let mut svg = String::new();
    // Drawing into a String cannot hit I/O errors; a failure would leave a partial SVG, which
    // is still better than no page, so the error is only logged.
    if let Err(err) = draw(&mut svg, spec) {
        leptos::logging::warn!("chart drawing failed: {err}");
    }
    svg
}

fn draw(svg: &mut String, spec: ChartSpec<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let finite: Vec<(i64, f64)> = spec
        .points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let (mut x_range, mut y_range) = ranges(&finite);
    // A threshold far from the values still shows, at the edge of a range widened to it.
    for &t in spec.thresholds.iter().filter(|t| t.is_finite()) {
        let pad = (y_range.end - y_range.start) * 0.05;
        y_range = y_range.start.min(t - pad)..y_range.end.max(t + pad);
    }
    if let Some((from, to)) = spec.window.filter(|(from, to)| to > from) {
        x_range = from..to;
    }
    let span = x_range.end - x_range.start;
    let (x_from, x_to) = (x_range.start, x_range.end);
    let zone = spec.zone;
    let time_desc = format!("time ({})", zone.label(x_range.end));

    let width = spec.width.clamp(240, 960);
    let root = SVGBackend::with_string(svg, (width, CHART_HEIGHT)).into_drawing_area();
    let mut chart = ChartBuilder::on(&root)
        // Sized for a phone too, where the drawing is shown about two thirds as wide.
        .caption(spec.title, (FontFamily::SansSerif, 20))
        .margin(8)
        // Room for the last time label, which is centred on the right edge.
        .margin_right(28)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)?;

    let x_label = |ms: &i64| zone.tick(*ms, span);
    let y_label = |v: &f64| format_value(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(5)
        .y_labels(5)
        .label_style((FontFamily::SansSerif, 16))
        .axis_desc_style((FontFamily::SansSerif, 15))
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_desc(time_desc.as_str())
        .light_line_style(RGBColor(128, 128, 128).mix(0.15))
        .bold_line_style(RGBColor(128, 128, 128).mix(0.3))
        .axis_style(RGBColor(128, 128, 128));
    if let Some(unit) = spec.unit.filter(|u| !u.is_empty()) {
        mesh.y_desc(unit);
    }
    mesh.draw()?;

    for &t in spec.thresholds.iter().filter(|t| t.is_finite()) {
        chart.draw_series(LineSeries::new(
            [(x_from, t), (x_to, t)],
            RGBColor(220, 38, 38).stroke_width(1),
        ))?;
    }
    chart.draw_series(LineSeries::new(
        finite,
        RGBColor(37, 99, 235).stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

/// Axis ranges with some headroom; a flat or single-point series still gets a visible band.
fn ranges(points: &[(i64, f64)]) -> (std::ops::Range<i64>, std::ops::Range<f64>) {
    let Some(&(first_ms, _)) = points.first() else {
        return (0..60_000, 0.0..1.0);
    };
    let last_ms = points.last().map_or(first_ms, |p| p.0);
    let x_range = if last_ms > first_ms {
        first_ms..last_ms
    } else {
        (first_ms - 30_000)..(first_ms + 30_000)
    };
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let pad = if hi > lo {
        (hi - lo) * 0.1
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (x_range, (lo - pad)..(hi + pad))
}

/// Points for a sparkline's `<polyline>` in a `width`×`height` box: the values scaled to fill
/// it, evenly spaced (a glance at the trend, not a time axis). Non-finite values are skipped.
pub fn sparkline_points(values: &[f64], width: f64, height: f64) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let step = width / (finite.len().max(2) - 1) as f64;
    finite
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // A flat line sits in the middle; otherwise the lowest value touches the bottom.
            let y = if hi > lo {
                height - (v - lo) / (hi - lo) * height
            } else {
                height / 2.0
            };
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(title: &'a str, points: &'a [(i64, f64)]) -> ChartSpec<'a> {
        ChartSpec {
            title,
            unit: None,
            points,
            window: None,
            zone: Zone::Utc,
            thresholds: &[],
            width: CHART_WIDTH,
        }
    }

    #[test]
    fn time_labels_never_repeat_even_over_a_few_seconds() {
        for span in [1_000, 3_000, 30_000, 3_600_000] {
            let svg = render_series_svg(spec("temp", &[(1_000_000, 1.0), (1_000_000 + span, 2.0)]));
            let labels: Vec<&str> = svg
                .split("<text")
                .skip(1)
                .filter_map(|t| t.split('>').nth(1)?.split('<').next())
                .filter(|t| t.contains(':'))
                .collect();
            assert!(labels.len() >= 3, "span {span}: {labels:?}");
            let mut unique = labels.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), labels.len(), "span {span}: {labels:?}");
        }
    }

    #[test]
    fn charts_are_drawn_as_wide_as_a_phone_shows_them() {
        assert_eq!(chart_width_for(390.0), 350);
        assert_eq!(chart_width_for(1440.0), CHART_WIDTH);
        assert_eq!(chart_width_for(200.0), 240, "never narrower than 240");
        let svg = render_series_svg(ChartSpec {
            width: 350,
            ..spec("temp", &[(0, 1.0), (1000, 2.0)])
        });
        assert!(svg.contains("width=\"350\""), "{}", &svg[..200]);
    }

    #[test]
    fn an_alarm_threshold_is_a_red_line_inside_the_range_even_far_from_the_values() {
        let points = [(0, 20.0), (60_000, 21.0)];
        let svg = render_series_svg(ChartSpec {
            thresholds: &[30.0],
            ..spec("temp", &points)
        });
        let lines: Vec<&str> = svg.split("<polyline").skip(1).collect();
        let ys = |colour: &str| -> Vec<f64> {
            lines
                .iter()
                .filter(|p| p.to_ascii_lowercase().contains(colour))
                .flat_map(|p| {
                    let coords = p.split("points=\"").nth(1).unwrap().split('"').next();
                    coords
                        .unwrap()
                        .split_whitespace()
                        .map(|xy| xy.split(',').nth(1).unwrap().parse::<f64>().unwrap())
                })
                .collect()
        };
        let threshold = ys("stroke=\"#dc2626\"");
        assert_eq!(threshold.len(), 2, "one straight line: {svg}");
        let series = ys("stroke=\"#2563eb\"");
        let top_of_series = series.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            threshold[0] > 0.0 && threshold[0] < top_of_series,
            "30 is drawn inside the chart, above the values ({threshold:?}, {series:?})"
        );
        let without = render_series_svg(spec("temp", &points));
        assert!(!without.to_ascii_lowercase().contains("#dc2626"));
    }

    #[test]
    fn draws_a_polyline_through_every_point() {
        let points: Vec<(i64, f64)> = (0..1000).map(|i| (i * 1000, (i as f64).sin())).collect();
        let svg = render_series_svg(spec("temp", &points));
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        let polyline = svg
            .split("<polyline")
            .find(|p| p.to_ascii_lowercase().contains("stroke=\"#2563eb\""))
            .expect("the series' polyline");
        let coords = polyline
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(coords.split_whitespace().count(), 1000);
        assert!(
            svg.contains(">\ntemp\n</text>"),
            "the caption is drawn as text"
        );
    }

    #[test]
    fn device_supplied_titles_are_escaped() {
        let hostile = "<img src=x onerror=alert(1)>";
        let svg = render_series_svg(ChartSpec {
            unit: Some(hostile),
            ..spec(hostile, &[(0, 1.0), (1000, 2.0)])
        });
        assert!(!svg.contains("<img"), "raw markup leaked into the SVG");
        assert_eq!(svg.matches("&lt;img src=x onerror=alert(1)&gt;").count(), 2);
    }

    #[test]
    fn empty_flat_and_non_finite_series_still_render() {
        for points in [
            vec![],
            vec![(5_000, 3.0)],
            vec![(0, 2.0), (1, 2.0)],
            vec![(0, f64::NAN), (1, f64::INFINITY)],
        ] {
            let svg = render_series_svg(spec("x", &points));
            assert!(svg.contains("</svg>"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
    }

    #[test]
    fn axes_name_the_unit_and_the_time_zone() {
        let points = [(0, 1.0), (60_000, 2.0)];
        let svg = render_series_svg(ChartSpec {
            unit: Some("°C"),
            ..spec("temp", &points)
        });
        assert!(svg.contains("°C"), "the unit labels the value axis");
        assert!(svg.contains("time (UTC)"));
        assert!(svg.contains("00:01:00"), "time labels are the zone's clock");
    }

    #[test]
    fn a_history_window_spans_the_whole_window() {
        let day = 86_400_000;
        let svg = render_series_svg(ChartSpec {
            window: Some((0, 7 * day)),
            ..spec("temp", &[(day, 1.0), (2 * day, 2.0)])
        });
        // Ticks show the date once the window spans days; the first one is the window's start.
        assert!(svg.contains("01-01 00:00"), "{svg}");
    }

    #[test]
    fn sparklines_fill_their_box() {
        assert_eq!(
            sparkline_points(&[1.0, 3.0, 2.0], 100.0, 20.0),
            "0.0,20.0 50.0,0.0 100.0,10.0"
        );
        assert_eq!(sparkline_points(&[5.0], 100.0, 20.0), "0.0,10.0");
        assert_eq!(sparkline_points(&[f64::NAN], 100.0, 20.0), "");
        assert_eq!(sparkline_points(&[], 100.0, 20.0), "");
    }
}
