//! The SQLite back end: one file, WAL mode. Each function has a twin in `postgres.rs`.

use super::{pump, spawn_rows, BucketRow, Row, RowStream};
use app::model::Reading;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use std::path::Path;
use std::time::Duration;

/// Rows per multi-row INSERT: 6 parameters each stays far below SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 500;

pub(super) async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives a process crash; only an OS crash or power loss may lose
        // the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

pub(super) async fn write_batch(pool: &SqlitePool, batch: &[Reading]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (device, first, last) in super::device_spans(batch) {
        sqlx::query(
            "INSERT INTO devices (id, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
        )
        .bind(device)
        .bind(first)
        .bind(last)
        .execute(&mut *tx)
        .await?;
    }
    let rows: Vec<_> = batch
        .iter()
        .flat_map(|r| r.values.iter().map(move |v| (r, v)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO readings (device_id, received_ms, seq, device_ms, field, value) ",
        );
        insert.push_values(chunk, |mut row, (reading, value)| {
            row.push_bind(&reading.device_id)
                .push_bind(reading.received_ms)
                .push_bind(reading.seq as i64)
                .push_bind(reading.device_ms)
                .push_bind(&value.field)
                .push_bind(value.value);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

pub(super) async fn save_registration(
    pool: &SqlitePool,
    device_id: &str,
    name: Option<&str>,
    registration: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO devices (id, first_seen_ms, last_seen_ms, name, registration) VALUES (?1, ?2, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, registration = excluded.registration",
    )
    .bind(device_id)
    .bind(now_ms)
    .bind(name)
    .bind(registration)
    .execute(pool)
    .await?;
    Ok(())
}

#[allow(clippy::type_complexity)]
pub(super) async fn device(
    pool: &SqlitePool,
    device_id: &str,
) -> Result<Option<(i64, i64, Option<String>, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT first_seen_ms, last_seen_ms, name, registration FROM devices WHERE id = ?1",
    )
    .bind(device_id)
    .fetch_optional(pool)
    .await
}

/// Every row of `devices`, in id order.
#[allow(clippy::type_complexity)]
pub(super) async fn devices(
    pool: &SqlitePool,
) -> Result<Vec<(String, i64, i64, Option<String>, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, first_seen_ms, last_seen_ms, name, registration FROM devices ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn newest(
    pool: &SqlitePool,
    device_id: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.received_ms, r.seq, r.device_ms, r.field, r.value
           FROM readings r
           JOIN (SELECT DISTINCT received_ms, seq FROM readings
                  WHERE device_id = ?1 AND received_ms >= ?2
                  ORDER BY received_ms DESC, seq DESC
                  LIMIT ?3) newest
             ON r.received_ms = newest.received_ms AND r.seq = newest.seq
          WHERE r.device_id = ?1
          ORDER BY r.received_ms, r.seq, r.field",
    )
    .bind(device_id)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub(super) async fn buckets(
    pool: &SqlitePool,
    device_id: &str,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
) -> Result<Vec<BucketRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT field, (received_ms - ?2) / ?4 AS bucket,
                MIN(value) AS min, MAX(value) AS max, AVG(value) AS avg, COUNT(*) AS count
           FROM readings
          WHERE device_id = ?1 AND received_ms >= ?2 AND received_ms < ?3
          GROUP BY field, bucket
          ORDER BY field, bucket",
    )
    .bind(device_id)
    .bind(from_ms)
    .bind(to_ms)
    .bind(bucket_ms)
    .fetch_all(pool)
    .await
}

pub(super) async fn fields(
    pool: &SqlitePool,
    device_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT field FROM readings
          WHERE device_id = ?1 AND received_ms >= ?2 AND received_ms < ?3
          ORDER BY field",
    )
    .bind(device_id)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await
}

pub(super) fn rows(pool: SqlitePool, device_id: String, from_ms: i64, to_ms: i64) -> RowStream {
    spawn_rows(move |tx| {
        Box::pin(async move {
            let rows = sqlx::query_as::<_, Row>(
                "SELECT received_ms, seq, device_ms, field, value FROM readings
                  WHERE device_id = ?1 AND received_ms >= ?2 AND received_ms < ?3
                  ORDER BY received_ms, seq, field",
            )
            .bind(&device_id)
            .bind(from_ms)
            .bind(to_ms)
            .fetch(&pool);
            pump(rows, tx).await;
        })
    })
}

pub(super) async fn device_ids(pool: &SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM devices")
        .fetch_all(pool)
        .await
}

/// Deletes at most `limit` readings of `device_id` received before `cutoff_ms`.
pub(super) async fn delete_chunk(
    pool: &SqlitePool,
    device_id: &str,
    cutoff_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM readings WHERE rowid IN
           (SELECT rowid FROM readings WHERE device_id = ?1 AND received_ms < ?2 LIMIT ?3)",
    )
    .bind(device_id)
    .bind(cutoff_ms)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn count_readings(pool: &SqlitePool) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT DISTINCT device_id, received_ms, seq FROM readings)",
    )
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}
