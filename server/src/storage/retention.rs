//! Retention: deleting readings and aggregates older than their keeping period. Whole blocks
//! go at once; a block with readings on both sides of the cutoff is written again with the
//! newer ones. One SQL text serves both back ends.

use super::{packed, Backend, StorageError, Store};

/// Blocks deleted per statement, so the writer is never locked out for long.
const DELETE_CHUNK: i64 = 500;

/// A block that retention cuts in two.
#[derive(Debug, sqlx::FromRow)]
struct EdgeBlock {
    first_ms: i64,
    first_seq: i64,
    body: Vec<u8>,
}

impl Store {
    /// Deletes readings received before `cutoff_ms`; returns how many were deleted. Whole
    /// blocks go at once; a block that holds readings from both sides is written again with
    /// the newer ones. The rollups stay (see [`Store::delete_rollups_older_than`]).
    pub async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StorageError> {
        let devices: Vec<i64> =
            on_pool!(self, |pool| sqlx::query_scalar("SELECT key FROM devices")
                .fetch_all(pool)
                .await?);
        // Device by device (the key leads with the device) and in chunks, so the writer is
        // never locked out for long.
        let whole = "DELETE FROM blocks WHERE (device, first_ms, first_seq) IN
                       (SELECT device, first_ms, first_seq FROM blocks
                         WHERE device = $1 AND first_ms < $2 AND last_ms < $2 LIMIT $3)
                     RETURNING readings";
        let mut deleted = 0;
        for device in devices {
            loop {
                let counts: Vec<i64> = on_pool!(self, |pool| sqlx::query_scalar(whole)
                    .bind(device)
                    .bind(cutoff_ms)
                    .bind(DELETE_CHUNK)
                    .fetch_all(pool)
                    .await?);
                deleted += counts.iter().sum::<i64>() as u64;
                if (counts.len() as i64) < DELETE_CHUNK {
                    break;
                }
            }
            deleted += self.cut_blocks(device, cutoff_ms).await?;
        }
        Ok(deleted)
    }

    /// Writes the blocks of `device` that straddle `cutoff_ms` again without their older
    /// readings; returns how many readings went.
    async fn cut_blocks(&self, device: i64, cutoff_ms: i64) -> Result<u64, StorageError> {
        let edges: Vec<EdgeBlock> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT first_ms, first_seq, body FROM blocks
              WHERE device = $1 AND first_ms < $2 AND last_ms >= $2"
        )
        .bind(device)
        .bind(cutoff_ms)
        .fetch_all(pool)
        .await?);
        let mut deleted = 0;
        for edge in edges {
            let mut kept = Vec::new();
            for packed in packed::decode(&edge.body) {
                let packed = packed?;
                if packed.received_ms >= cutoff_ms {
                    kept.push(packed);
                } else {
                    deleted += 1;
                }
            }
            let block = super::batch::reblock(device, &kept);
            on_pool!(self, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "DELETE FROM blocks WHERE device = $1 AND first_ms = $2 AND first_seq = $3",
                )
                .bind(device)
                .bind(edge.first_ms)
                .bind(edge.first_seq)
                .execute(&mut *tx)
                .await?;
                if let Some(block) = &block {
                    sqlx::query(super::batch::INSERT_BLOCK)
                        .bind(block.device)
                        .bind(block.first_ms)
                        .bind(block.first_seq)
                        .bind(block.last_ms)
                        .bind(block.last_seq)
                        .bind(block.readings)
                        .bind(&block.body)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            });
        }
        Ok(deleted)
    }

    /// Deletes rollups of level `span_ms` that start before `cutoff_ms`; returns how many.
    pub async fn delete_rollups_older_than(
        &self,
        span_ms: i64,
        cutoff_ms: i64,
    ) -> Result<u64, StorageError> {
        let series: Vec<i64> = on_pool!(self, |pool| sqlx::query_scalar("SELECT key FROM series")
            .fetch_all(pool)
            .await?);
        let sql = "DELETE FROM rollups WHERE series = $1 AND span_ms = $2 AND start_ms < $3";
        let mut deleted = 0;
        for key in series {
            deleted += on_pool!(self, |pool| sqlx::query(sql)
                .bind(key)
                .bind(span_ms)
                .bind(cutoff_ms)
                .execute(pool)
                .await?
                .rows_affected());
        }
        Ok(deleted)
    }
}
