//! `GET /export/{device}.csv?day=2026-11-22` (or `?from=…&to=…`): one device's stored readings as
//! CSV, like the classic per-day files. One row per reading: receive time and device time as
//! ISO-8601 UTC, then one column per field. Streamed from the database, never built in memory.

use crate::protocol::DeviceId;
use crate::storage::Store;
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
            let mut text = String::new();
            for reading in chunk {
                match reading {
                    Ok(reading) => text.push_str(&data_row(&fields, &reading)),
                    Err(err) => {
                        // Headers are gone already: the client sees a cut-off download.
                        tracing::error!(%err, "export failed mid-stream");
                        return Err(std::io::Error::other("export failed"));
                    }
                }
            }
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
            if to <= from {
                return Err("to must be after from".into());
            }
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

fn header_row(fields: &[String]) -> String {
    let mut line = String::from("time_utc,device_time_utc");
    for field in fields {
        line.push(',');
        line.push_str(&csv_cell(field));
    }
    line.push('\n');
    line
}

fn data_row(fields: &[String], reading: &Reading) -> String {
    let mut line = iso_time(reading.received_ms);
    line.push(',');
    if let Some(ms) = reading.device_ms {
        line.push_str(&iso_time(ms));
    }
    for field in fields {
        line.push(',');
        if let Some(v) = reading.values.iter().find(|v| *v.field == **field) {
            line.push_str(&v.value.to_string());
        }
    }
    line.push('\n');
    line
}

/// A device-supplied name as one CSV cell: quoted when needed, and defused when a spreadsheet
/// would take it for a formula.
fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn iso_time(ms: i64) -> String {
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
        assert_eq!(
            data_row(&fields, &reading),
            "2025-11-22T00:00:00.123Z,,,23.5\n"
        );
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
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
    }
}
