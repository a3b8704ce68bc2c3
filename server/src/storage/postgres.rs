//! The PostgreSQL back end. Each function has a twin in `sqlite.rs`.

use super::{pump, spawn_rows, BucketRow, Row, RowStream};
use app::model::Reading;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

pub(super) async fn open(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

pub(super) async fn write_batch(pool: &PgPool, batch: &[Reading]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (device, first, last) in super::device_spans(batch) {
        sqlx::query(
            "INSERT INTO devices (id, first_seen_ms, last_seen_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET last_seen_ms = GREATEST(devices.last_seen_ms, EXCLUDED.last_seen_ms)",
        )
        .bind(device)
        .bind(first)
        .bind(last)
        .execute(&mut *tx)
        .await?;
    }
    // One statement for the whole batch: each column travels as an array and UNNEST turns them
    // back into rows, which is far faster than a statement per row.
    let values = batch.iter().map(|r| r.values.len()).sum();
    let (mut devices, mut times, mut seqs, mut device_times, mut fields, mut numbers) = (
        Vec::with_capacity(values),
        Vec::with_capacity(values),
        Vec::with_capacity(values),
        Vec::with_capacity(values),
        Vec::with_capacity(values),
        Vec::with_capacity(values),
    );
    for r in batch {
        for v in &r.values {
            devices.push(r.device_id.as_str());
            times.push(r.received_ms);
            seqs.push(r.seq as i64);
            device_times.push(r.device_ms);
            fields.push(v.field.as_str());
            numbers.push(v.value);
        }
    }
    sqlx::query(
        "INSERT INTO readings (device_id, received_ms, seq, device_ms, field, value)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::float8[])",
    )
    .bind(devices)
    .bind(times)
    .bind(seqs)
    .bind(device_times)
    .bind(fields)
    .bind(numbers)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

pub(super) async fn save_registration(
    pool: &PgPool,
    device_id: &str,
    name: Option<&str>,
    registration: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO devices (id, first_seen_ms, last_seen_ms, name, registration) VALUES ($1, $2, $2, $3, $4)
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
    pool: &PgPool,
    device_id: &str,
) -> Result<Option<(i64, i64, Option<String>, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT first_seen_ms, last_seen_ms, name, registration FROM devices WHERE id = $1",
    )
    .bind(device_id)
    .fetch_optional(pool)
    .await
}

/// Every row of `devices`, in id order.
#[allow(clippy::type_complexity)]
pub(super) async fn devices(
    pool: &PgPool,
) -> Result<Vec<(String, i64, i64, Option<String>, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, first_seen_ms, last_seen_ms, name, registration FROM devices ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn newest(
    pool: &PgPool,
    device_id: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.received_ms, r.seq, r.device_ms, r.field, r.value
           FROM readings r
           JOIN (SELECT DISTINCT received_ms, seq FROM readings
                  WHERE device_id = $1 AND received_ms >= $2
                  ORDER BY received_ms DESC, seq DESC
                  LIMIT $3) newest
             ON r.received_ms = newest.received_ms AND r.seq = newest.seq
          WHERE r.device_id = $1
          ORDER BY r.received_ms, r.seq, r.field",
    )
    .bind(device_id)
    .bind(since_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
}

pub(super) async fn buckets(
    pool: &PgPool,
    device_id: &str,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
) -> Result<Vec<BucketRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The default 4 MB makes a day's aggregation sort on disk; with more it hashes in memory
    // (measured 733 → 509 ms on 10 M rows without the covering index). LOCAL: this query only.
    sqlx::query("SET LOCAL work_mem = '32MB'")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_as(
        "SELECT field, (received_ms - $2) / $4 AS bucket,
                MIN(value) AS min, MAX(value) AS max, AVG(value) AS avg, COUNT(*) AS count
           FROM readings
          WHERE device_id = $1 AND received_ms >= $2 AND received_ms < $3
          GROUP BY field, bucket
          ORDER BY field, bucket",
    )
    .bind(device_id)
    .bind(from_ms)
    .bind(to_ms)
    .bind(bucket_ms)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

pub(super) async fn fields(
    pool: &PgPool,
    device_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT field FROM readings
          WHERE device_id = $1 AND received_ms >= $2 AND received_ms < $3
          ORDER BY field",
    )
    .bind(device_id)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await
}

pub(super) fn rows(pool: PgPool, device_id: String, from_ms: i64, to_ms: i64) -> RowStream {
    spawn_rows(move |tx| {
        Box::pin(async move {
            let rows = sqlx::query_as::<_, Row>(
                "SELECT received_ms, seq, device_ms, field, value FROM readings
                  WHERE device_id = $1 AND received_ms >= $2 AND received_ms < $3
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

pub(super) async fn device_ids(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM devices")
        .fetch_all(pool)
        .await
}

/// Deletes at most `limit` readings of `device_id` received before `cutoff_ms`.
pub(super) async fn delete_chunk(
    pool: &PgPool,
    device_id: &str,
    cutoff_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM readings WHERE ctid IN
           (SELECT ctid FROM readings WHERE device_id = $1 AND received_ms < $2 LIMIT $3)",
    )
    .bind(device_id)
    .bind(cutoff_ms)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn count_readings(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT DISTINCT device_id, received_ms, seq FROM readings) t",
    )
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}
