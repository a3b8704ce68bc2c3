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

/// The colours of a chart's lines, in order: the first is the only one of a one-field chart.
/// (The page's legend shows the same colours.)
pub const LINE_COLOURS: [(u8, u8, u8); 6] = [
    (37, 99, 235),
    (234, 88, 12),
    (22, 163, 74),
    (147, 51, 234),
    (8, 145, 178),
    (219, 39, 119),
];

/// The CSS colour of line `i` (see [`LINE_COLOURS`]).
pub fn line_colour(i: usize) -> String {
    let (r, g, b) = LINE_COLOURS[i % LINE_COLOURS.len()];
    format!("rgb({r},{g},{b})")
}

/// What one chart shows.
#[derive(Debug, Clone)]
pub struct ChartSpec<'a> {
    /// The field name, or names (device-supplied; the SVG backend escapes it).
    pub title: &'a str,
    /// The unit from the device's registration, shown on the value axis.
    pub unit: Option<&'a str>,
    /// One line per field, each (time in ms since the epoch, value) oldest first, drawn in
    /// the colours of [`LINE_COLOURS`]. Non-finite values are skipped.
    pub lines: Vec<&'a [(i64, f64)]>,
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

/// A drawn chart: the SVG document, and where its plot sits in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub svg: String,
    pub frame: PlotFrame,
}

/// Where the plot area sits in a drawing (in the drawing's pixels) and what it spans: what
/// the page needs to turn a pointer's position into a time, and a value into a height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotFrame {
    /// The drawing's width.
    pub width: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub from_ms: i64,
    pub to_ms: i64,
    pub low: f64,
    pub high: f64,
}

impl PlotFrame {
    /// The time at `x` pixels from the drawing's left edge; `None` outside the plot.
    pub fn time_at(&self, x: f64) -> Option<i64> {
        if !(self.left..=self.right).contains(&x) || self.right <= self.left {
            return None;
        }
        let share = (x - self.left) / (self.right - self.left);
        Some(self.from_ms + (share * (self.to_ms - self.from_ms) as f64).round() as i64)
    }

    /// Where time `t_ms` is drawn, from the drawing's left edge.
    pub fn x_of(&self, t_ms: i64) -> f64 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        self.left + (t_ms - self.from_ms) as f64 / span * (self.right - self.left)
    }

    /// Where `value` is drawn, from the drawing's top edge.
    pub fn y_of(&self, value: f64) -> f64 {
        let span = if self.high > self.low {
            self.high - self.low
        } else {
            1.0
        };
        self.bottom - (value - self.low) / span * (self.bottom - self.top)
    }
}

/// Draws one series.
pub fn render_chart(spec: ChartSpec<'_>) -> Drawn {
    let mut svg = String::new();
    // Drawing into a String cannot hit I/O errors; a failure would leave a partial SVG, which
    // is still better than no page, so the error is only logged.
    let width = spec.width;
    let frame = match draw(&mut svg, spec) {
        Ok(frame) => frame,
        Err(err) => {
            leptos::logging::warn!("chart drawing failed: {err}");
            PlotFrame {
                width: f64::from(width),
                left: 0.0,
                right: 0.0,
                top: 0.0,
                bottom: 0.0,
                from_ms: 0,
                to_ms: 0,
                low: 0.0,
                high: 0.0,
            }
        }
    };
    Drawn { svg, frame }
}

fn draw(svg: &mut String, spec: ChartSpec<'_>) -> Result<PlotFrame, Box<dyn std::error::Error>> {
    let lines: Vec<Vec<(i64, f64)>> = spec
        .lines
        .iter()
        .map(|line| {
            line.iter()
                .copied()
                .filter(|(_, v)| v.is_finite())
                .collect()
        })
        .collect();
    let (mut x_range, mut y_range) = ranges(lines.iter().flatten());
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
    let (low, high) = (y_range.start, y_range.end);
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
    // plotters maps a range onto its first to its last pixel, the end being exclusive.
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let frame = PlotFrame {
        width: f64::from(width),
        left: f64::from(x_pixels.start),
        right: f64::from(x_pixels.end - 1),
        top: f64::from(y_pixels.start),
        bottom: f64::from(y_pixels.end - 1),
        from_ms: x_from,
        to_ms: x_to,
        low,
        high,
    };

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
    for (i, line) in lines.into_iter().enumerate() {
        let (r, g, b) = LINE_COLOURS[i % LINE_COLOURS.len()];
        chart.draw_series(LineSeries::new(line, RGBColor(r, g, b).stroke_width(2)))?;
    }
    root.present()?;
    Ok(frame)
}

/// One point of a chart as the crosshair reports it: a reading (`count` 1), or a downsampled
/// bucket's average with its extremes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    pub t_ms: i64,
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
}

impl ChartPoint {
    pub fn reading(t_ms: i64, value: f64) -> Self {
        ChartPoint {
            t_ms,
            value,
            min: value,
            max: value,
            count: 1,
        }
    }

    /// What the crosshair's label says: the time (with seconds, and the date unless the chart
    /// spans under a day) and the value with its unit; for a bucket of several readings its
    /// average, lowest and highest.
    pub fn describe(&self, unit: Option<&str>, zone: Zone, span_ms: i64) -> (String, String) {
        let time = if span_ms < 86_400_000 {
            zone.clock(self.t_ms)
        } else {
            format!("{} {}", zone.date(self.t_ms), zone.clock(self.t_ms))
        };
        let unit = unit.filter(|u| !u.is_empty()).unwrap_or_default();
        let spaced = |v: f64| {
            if unit.is_empty() {
                format_value(v)
            } else {
                format!("{} {unit}", format_value(v))
            }
        };
        let value = if self.count > 1 {
            format!(
                "avg {} · min {} · max {} ({} readings)",
                spaced(self.value),
                format_value(self.min),
                format_value(self.max),
                self.count
            )
        } else {
            spaced(self.value)
        };
        (time, value)
    }
}

/// The point nearest in time to `t_ms` among `points` (oldest first); non-finite values are
/// never chosen, as they are not drawn.
pub fn nearest(points: &[ChartPoint], t_ms: i64) -> Option<usize> {
    let after = points.partition_point(|p| p.t_ms < t_ms);
    let finite = |i: &usize| points[*i].value.is_finite();
    let later = (after..points.len()).find(finite);
    let earlier = (0..after).rev().find(finite);
    match (earlier, later) {
        (Some(e), Some(l)) => Some(if t_ms - points[e].t_ms <= points[l].t_ms - t_ms {
            e
        } else {
            l
        }),
        (e, l) => e.or(l),
    }
}

/// Axis ranges with some headroom; a flat or single-point series still gets a visible band.
fn ranges<'a>(
    points: impl Iterator<Item = &'a (i64, f64)>,
) -> (std::ops::Range<i64>, std::ops::Range<f64>) {
    let (first_ms, last_ms, lo, hi) = points.fold(
        (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY),
        |(first, last, lo, hi), &(t, v)| (first.min(t), last.max(t), lo.min(v), hi.max(v)),
    );
    if first_ms > last_ms {
        return (0..60_000, 0.0..1.0);
    }
    let x_range = if last_ms > first_ms {
        first_ms..last_ms
    } else {
        (first_ms - 30_000)..(first_ms + 30_000)
    };
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
            lines: vec![points],
            window: None,
            zone: Zone::Utc,
            thresholds: &[],
            width: CHART_WIDTH,
        }
    }

    #[test]
    fn time_labels_never_repeat_even_over_a_few_seconds() {
        for span in [1_000, 3_000, 30_000, 3_600_000] {
            let svg = render_chart(spec("temp", &[(1_000_000, 1.0), (1_000_000 + span, 2.0)])).svg;
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
        let svg = render_chart(ChartSpec {
            width: 350,
            ..spec("temp", &[(0, 1.0), (1000, 2.0)])
        })
        .svg;
        assert!(svg.contains("width=\"350\""), "{}", &svg[..200]);
    }

    #[test]
    fn an_alarm_threshold_is_a_red_line_inside_the_range_even_far_from_the_values() {
        let points = [(0, 20.0), (60_000, 21.0)];
        let svg = render_chart(ChartSpec {
            thresholds: &[30.0],
            ..spec("temp", &points)
        })
        .svg;
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
        let without = render_chart(spec("temp", &points)).svg;
        assert!(!without.to_ascii_lowercase().contains("#dc2626"));
    }

    #[test]
    fn draws_a_polyline_through_every_point() {
        let points: Vec<(i64, f64)> = (0..1000).map(|i| (i * 1000, (i as f64).sin())).collect();
        let svg = render_chart(spec("temp", &points)).svg;
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

    /// The frame is what the page maps a pointer with: each point of the drawn line must be
    /// where the frame says its time and value are, and a time read back from a point's `x`
    /// must be that point's.
    #[test]
    fn the_plot_frame_maps_times_and_values_where_the_line_is_drawn() {
        let points: Vec<(i64, f64)> = (0..20).map(|i| (60_000 * i, (i * i) as f64)).collect();
        for width in [300, CHART_WIDTH, 900] {
            let drawn = render_chart(ChartSpec {
                width,
                ..spec("temp", &points)
            });
            let frame = drawn.frame;
            assert_eq!(frame.width, f64::from(width));
            let polyline = drawn
                .svg
                .split("<polyline")
                .find(|p| p.to_ascii_lowercase().contains("stroke=\"#2563eb\""))
                .expect("the series' polyline");
            let coords = polyline.split("points=\"").nth(1).unwrap();
            let drawn_xy: Vec<(f64, f64)> = coords
                .split('"')
                .next()
                .unwrap()
                .split_whitespace()
                .map(|xy| {
                    let (x, y) = xy.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            assert_eq!(drawn_xy.len(), points.len());
            let step_ms = 60_000.0 / (frame.right - frame.left) * 19.0;
            for (&(t, v), &(x, y)) in points.iter().zip(&drawn_xy) {
                assert!((frame.x_of(t) - x).abs() <= 1.0, "{width}: t {t} at {x}");
                assert!((frame.y_of(v) - y).abs() <= 1.0, "{width}: {v} at {y}");
                let back = frame.time_at(x).expect("inside the plot");
                assert!(
                    ((back - t) as f64).abs() <= step_ms,
                    "{width}: {t} read as {back}"
                );
            }
            assert_eq!(frame.time_at(frame.left - 1.0), None, "left of the plot");
            assert_eq!(frame.time_at(frame.right + 1.0), None, "right of the plot");
        }
    }

    #[test]
    fn the_crosshair_picks_the_nearest_drawn_point() {
        let points: Vec<ChartPoint> = [(0, 1.0), (10, f64::NAN), (20, 3.0), (40, 4.0)]
            .into_iter()
            .map(|(t, v)| ChartPoint::reading(t, v))
            .collect();
        assert_eq!(nearest(&points, -5), Some(0));
        assert_eq!(nearest(&points, 9), Some(0), "the NaN at 10 is not drawn");
        assert_eq!(nearest(&points, 11), Some(2));
        assert_eq!(nearest(&points, 30), Some(2), "a tie goes to the earlier");
        assert_eq!(nearest(&points, 31), Some(3));
        assert_eq!(nearest(&points, 1_000), Some(3));
        assert_eq!(nearest(&[], 5), None);
        assert_eq!(nearest(&points[1..2], 5), None);
    }

    #[test]
    fn the_crosshair_says_when_and_how_much_and_for_a_bucket_its_spread() {
        let at = 1_795_000_000_000; // 2026-11-18 11:06:40 UTC
        let reading = ChartPoint::reading(at, 21.5);
        assert_eq!(
            reading.describe(Some("°C"), Zone::Utc, 3_600_000),
            ("11:06:40".to_string(), "21.5 °C".to_string())
        );
        let bucket = ChartPoint {
            t_ms: at,
            value: 21.25,
            min: 20.0,
            max: 23.0,
            count: 12,
        };
        assert_eq!(
            bucket.describe(None, Zone::Utc, 7 * 86_400_000),
            (
                "2026-11-18 11:06:40".to_string(),
                "avg 21.25 · min 20 · max 23 (12 readings)".to_string()
            )
        );
    }

    #[test]
    fn several_fields_share_one_chart_each_in_its_colour_within_one_range() {
        let temp = [(0, 20.0), (60_000, 22.0)];
        let hum = [(0, 40.0), (30_000, 45.0), (60_000, 50.0)];
        let drawn = render_chart(ChartSpec {
            lines: vec![&temp, &hum],
            ..spec("temp, hum", &[])
        });
        let lower = drawn.svg.to_ascii_lowercase();
        let polylines: Vec<&str> = lower.split("<polyline").skip(1).collect();
        let with = |colour: &str| polylines.iter().filter(|p| p.contains(colour)).count();
        assert_eq!(with("stroke=\"#2563eb\""), 1, "the first field's line");
        assert_eq!(with("stroke=\"#ea580c\""), 1, "the second field's line");
        assert!(
            drawn.frame.low < 20.0 && drawn.frame.high > 50.0,
            "{:?}",
            drawn.frame
        );
        assert_eq!(line_colour(1), "rgb(234,88,12)");
        assert_eq!(line_colour(6), line_colour(0));
    }

    #[test]
    fn device_supplied_titles_are_escaped() {
        let hostile = "<img src=x onerror=alert(1)>";
        let svg = render_chart(ChartSpec {
            unit: Some(hostile),
            ..spec(hostile, &[(0, 1.0), (1000, 2.0)])
        })
        .svg;
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
            let svg = render_chart(spec("x", &points)).svg;
            assert!(svg.contains("</svg>"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
    }

    #[test]
    fn axes_name_the_unit_and_the_time_zone() {
        let points = [(0, 1.0), (60_000, 2.0)];
        let svg = render_chart(ChartSpec {
            unit: Some("°C"),
            ..spec("temp", &points)
        })
        .svg;
        assert!(svg.contains("°C"), "the unit labels the value axis");
        assert!(svg.contains("time (UTC)"));
        assert!(svg.contains("00:01:00"), "time labels are the zone's clock");
    }

    #[test]
    fn a_history_window_spans_the_whole_window() {
        let day = 86_400_000;
        let svg = render_chart(ChartSpec {
            window: Some((0, 7 * day)),
            ..spec("temp", &[(day, 1.0), (2 * day, 2.0)])
        })
        .svg;
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
