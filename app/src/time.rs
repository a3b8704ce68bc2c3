//! Clock and calendar for the dashboard: the time zone labels are shown in, and the formats.
//!
//! The server renders every page in UTC (it cannot know the reader's zone); once hydrated, the
//! browser switches to the zone the reader chose, by default its own. Calendar arithmetic is done
//! here by hand so that the same code runs on both sides without a time-zone database: the
//! browser supplies its offset for each instant (which follows daylight saving), UTC has none.

use serde::{Deserialize, Serialize};

/// Where times are shown in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Zone {
    /// Server rendering and the reader's explicit choice.
    #[default]
    Utc,
    /// The browser's own time zone.
    Browser,
}

impl Zone {
    /// What the zone picker stores.
    pub fn key(self) -> &'static str {
        match self {
            Zone::Utc => "utc",
            Zone::Browser => "browser",
        }
    }

    pub fn from_key(key: &str) -> Option<Zone> {
        match key {
            "utc" => Some(Zone::Utc),
            "browser" => Some(Zone::Browser),
            _ => None,
        }
    }

    /// Milliseconds to add to a UTC instant to get the wall-clock time in this zone.
    pub fn offset_ms(self, at_ms: i64) -> i64 {
        match self {
            Zone::Utc => 0,
            Zone::Browser => browser_offset_ms(at_ms),
        }
    }

    /// `UTC`, or the offset at that instant such as `UTC+01:00`.
    pub fn label(self, at_ms: i64) -> String {
        let offset = self.offset_ms(at_ms);
        if offset == 0 {
            return "UTC".into();
        }
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.abs() / 60_000;
        format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// `HH:MM:SS` on the wall clock of this zone.
    pub fn clock(self, ms: i64) -> String {
        format_clock(ms + self.offset_ms(ms))
    }

    /// `YYYY-MM-DD` on the calendar of this zone.
    pub fn date(self, ms: i64) -> String {
        format_date(ms + self.offset_ms(ms))
    }

    /// A label for a chart's time axis: tenths of a second for spans of a few seconds (five
    /// labels over three seconds would otherwise say the same second twice), seconds for short
    /// spans, the date for long ones.
    pub fn tick(self, ms: i64, span_ms: i64) -> String {
        let wall = ms + self.offset_ms(ms);
        if span_ms < 5_000 {
            format!("{}.{}", format_clock(wall), wall.rem_euclid(1000) / 100)
        } else if span_ms <= 10 * 60_000 {
            format_clock(wall)
        } else if span_ms <= 36 * 3_600_000 {
            format_clock(wall)[..5].to_string()
        } else {
            format!("{} {}", &format_date(wall)[5..], &format_clock(wall)[..5])
        }
    }
}

#[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
fn browser_offset_ms(at_ms: i64) -> i64 {
    // getTimezoneOffset is "UTC minus local" in minutes, for that very instant.
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at_ms as f64));
    -(date.get_timezone_offset() as i64) * 60_000
}

#[cfg(not(all(target_arch = "wasm32", feature = "hydrate")))]
fn browser_offset_ms(_at_ms: i64) -> i64 {
    // Only server rendering and native tests get here; they show UTC.
    0
}

/// Milliseconds since the Unix epoch, from the browser's or the system's clock.
pub fn now_ms() -> i64 {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "hydrate")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// A monotonic clock in fractional milliseconds, for measuring how long drawing takes.
pub fn precise_ms() -> f64 {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    {
        leptos::prelude::window()
            .performance()
            .map_or(0.0, |p| p.now())
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "hydrate")))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
            * 1000.0
    }
}

/// `HH:MM:SS` of a wall-clock time in ms.
pub fn format_clock(ms: i64) -> String {
    let secs_of_day = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// `YYYY-MM-DD` of a wall-clock time in ms (civil-from-days, valid for any date after 1970).
pub fn format_date(ms: i64) -> String {
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

/// How long ago, in words a glance can take in: `just now`, `42 s ago`, `5 min ago`, `3 h ago`,
/// `2 d ago`. A time slightly in the future (clocks differ) counts as now.
pub fn format_age(age_ms: i64) -> String {
    let secs = age_ms.max(0) / 1000;
    match secs {
        0..=2 => "just now".into(),
        3..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// Short number labels: no trailing zeros, at most 3 decimals.
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
    fn clock_and_calendar() {
        assert_eq!(format_clock(0), "00:00:00");
        assert_eq!(format_clock(86_399_000), "23:59:59");
        assert_eq!(format_clock(-1000), "23:59:59");
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(1_763_769_600_123), "2025-11-22");
        assert_eq!(format_date(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn ticks_get_coarser_as_the_span_grows() {
        let ms = 1_763_815_845_000; // 2025-11-22 12:50:45 UTC
        assert_eq!(Zone::Utc.tick(ms + 450, 3_000), "12:50:45.4");
        assert_eq!(Zone::Utc.tick(ms, 60_000), "12:50:45");
        assert_eq!(Zone::Utc.tick(ms, 3_600_000), "12:50");
        assert_eq!(Zone::Utc.tick(ms, 7 * 86_400_000), "11-22 12:50");
        assert_eq!(Zone::Utc.label(ms), "UTC");
        assert_eq!(Zone::Utc.date(ms), "2025-11-22");
    }

    #[test]
    fn zone_keys_round_trip() {
        for zone in [Zone::Utc, Zone::Browser] {
            assert_eq!(Zone::from_key(zone.key()), Some(zone));
        }
        assert_eq!(Zone::from_key("mars"), None);
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(-5_000), "just now");
        assert_eq!(format_age(2_999), "just now");
        assert_eq!(format_age(42_000), "42 s ago");
        assert_eq!(format_age(5 * 60_000 + 10), "5 min ago");
        assert_eq!(format_age(3 * 3_600_000), "3 h ago");
        assert_eq!(format_age(2 * 86_400_000 + 1), "2 d ago");
    }

    #[test]
    fn values() {
        assert_eq!(format_value(23.5), "23.5");
        assert_eq!(format_value(40.0), "40");
        assert_eq!(format_value(-0.0001), "0");
    }
}
