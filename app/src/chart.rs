//! Draws one field's series as an SVG line chart with `plotters`.
//!
//! The same function runs during server rendering and in the browser, so the first paint already
//! has charts and live updates redraw them without a reload. Labels are formatted with plain
//! arithmetic (no clock or time-zone lookups) so both sides produce identical markup.

use plotters::prelude::*;

pub const CHART_WIDTH: u32 = 640;
pub const CHART_HEIGHT: u32 = 240;

/// An SVG document for `points` (time in ms since the epoch, value), oldest first.
///
/// `title` is device-supplied text; the SVG backend escapes it. Non-finite values are skipped.
pub fn render_series_svg(title: &str, points: &[(i64, f64)]) -> String {
    let mut svg = String::new();
    // Drawing into a String cannot hit I/O errors; a failure would leave a partial SVG, which
    // is still better than no page, so the error is only logged.
    if let Err(err) = draw(&mut svg, title, points) {
        leptos::logging::warn!("chart drawing failed: {err}");
    }
    svg
}

fn draw(
    svg: &mut String,
    title: &str,
    points: &[(i64, f64)],
) -> Result<(), Box<dyn std::error::Error>> {
    let finite: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let (x_range, y_range) = ranges(&finite);

    let root = SVGBackend::with_string(svg, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        // Room for the last time label, which is centred on the right edge.
        .margin_right(28)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(x_range, y_range)?;

    chart
        .configure_mesh()
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|ms| format_utc_time(*ms))
        .y_label_formatter(&|v| format_value(*v))
        .light_line_style(RGBColor(128, 128, 128).mix(0.15))
        .bold_line_style(RGBColor(128, 128, 128).mix(0.3))
        .axis_style(RGBColor(128, 128, 128))
        .draw()?;

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

/// `HH:MM:SS` in UTC.
pub fn format_utc_time(ms: i64) -> String {
    let secs_of_day = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// `YYYY-MM-DD` of a UTC time (civil-from-days, valid for any date after 1970).
pub fn format_utc_date(ms: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Short labels: no trailing zeros, at most 3 decimals.
pub fn format_value(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_polyline_through_every_point() {
        let points: Vec<(i64, f64)> = (0..1000).map(|i| (i * 1000, (i as f64).sin())).collect();
        let svg = render_series_svg("temp", &points);
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
        let svg = render_series_svg("<img src=x onerror=alert(1)>", &[(0, 1.0), (1000, 2.0)]);
        assert!(!svg.contains("<img"), "raw markup leaked into the SVG");
        assert!(svg.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn empty_flat_and_non_finite_series_still_render() {
        for points in [
            vec![],
            vec![(5_000, 3.0)],
            vec![(0, 2.0), (1, 2.0)],
            vec![(0, f64::NAN), (1, f64::INFINITY)],
        ] {
            let svg = render_series_svg("x", &points);
            assert!(svg.contains("</svg>"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
    }

    #[test]
    fn labels() {
        assert_eq!(format_utc_time(0), "00:00:00");
        assert_eq!(format_utc_time(86_399_000), "23:59:59");
        assert_eq!(format_utc_time(-1000), "23:59:59");
        assert_eq!(format_utc_date(0), "1970-01-01");
        assert_eq!(format_utc_date(1_763_769_600_123), "2025-11-22");
        assert_eq!(format_utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(format_value(23.5), "23.5");
        assert_eq!(format_value(40.0), "40");
        assert_eq!(format_value(-0.0001), "0");
    }
}
