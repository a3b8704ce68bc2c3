//! Stores written before the ingest layout (one row per value, device id and field name as
//! text) are converted when they are opened: migration 0003 renames the old table to
//! `readings_v1`, and the writer reads it back here in chunks, as readings, and writes them
//! through the normal write path (keys, packed values, rollups), all in one transaction with
//! the final `DROP TABLE`. A crash half-way leaves the old table whole, to be converted again.
//!
//! The SQL and the grouping are the same on both back ends; each writer runs the loop.

use app::model::{FieldValue, Reading};
use std::sync::Arc;

/// Old value rows read at a time.
pub const CHUNK: i64 = 20_000;

/// Whether there is anything to convert (the table exists until its conversion commits).
pub const SQLITE_PENDING: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'readings_v1'";
pub const POSTGRES_PENDING: &str =
    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'readings_v1'";

pub const COUNT: &str = "SELECT COUNT(*) FROM readings_v1";
pub const DEVICES: &str = "SELECT DISTINCT device_id FROM readings_v1 ORDER BY device_id";
/// The next chunk of one device after (received_ms, seq) = ($2, $3), through the old
/// covering index.
pub const NEXT: &str = "SELECT received_ms, seq, device_ms, field, value FROM readings_v1
                         WHERE device_id = $1 AND (received_ms, seq) > ($2, $3)
                         ORDER BY received_ms, seq, field LIMIT $4";
pub const DROP: &str = "DROP TABLE readings_v1";

/// A row of the old `readings` table.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OldRow {
    pub received_ms: i64,
    pub seq: i64,
    pub device_ms: Option<i64>,
    pub field: String,
    pub value: f64,
}

/// Rows of one device ordered by (received_ms, seq) → its readings. When the chunk was full
/// its last reading may be incomplete (its other fields in the next chunk): it is left out,
/// to start the next chunk, unless it is the only one.
pub fn group(device_id: &str, rows: Vec<OldRow>, chunk_was_full: bool) -> Vec<Arc<Reading>> {
    let mut readings: Vec<Reading> = Vec::new();
    for row in rows {
        let value = FieldValue {
            field: row.field.into(),
            value: row.value,
        };
        match readings.last_mut() {
            Some(last) if last.received_ms == row.received_ms && last.seq == row.seq as u64 => {
                last.values.push(value)
            }
            _ => readings.push(Reading {
                seq: row.seq as u64,
                device_id: device_id.into(),
                received_ms: row.received_ms,
                device_ms: row.device_ms,
                values: vec![value],
            }),
        }
    }
    if chunk_was_full && readings.len() > 1 {
        readings.pop();
    }
    readings.into_iter().map(Arc::new).collect()
}

/// Where the next chunk starts.
pub fn after(readings: &[Arc<Reading>]) -> Option<(i64, i64)> {
    readings.last().map(|r| (r.received_ms, r.seq as i64))
}

/// Logs progress at most every few seconds.
pub struct Progress {
    total: i64,
    done: i64,
    last_log: std::time::Instant,
}

impl Progress {
    /// Says what is about to happen, unless there is nothing to convert (a new store: its
    /// empty old table is just dropped).
    pub fn new(total: i64) -> Progress {
        if total > 0 {
            tracing::info!(
                value_rows = total,
                "converting stored readings to the ingest layout (once; the hub starts afterwards)"
            );
        }
        Progress {
            total,
            done: 0,
            last_log: std::time::Instant::now(),
        }
    }

    pub fn add(&mut self, readings: &[Arc<Reading>]) {
        self.done += readings.iter().map(|r| r.values.len() as i64).sum::<i64>();
        if self.last_log.elapsed() >= std::time::Duration::from_secs(5) {
            self.last_log = std::time::Instant::now();
            tracing::info!(
                "converting stored readings: {} of {} value rows ({:.0} %)",
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total.max(1) as f64
            );
        }
    }

    pub fn finish(&self) {
        if self.total > 0 {
            tracing::info!(value_rows = self.done, "stored readings converted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ms: i64, seq: i64, field: &str, value: f64) -> OldRow {
        OldRow {
            received_ms: ms,
            seq,
            device_ms: Some(ms + 1),
            field: field.into(),
            value,
        }
    }

    #[test]
    fn rows_of_one_reading_become_one_reading() {
        let rows = vec![
            row(1, 1, "a", 1.0),
            row(1, 1, "b", 2.0),
            row(1, 2, "a", 3.0),
            row(2, 3, "a", 4.0),
        ];
        let readings = group("7", rows.clone(), false);
        assert_eq!(readings.len(), 3);
        assert_eq!(readings[0].values.len(), 2);
        assert_eq!(readings[0].device_ms, Some(2));
        assert_eq!(after(&readings), Some((2, 3)));
        // A full chunk leaves its last reading for the next one.
        let readings = group("7", rows, true);
        assert_eq!(after(&readings), Some((1, 2)));
    }
}
