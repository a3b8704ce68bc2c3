//! Every reading, kept in an embedded SQLite database (WAL mode) in the data folder.
//!
//! Ingest never waits on the disk per reading: [`Store::append`] queues the reading for a
//! writer task that commits batches in one transaction, every `flush_interval` or as soon as
//! `flush_rows` values are waiting. [`Store::close`] flushes what is queued; a graceful stop
//! therefore loses nothing, and a crash loses at most the last flush interval.

use app::model::{FieldValue, Reading};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

/// File name of the database inside the data folder.
pub const DATABASE_FILE: &str = "iothub.db";

/// Readings waiting for the writer before `append` makes ingest wait.
const QUEUE_CAPACITY: usize = 10_000;
/// Readings kept in memory while the database refuses writes (disk full, say); beyond it the
/// oldest are dropped with an error in the log rather than exhausting memory.
const MAX_UNWRITTEN: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub flush_interval: Duration,
    pub flush_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the store is closed")]
    Closed,
}

enum WriterMsg {
    Reading(Reading),
    Close(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to the store and its writer task.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    queue: mpsc::Sender<WriterMsg>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Store {
    /// Opens (creating if needed) the database in `config.data_dir`, brings its schema up to
    /// date and starts the writer task.
    pub async fn open(config: StoreConfig) -> Result<Store, StorageError> {
        let path = config.data_dir.join(DATABASE_FILE);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL survives a process crash; only an OS crash or power loss may
            // lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StorageError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;

        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = tokio::spawn(run_writer(pool.clone(), rx, config));
        Ok(Store {
            pool,
            queue,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(DATABASE_FILE)
    }

    /// Queues a reading for the writer. Waits only while the queue is full.
    pub async fn append(&self, reading: Reading) -> Result<(), StorageError> {
        self.queue
            .send(WriterMsg::Reading(reading))
            .await
            .map_err(|_| StorageError::Closed)
    }

    /// Writes everything queued so far and stops the writer. Later appends fail with `Closed`.
    pub async fn close(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(WriterMsg::Close(done)).await.is_ok() {
            let _ = flushed.await;
        }
        if let Some(writer) = self.writer.lock().await.take() {
            if let Err(err) = writer.await {
                tracing::error!(%err, "store writer task failed");
            }
        }
        self.pool.close().await;
    }

    /// The newest `limit` readings of `device_id` received at or after `since_ms`, oldest first.
    pub async fn history(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reading>, StorageError> {
        let rows: Vec<(i64, i64, Option<i64>, String, f64)> = sqlx::query_as(
            "SELECT r.received_ms, r.seq, r.device_ms, r.field, r.value
               FROM readings r
               JOIN (SELECT DISTINCT received_ms, seq FROM readings
                      WHERE device_id = ?1 AND received_ms >= ?2
                      ORDER BY received_ms DESC, seq DESC
                      LIMIT ?3) newest
                 ON r.received_ms = newest.received_ms AND r.seq = newest.seq
              WHERE r.device_id = ?1
              ORDER BY r.received_ms, r.seq, r.rowid",
        )
        .bind(device_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;

        let mut readings: Vec<Reading> = Vec::new();
        for (received_ms, seq, device_ms, field, value) in rows {
            let seq = seq as u64;
            let same = readings
                .last()
                .is_some_and(|r| r.received_ms == received_ms && r.seq == seq);
            if !same {
                readings.push(Reading {
                    seq,
                    device_id: device_id.to_string(),
                    received_ms,
                    device_ms,
                    values: Vec::new(),
                });
            }
            if let Some(last) = readings.last_mut() {
                last.values.push(FieldValue { field, value });
            }
        }
        Ok(readings)
    }

    /// Number of stored readings (distinct device/time/seq), for tests and diagnostics.
    pub async fn count_readings(&self) -> Result<u64, StorageError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM (SELECT DISTINCT device_id, received_ms, seq FROM readings)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }
}

async fn run_writer(pool: SqlitePool, mut rx: mpsc::Receiver<WriterMsg>, config: StoreConfig) {
    let mut batch: Vec<Reading> = Vec::new();
    let mut queued_values = 0usize;
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(WriterMsg::Reading(reading)) => {
                    queued_values += reading.values.len();
                    batch.push(reading);
                    if queued_values >= config.flush_rows {
                        flush(&pool, &mut batch).await;
                        queued_values = batch.iter().map(|r| r.values.len()).sum();
                    }
                }
                Some(WriterMsg::Close(done)) => {
                    rx.close();
                    // Readings queued before the close message still count.
                    while let Ok(WriterMsg::Reading(reading)) = rx.try_recv() {
                        batch.push(reading);
                    }
                    flush(&pool, &mut batch).await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    flush(&pool, &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    flush(&pool, &mut batch).await;
                    queued_values = batch.iter().map(|r| r.values.len()).sum();
                }
            }
        }
    }
}

/// Writes `batch` in one transaction and empties it. On failure the readings stay in `batch`
/// for the next attempt (bounded by [`MAX_UNWRITTEN`]).
async fn flush(pool: &SqlitePool, batch: &mut Vec<Reading>) {
    if batch.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    match write_batch(pool, batch).await {
        Ok(()) => {
            tracing::trace!(readings = batch.len(), elapsed = ?started.elapsed(), "flushed");
            batch.clear();
        }
        Err(err) => {
            tracing::error!(%err, pending = batch.len(), "writing readings failed; will retry");
            if batch.len() > MAX_UNWRITTEN {
                let excess = batch.len() - MAX_UNWRITTEN;
                tracing::error!(
                    dropped = excess,
                    "too many unwritten readings; dropping the oldest"
                );
                batch.drain(..excess);
            }
        }
    }
}

async fn write_batch(pool: &SqlitePool, batch: &[Reading]) -> Result<(), sqlx::Error> {
    let mut seen: HashMap<&str, (i64, i64)> = HashMap::new();
    for r in batch {
        let span = seen
            .entry(&r.device_id)
            .or_insert((r.received_ms, r.received_ms));
        span.0 = span.0.min(r.received_ms);
        span.1 = span.1.max(r.received_ms);
    }
    let mut tx = pool.begin().await?;
    for (device, (first, last)) in seen {
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
    for r in batch {
        for v in &r.values {
            sqlx::query(
                "INSERT INTO readings (device_id, received_ms, seq, device_ms, field, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&r.device_id)
            .bind(r.received_ms)
            .bind(r.seq as i64)
            .bind(r.device_ms)
            .bind(&v.field)
            .bind(v.value)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(seq: u64, ms: i64, fields: &[(&str, f64)]) -> Reading {
        Reading {
            seq,
            device_id: "7".into(),
            received_ms: ms,
            device_ms: Some(ms + 1),
            values: fields
                .iter()
                .map(|(f, v)| FieldValue {
                    field: (*f).into(),
                    value: *v,
                })
                .collect(),
        }
    }

    async fn open(dir: &Path, flush_interval: Duration) -> Store {
        Store::open(StoreConfig {
            data_dir: dir.to_path_buf(),
            flush_interval,
            flush_rows: 1_000,
        })
        .await
        .expect("store opens")
    }

    #[tokio::test]
    async fn close_flushes_everything_queued_and_history_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        // A flush interval far longer than the test: only `close` can have written these.
        let store = open(dir.path(), Duration::from_secs(3600)).await;
        for i in 0..50u64 {
            store
                .append(reading(
                    i + 1,
                    1_000 + i as i64,
                    &[("counter", i as f64), ("temp", 20.0)],
                ))
                .await
                .unwrap();
        }
        store.close().await;
        assert!(matches!(
            store.append(reading(99, 1, &[("x", 1.0)])).await,
            Err(StorageError::Closed)
        ));

        let store = open(dir.path(), Duration::from_millis(10)).await;
        assert_eq!(store.count_readings().await.unwrap(), 50);
        let newest = store.history("7", 0, 3).await.unwrap();
        assert_eq!(
            newest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [48, 49, 50]
        );
        assert_eq!(
            newest[2].values,
            reading(50, 0, &[("counter", 49.0), ("temp", 20.0)]).values
        );
        let since = store.history("7", 1_045, 100).await.unwrap();
        assert_eq!(since.len(), 5);
        assert!(store.history("nope", 0, 10).await.unwrap().is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, "x").unwrap();
        let err = Store::open(StoreConfig {
            data_dir: not_a_dir,
            flush_interval: Duration::from_secs(1),
            flush_rows: 10,
        })
        .await
        .err()
        .expect("opening fails");
        assert!(
            err.to_string().contains("cannot open the database"),
            "{err}"
        );
    }
}
