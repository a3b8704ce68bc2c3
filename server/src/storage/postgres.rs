//! The PostgreSQL back end's writer: the same keys, packed values and rollups as SQLite's
//! (`batch.rs`), each table written with one statement per flush (columns travel as arrays
//! and UNNEST turns them back into rows, far faster than a statement per row). Reads share
//! their SQL with SQLite (`readings.rs`, `devices.rs`).

use super::batch::{self, Keys, Prepared};
use super::convert::{self, OldRow};
use super::StorageError;
use app::model::Reading;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn open(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

/// Writes readings; owned by the store's writer task.
pub(super) struct Writer {
    pool: PgPool,
    keys: Keys,
}

impl Writer {
    pub fn new(pool: PgPool) -> Writer {
        Writer {
            pool,
            keys: Keys::default(),
        }
    }

    /// Writes `batch` in one transaction.
    pub async fn write(&mut self, batch: &[Arc<Reading>]) -> Result<(), StorageError> {
        let result = self.try_write(batch).await;
        if result.is_err() {
            // Keys learned in the failed transaction may not exist: look them up again.
            self.keys = Keys::default();
        }
        result
    }

    async fn try_write(&mut self, batch: &[Arc<Reading>]) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        resolve(&mut tx, &mut self.keys, batch).await?;
        write_prepared(&mut tx, &batch::prepare(batch, &self.keys)?).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Converts readings stored in the old layout, if there are any.
    pub async fn convert_v1(&mut self) -> Result<u64, StorageError> {
        let result = self.try_convert_v1().await;
        if result.is_err() {
            self.keys = Keys::default();
        }
        result
    }

    async fn try_convert_v1(&mut self) -> Result<u64, StorageError> {
        let pending: i64 = sqlx::query_scalar(convert::POSTGRES_PENDING)
            .fetch_one(&self.pool)
            .await?;
        if pending == 0 {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let total: i64 = sqlx::query_scalar(convert::COUNT)
            .fetch_one(&mut *tx)
            .await?;
        let mut progress = convert::Progress::new(total);
        let devices: Vec<String> = sqlx::query_scalar(convert::DEVICES)
            .fetch_all(&mut *tx)
            .await?;
        for device in devices {
            let mut after = (i64::MIN, i64::MIN);
            loop {
                let rows: Vec<OldRow> = sqlx::query_as(convert::NEXT)
                    .bind(&device)
                    .bind(after.0)
                    .bind(after.1)
                    .bind(convert::CHUNK)
                    .fetch_all(&mut *tx)
                    .await?;
                let full = rows.len() as i64 == convert::CHUNK;
                let readings = convert::group(&device, rows, full);
                let Some(last) = convert::after(&readings) else {
                    break;
                };
                after = last;
                resolve(&mut tx, &mut self.keys, &readings).await?;
                write_prepared(&mut tx, &batch::prepare(&readings, &self.keys)?).await?;
                progress.add(&readings);
                if !full {
                    break;
                }
            }
        }
        sqlx::query(convert::DROP).execute(&mut *tx).await?;
        tx.commit().await?;
        progress.finish();
        Ok(total as u64)
    }
}

/// Finds (or creates) the keys of the batch's devices and series that `keys` does not know.
async fn resolve(
    tx: &mut Transaction<'_, Postgres>,
    keys: &mut Keys,
    batch: &[Arc<Reading>],
) -> Result<(), StorageError> {
    for _ in 0..2 {
        let missing = keys.missing(batch);
        if missing.is_empty() {
            break;
        }
        for id in &missing.devices {
            sqlx::query(batch::INSERT_DEVICE)
                .bind(id)
                .bind(batch::first_time(batch, id, None))
                .execute(&mut **tx)
                .await?;
            let key: i64 = sqlx::query_scalar(batch::DEVICE_KEY)
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
            keys.learn_device(id, key);
        }
        for (id, field) in &missing.series {
            let Some(device) = keys.device(id) else {
                continue;
            };
            sqlx::query(batch::INSERT_SERIES)
                .bind(device)
                .bind(field)
                .bind(batch::first_time(batch, id, Some(field)))
                .execute(&mut **tx)
                .await?;
            let key: i64 = sqlx::query_scalar(batch::SERIES_KEY)
                .bind(device)
                .bind(field)
                .fetch_one(&mut **tx)
                .await?;
            keys.learn_series(id, field, key);
        }
    }
    Ok(())
}

async fn write_prepared(conn: &mut PgConnection, batch: &Prepared) -> Result<(), sqlx::Error> {
    let blocks = &batch.blocks;
    sqlx::query(
        "INSERT INTO blocks (device, first_ms, first_seq, last_ms, last_seq, readings, body)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                              $5::bigint[], $6::bigint[], $7::bytea[])
         ON CONFLICT DO NOTHING",
    )
    .bind(blocks.iter().map(|b| b.device).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.first_ms).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.first_seq).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.last_ms).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.last_seq).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.readings).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.body.as_slice()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    // Key order (the maps are ordered): concurrent writers lock rows in the same order.
    sqlx::query(
        "UPDATE devices d SET last_seen_ms = GREATEST(d.last_seen_ms, u.last),
           removed_ms = CASE WHEN d.removed_ms < u.last THEN NULL ELSE d.removed_ms END
           FROM UNNEST($1::bigint[], $2::bigint[]) AS u (key, last) WHERE d.key = u.key",
    )
    .bind(batch.devices.keys().copied().collect::<Vec<_>>())
    .bind(batch.devices.values().map(|s| s.1).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE series s SET first_ms = LEAST(s.first_ms, u.first), last_ms = GREATEST(s.last_ms, u.last)
           FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u (key, first, last)
          WHERE s.key = u.key",
    )
    .bind(batch.series.keys().copied().collect::<Vec<_>>())
    .bind(batch.series.values().map(|s| s.0).collect::<Vec<_>>())
    .bind(batch.series.values().map(|s| s.1).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    let rollups: Vec<_> = batch.rollups.iter().collect();
    sqlx::query(
        "INSERT INTO rollups (series, span_ms, start_ms, minimum, maximum, total, samples)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[],
                              $5::float8[], $6::float8[], $7::bigint[])
         ON CONFLICT (series, span_ms, start_ms) DO UPDATE SET
           minimum = LEAST(rollups.minimum, excluded.minimum),
           maximum = GREATEST(rollups.maximum, excluded.maximum),
           total = rollups.total + excluded.total, samples = rollups.samples + excluded.samples",
    )
    .bind(rollups.iter().map(|(k, _)| k.series).collect::<Vec<_>>())
    .bind(rollups.iter().map(|(k, _)| k.span_ms).collect::<Vec<_>>())
    .bind(rollups.iter().map(|(k, _)| k.start_ms).collect::<Vec<_>>())
    .bind(rollups.iter().map(|(_, a)| a.min).collect::<Vec<_>>())
    .bind(rollups.iter().map(|(_, a)| a.max).collect::<Vec<_>>())
    .bind(rollups.iter().map(|(_, a)| a.sum).collect::<Vec<_>>())
    .bind(rollups.iter().map(|(_, a)| a.count).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
