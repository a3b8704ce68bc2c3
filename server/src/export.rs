//! `GET /export/{device}.csv?day=2026-11-22` (or `?from=…&to=…`): one device's stored readings as
//! CSV, like the classic per-day files. One row per reading: receive time and device time as
//! ISO-8601 UTC, then one column per field. Streamed from the database, never built in memory.

use crate::protocol::DeviceId;
use crate::storage::Store;
use app::api::TIME_MAX_MS;
use app::model::Reading;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use futures::StreamExt;
use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;
/// Readings per body chunk: fewer, larger writes.
const READINGS_PER_CHUNK: usize = 512;

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// A UTC day, `YYYY-MM-DD`.
    day: Option<String>,
    /// Start and end: RFC 3339 times (`2026-11-22T00:00:00Z`) or milliseconds since the epoch.
    from: Option<String>,
    to: Option<String>,
}

pub async fn csv(
    State(store): State<Store>,
    Path(device): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Response {
    let device = device.strip_suffix(".csv").unwrap_or(&device);
    let device = match DeviceId::parse(device) {
        Ok(id) => id,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let (from_ms, to_ms) = match window(&query) {
        Ok(window) => window,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let fields = match store.fields(device.as_str(), from_ms, to_ms).await {
        Ok(fields) => fields,
        Err(err) => {
            tracing::error!(%err, "export: listing fields failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not answering; try again\n",
            )
                .into_response();
        }
    };

    let header_line = header_row(&fields);
    let rows = store
        .export(device.as_str(), from_ms, to_ms)
        .ready_chunks(READINGS_PER_CHUNK)
        .map(move |chunk| {
            let mut out = csv_writer();
            for reading in chunk {
                let written = reading.map_err(|err| err.to_string()).and_then(|reading| {
                    write_reading(&mut out, &fields, &reading).map_err(|e| e.to_string())
                });
                if let Err(err) = written {
                    // Headers are gone already: the client sees a cut-off download.
                    tracing::error!(%err, "export failed mid-stream");
                    return Err(std::io::Error::other("export failed"));
                }
            }
            let text = out
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(Bytes::from(text))
        });
    let body = futures::stream::once(async move { Ok(Bytes::from(header_line)) }).chain(rows);

    let filename = format!(
        "{}-{}.csv",
        safe_filename(device.as_str()),
        iso_date(from_ms)
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn window(query: &ExportQuery) -> Result<(i64, i64), String> {
    match (&query.day, &query.from, &query.to) {
        (Some(day), None, None) => {
            let date = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| format!("day {day:?} is not YYYY-MM-DD"))?;
            let start = date
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis())
                .ok_or("bad day")?;
            Ok((start, start + DAY_MS))
        }
        (None, Some(from), Some(to)) => {
            let (from, to) = (instant(from)?, instant(to)?);
            let inside = |ms: i64| (0..=TIME_MAX_MS).contains(&ms);
            if !inside(from) || !inside(to) {
                return Err("from and to must lie between 1970 and 9999".into());
            }
            if to <= from {
                return Err("to must be after from".into());
            }
            // Not capped in length: a device's whole history is what people download, and it
            // is read a page at a time, so a long window costs only what is stored in it.
            Ok((from, to))
        }
        _ => Err(
            "give either day=YYYY-MM-DD or both from= and to= (RFC 3339 or ms since the epoch)"
                .into(),
        ),
    }
}

fn instant(raw: &str) -> Result<i64, String> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("{raw:?} is neither an RFC 3339 time nor milliseconds"))
}

/// CSV rows as the `csv` crate writes them (quoting what needs it), one `\n` per row.
pub fn csv_writer_into<W: std::io::Write>(sink: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(sink)
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv_writer_into(Vec::new())
}

fn header_row(fields: &[String]) -> String {
    let mut out = csv_writer();
    let cells = ["time_utc", "device_time_utc"]
        .into_iter()
        .map(str::to_string)
        .chain(fields.iter().map(|f| defused(f)));
    // Writing to memory cannot fail, and the cells are UTF-8.
    let _ = out.write_record(cells);
    out.into_inner()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// One reading as a row: its receive time, the device's time if it sent one, and its value of
/// each of `fields` (empty where it has none).
pub fn write_reading<W: std::io::Write>(
    out: &mut csv::Writer<W>,
    fields: &[String],
    reading: &Reading,
) -> csv::Result<()> {
    out.write_field(iso_time(reading.received_ms))?;
    out.write_field(reading.device_ms.map(iso_time).unwrap_or_default())?;
    for field in fields {
        match reading.values.iter().find(|v| *v.field == **field) {
            Some(v) => out.write_field(v.value.to_string())?,
            None => out.write_field("")?,
        }
    }
    // No more fields: this ends the row.
    out.write_record(None::<&[u8]>)
}

/// A device-supplied name as a spreadsheet will read it: one that would be taken for a formula
/// gets a leading `'`.
fn defused(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

pub fn iso_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn iso_date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Device ids may hold anything printable; a download name keeps only the harmless part.
fn safe_filename(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::FieldValue;

    #[test]
    fn rows_and_cells() {
        let fields = vec!["hum".to_string(), "temp".to_string()];
        assert_eq!(header_row(&fields), "time_utc,device_time_utc,hum,temp\n");
        let reading = Reading {
            seq: 1,
            device_id: "7".into(),
            received_ms: 1_763_769_600_123,
            device_ms: None,
            values: vec![FieldValue {
                field: "temp".into(),
                value: 23.5,
            }],
        };
        let mut out = csv_writer();
        write_reading(&mut out, &fields, &reading).unwrap();
        assert_eq!(
            String::from_utf8(out.into_inner().unwrap()).unwrap(),
            "2025-11-22T00:00:00.123Z,,,23.5\n"
        );
        let names = ["a,b", "say \"hi\"", "=HYPERLINK(1)"].map(String::from);
        assert_eq!(
            header_row(&names),
            "time_utc,device_time_utc,\"a,b\",\"say \"\"hi\"\"\",'=HYPERLINK(1)\n"
        );
        assert_eq!(safe_filename("../<x>"), "____x_");
    }

    #[test]
    fn windows() {
        let q = |day: Option<&str>, from: Option<&str>, to: Option<&str>| ExportQuery {
            day: day.map(Into::into),
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        assert_eq!(
            window(&q(Some("1970-01-02"), None, None)),
            Ok((DAY_MS, 2 * DAY_MS))
        );
        assert_eq!(
            window(&q(None, Some("1000"), Some("1970-01-01T00:00:02Z"))),
            Ok((1000, 2000))
        );
        assert!(window(&q(Some("2026-13-01"), None, None)).is_err());
        assert!(window(&q(None, Some("5"), Some("5"))).is_err());
        assert!(window(&q(None, None, None)).is_err());
        // Out of range, or too long, however the numbers are chosen.
        let min = i64::MIN.to_string();
        let max = i64::MAX.to_string();
        assert!(window(&q(None, Some(&min), Some(&max))).is_err());
        assert!(window(&q(None, Some("-1"), Some("1000"))).is_err());
        assert!(window(&q(None, Some("0"), Some("253402300799999"))).is_ok());
        assert!(window(&q(None, Some("0"), Some("253402300800000"))).is_err());
    }
}
