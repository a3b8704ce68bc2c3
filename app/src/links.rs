//! Addresses of the dashboard's pages and downloads. Device ids are device-supplied and may hold
//! any printable character, so each one is percent-encoded into exactly one path segment.

use crate::model::TimeWindow;

/// The device page: `/devices/<id>`, or with a history window `/devices/<id>?window=1h`.
pub fn device_page(id: &str, window: TimeWindow) -> String {
    let path = format!("/devices/{}", encode_path_segment(id));
    match window {
        TimeWindow::Live => path,
        other => format!("{path}?window={}", other.key()),
    }
}

/// The CSV export of one UTC day (`YYYY-MM-DD`).
pub fn csv_day(id: &str, day: &str) -> String {
    format!("/export/{}.csv?day={day}", encode_path_segment(id))
}

/// The CSV export of `[from_ms, to_ms)`.
pub fn csv_window(id: &str, from_ms: i64, to_ms: i64) -> String {
    format!(
        "/export/{}.csv?from={from_ms}&to={to_ms}",
        encode_path_segment(id)
    )
}

/// Percent-encodes everything but unreserved characters.
pub fn encode_path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_device_id_is_one_path_segment() {
        assert_eq!(device_page("7", TimeWindow::Live), "/devices/7");
        assert_eq!(
            device_page("a/b c?<é>", TimeWindow::Hour1),
            "/devices/a%2Fb%20c%3F%3C%C3%A9%3E?window=1h"
        );
        assert_eq!(
            csv_day("x&y", "2026-11-22"),
            "/export/x%26y.csv?day=2026-11-22"
        );
        assert_eq!(csv_window("7", 1, 2), "/export/7.csv?from=1&to=2");
    }
}
