//! Every reading, kept in a database: embedded SQLite by default (a file in the data folder,
//! WAL mode), or PostgreSQL for users who outgrow one machine. Both back ends sit behind this
//! one handle, [`Store`]; their SQL lives beside each other in `sqlite.rs` and `postgres.rs`.
//!
//! Ingest never waits on the disk per reading: [`Store::append`] queues the reading for a
//! writer task that commits batches in one transaction, every `flush_interval` or as soon as
//! `flush_rows` values are waiting. When the database refuses writes (disk full, PostgreSQL
//! gone) the writer keeps the batch, logs, and retries on the next tick, holding at most
//! [`MAX_UNWRITTEN`] readings. [`Store::close`] flushes what is queued; a graceful stop loses
//! nothing, and a crash loses at most the last flush interval.

/// Runs the same query code on either pool (for the SQL both back ends share).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

mod accounts;
mod postgres;
mod sqlite;

use app::model::{HistoryWindow, Reading, Registration};
use futures::Stream;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

/// File name of the SQLite database inside the data folder.
pub const DATABASE_FILE: &str = "iothub.db";

/// Readings waiting for the writer before `append` makes ingest wait.
const QUEUE_CAPACITY: usize = 10_000;
/// Readings kept in memory while the database refuses writes; beyond it the oldest are dropped
/// with an error in the log rather than exhausting memory.
pub const MAX_UNWRITTEN: usize = 1_000_000;
/// Readings deleted per statement by retention.
const DELETE_CHUNK: i64 = 5_000;
/// Longest window one history query may cover.
pub const MAX_WINDOW_MS: i64 = 400 * 86_400_000;

/// Where the readings live.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user:password@host/db`).
    Postgres(String),
}

impl Database {
    /// `--database-url` if given (a `postgres://` or `sqlite://` URL), else SQLite in `data_dir`.
    pub fn from_config(
        database_url: Option<&str>,
        data_dir: &std::path::Path,
    ) -> Result<Self, StorageError> {
        match database_url {
            None => Ok(Database::Sqlite(data_dir.join(DATABASE_FILE))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_string()))
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(Database::Sqlite(PathBuf::from(path))),
                _ => Err(StorageError::BadUrl),
            },
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            // Never print the password.
            Database::Postgres(url) => match url::Url::parse(url) {
                Ok(u) => write!(
                    f,
                    "PostgreSQL {}:{}{}",
                    u.host_str().unwrap_or("?"),
                    u.port().unwrap_or(5432),
                    u.path()
                ),
                Err(_) => f.write_str("PostgreSQL (unparsable URL)"),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database: Database,
    pub flush_interval: Duration,
    pub flush_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("--database-url must start with postgres://, postgresql:// or sqlite://")]
    BadUrl,
    #[error("cannot open the database ({database}): {source}")]
    Open {
        database: String,
        source: sqlx::Error,
    },
    #[error("cannot update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the store is closed")]
    Closed,
    #[error("backups of PostgreSQL are made with its own tools (pg_dump)")]
    BackupUnsupported,
}

/// The back ends. Each function in `sqlite.rs` / `postgres.rs` has a twin in the other.
#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

enum WriterMsg {
    Reading(Reading),
    Close(oneshot::Sender<()>),
}

/// A stream of stored readings (for CSV export), oldest first.
pub type ReadingStream = Pin<Box<dyn Stream<Item = Result<Reading, StorageError>> + Send>>;

/// A cheap, cloneable handle to the store and its writer task.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// False while the last attempt to write a batch failed.
    writes_ok: Arc<std::sync::atomic::AtomicBool>,
    queue: mpsc::Sender<WriterMsg>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Store {
    /// Connects (creating a SQLite file if needed), brings the schema up to date and starts the
    /// writer task.
    pub async fn open(config: StoreConfig) -> Result<Store, StorageError> {
        let describe = config.database.to_string();
        let open_error = |source| StorageError::Open {
            database: describe.clone(),
            source,
        };
        let backend = match &config.database {
            Database::Sqlite(path) => {
                Backend::Sqlite(sqlite::open(path).await.map_err(open_error)?)
            }
            Database::Postgres(url) => {
                Backend::Postgres(postgres::open(url).await.map_err(open_error)?)
            }
        };
        match &backend {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writes_ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = tokio::spawn(run_writer(backend.clone(), rx, config, writes_ok.clone()));
        Ok(Store {
            backend,
            writes_ok,
            queue,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
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
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// The newest `limit` readings of `device_id` received at or after `since_ms`, oldest first.
    pub async fn history(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reading>, StorageError> {
        let rows = match &self.backend {
            Backend::Sqlite(pool) => sqlite::newest(pool, device_id, since_ms, limit).await?,
            Backend::Postgres(pool) => postgres::newest(pool, device_id, since_ms, limit).await?,
        };
        Ok(group_rows(device_id, rows))
    }

    /// Every field of `device_id` over `[from_ms, to_ms)`, in at most `max_points` buckets each
    /// (min, max, average and count per bucket), computed by the database.
    pub async fn series(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: u32,
    ) -> Result<HistoryWindow, StorageError> {
        let span = (to_ms - from_ms).max(1);
        let bucket_ms = (span + i64::from(max_points.max(1)) - 1) / i64::from(max_points.max(1));
        let bucket_ms = bucket_ms.max(1);
        let rows = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::buckets(pool, device_id, from_ms, to_ms, bucket_ms).await?
            }
            Backend::Postgres(pool) => {
                postgres::buckets(pool, device_id, from_ms, to_ms, bucket_ms).await?
            }
        };
        let mut series: Vec<app::model::Series> = Vec::new();
        for row in rows {
            if series.last().is_none_or(|s| s.field != row.field) {
                series.push(app::model::Series {
                    field: row.field.clone(),
                    points: Vec::new(),
                });
            }
            if let Some(current) = series.last_mut() {
                current.points.push(app::model::SeriesPoint {
                    t_ms: from_ms + row.bucket * bucket_ms + bucket_ms / 2,
                    min: row.min,
                    max: row.max,
                    avg: row.avg,
                    count: row.count as u64,
                });
            }
        }
        Ok(HistoryWindow {
            device_id: device_id.to_string(),
            from_ms,
            to_ms,
            bucket_ms,
            series,
        })
    }

    /// Field names `device_id` used over `[from_ms, to_ms)`, sorted.
    pub async fn fields(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        Ok(match &self.backend {
            Backend::Sqlite(pool) => sqlite::fields(pool, device_id, from_ms, to_ms).await?,
            Backend::Postgres(pool) => postgres::fields(pool, device_id, from_ms, to_ms).await?,
        })
    }

    /// Every reading of `device_id` over `[from_ms, to_ms)`, oldest first, streamed from the
    /// database (never collected in memory).
    pub fn export(&self, device_id: &str, from_ms: i64, to_ms: i64) -> ReadingStream {
        let rows = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::rows(pool.clone(), device_id.to_string(), from_ms, to_ms)
            }
            Backend::Postgres(pool) => {
                postgres::rows(pool.clone(), device_id.to_string(), from_ms, to_ms)
            }
        };
        Box::pin(group_stream(device_id.to_string(), rows))
    }

    /// Deletes readings received before `cutoff_ms`; returns how many values were deleted.
    pub async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StorageError> {
        let devices = match &self.backend {
            Backend::Sqlite(pool) => sqlite::device_ids(pool).await?,
            Backend::Postgres(pool) => postgres::device_ids(pool).await?,
        };
        // Device by device (the index leads with the device) and in chunks, so the writer is
        // never locked out for long.
        let mut deleted = 0;
        for device in devices {
            loop {
                let done = match &self.backend {
                    Backend::Sqlite(pool) => {
                        sqlite::delete_chunk(pool, &device, cutoff_ms, DELETE_CHUNK).await?
                    }
                    Backend::Postgres(pool) => {
                        postgres::delete_chunk(pool, &device, cutoff_ms, DELETE_CHUNK).await?
                    }
                };
                deleted += done;
                if done < DELETE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Remembers what a device said about itself (name and registration), creating its row if
    /// it has sent no reading yet. Written at once: registrations are rare.
    pub async fn save_registration(
        &self,
        device_id: &str,
        registration: &Registration,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        // Serialising a plain struct of strings and numbers cannot fail.
        let json = serde_json::to_string(registration).unwrap_or_default();
        let name = registration.name.as_deref();
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::save_registration(pool, device_id, name, &json, now_ms).await?
            }
            Backend::Postgres(pool) => {
                postgres::save_registration(pool, device_id, name, &json, now_ms).await?
            }
        }
        Ok(())
    }

    /// A device as stored: first and last seen, name and registration.
    pub async fn device(&self, device_id: &str) -> Result<Option<StoredDevice>, StorageError> {
        let row = match &self.backend {
            Backend::Sqlite(pool) => sqlite::device(pool, device_id).await?,
            Backend::Postgres(pool) => postgres::device(pool, device_id).await?,
        };
        Ok(row.map(|(first, last, name, registration)| {
            StoredDevice::from_row(first, last, name, registration)
        }))
    }

    /// Every stored device, in id order (one query: it runs at start-up for every device).
    pub async fn devices(&self) -> Result<Vec<(String, StoredDevice)>, StorageError> {
        let rows = match &self.backend {
            Backend::Sqlite(pool) => sqlite::devices(pool).await?,
            Backend::Postgres(pool) => postgres::devices(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(id, first, last, name, registration)| {
                (id, StoredDevice::from_row(first, last, name, registration))
            })
            .collect())
    }

    /// Readings queued for the writer.
    pub fn queued(&self) -> usize {
        QUEUE_CAPACITY - self.queue.capacity()
    }

    /// Whether the store takes writes: the writer's last batch went in, and the database
    /// answers now. (For `/healthz`.)
    pub async fn healthy(&self) -> bool {
        if !self.writes_ok.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    /// Copies a SQLite store, consistent and complete, to `destination` (which must not exist)
    /// while the hub may be writing to it (`VACUUM INTO`). PostgreSQL has its own tools.
    pub async fn backup(&self, destination: &std::path::Path) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query("VACUUM INTO ?1")
                    .bind(destination.to_string_lossy().as_ref())
                    .execute(pool)
                    .await?;
                Ok(())
            }
            Backend::Postgres(_) => Err(StorageError::BackupUnsupported),
        }
    }

    /// Number of stored readings (distinct device/time/seq), for tests and diagnostics.
    pub async fn count_readings(&self) -> Result<u64, StorageError> {
        Ok(match &self.backend {
            Backend::Sqlite(pool) => sqlite::count_readings(pool).await?,
            Backend::Postgres(pool) => postgres::count_readings(pool).await?,
        })
    }
}

/// A row of the `devices` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub name: Option<String>,
    pub registration: Option<Registration>,
}

impl StoredDevice {
    fn from_row(
        first_seen_ms: i64,
        last_seen_ms: i64,
        name: Option<String>,
        registration: Option<String>,
    ) -> StoredDevice {
        StoredDevice {
            first_seen_ms,
            last_seen_ms,
            name,
            // Written by `save_registration` from the same type; an unreadable one (a
            // registration format from a future version) is treated as none.
            registration: registration.and_then(|json| serde_json::from_str(&json).ok()),
        }
    }
}

/// One stored value: a row of the `readings` table.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    received_ms: i64,
    seq: i64,
    device_ms: Option<i64>,
    field: String,
    value: f64,
}

/// One bucket of one field, as the database computed it.
#[derive(Debug, sqlx::FromRow)]
struct BucketRow {
    field: String,
    bucket: i64,
    min: f64,
    max: f64,
    avg: f64,
    count: i64,
}

/// Rows ordered by (received_ms, seq) → readings.
fn group_rows(device_id: &str, rows: Vec<Row>) -> Vec<Reading> {
    let mut readings: Vec<Reading> = Vec::new();
    for row in rows {
        match readings.last_mut() {
            Some(last) if same_reading(last, &row) => push_value(last, row),
            _ => readings.push(reading_from(device_id, row)),
        }
    }
    readings
}

fn same_reading(reading: &Reading, row: &Row) -> bool {
    reading.received_ms == row.received_ms && reading.seq == row.seq as u64
}

fn push_value(reading: &mut Reading, row: Row) {
    reading.values.push(app::model::FieldValue {
        field: row.field,
        value: row.value,
    });
}

fn reading_from(device_id: &str, row: Row) -> Reading {
    let mut reading = Reading {
        seq: row.seq as u64,
        device_id: device_id.to_string(),
        received_ms: row.received_ms,
        device_ms: row.device_ms,
        values: Vec::new(),
    };
    push_value(&mut reading, row);
    reading
}

type RowStream = Pin<Box<dyn Stream<Item = Result<Row, sqlx::Error>> + Send>>;

/// The streaming twin of [`group_rows`]: yields each reading once its last row has arrived.
fn group_stream(
    device_id: String,
    rows: RowStream,
) -> impl Stream<Item = Result<Reading, StorageError>> + Send {
    use futures::StreamExt;
    // Fused: after the rows end, the last pending reading is still yielded, and the rows must
    // not be polled again.
    futures::stream::unfold(
        (rows.fuse(), None::<Reading>),
        move |(mut rows, mut pending)| {
            let device_id = device_id.clone();
            async move {
                loop {
                    match rows.next().await {
                        Some(Ok(row)) => match pending.as_mut() {
                            Some(current) if same_reading(current, &row) => {
                                push_value(current, row)
                            }
                            _ => {
                                if let Some(done) = pending.replace(reading_from(&device_id, row)) {
                                    return Some((Ok(done), (rows, pending)));
                                }
                            }
                        },
                        Some(Err(err)) => return Some((Err(err.into()), (rows, None))),
                        None => return pending.take().map(|last| (Ok(last), (rows, None))),
                    }
                }
            }
        },
    )
}

/// Runs a row query in its own task and hands its rows over a bounded channel, so the stream
/// can outlive the borrow of the pool (an HTTP response body must be `'static`).
fn spawn_rows<F>(query: F) -> RowStream
where
    F: FnOnce(
        mpsc::Sender<Result<Row, sqlx::Error>>,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
{
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(query(tx));
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|row| (row, rx))
    }))
}

/// Forwards rows until the stream ends, fails, or the receiver goes away.
async fn pump(
    mut rows: impl Stream<Item = Result<Row, sqlx::Error>> + Unpin,
    tx: mpsc::Sender<Result<Row, sqlx::Error>>,
) {
    use futures::StreamExt;
    while let Some(row) = rows.next().await {
        let failed = row.is_err();
        if tx.send(row).await.is_err() || failed {
            break;
        }
    }
}

async fn run_writer(
    backend: Backend,
    mut rx: mpsc::Receiver<WriterMsg>,
    config: StoreConfig,
    writes_ok: Arc<std::sync::atomic::AtomicBool>,
) {
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
                        flush(&backend, &mut batch, &writes_ok).await;
                        queued_values = batch.iter().map(|r| r.values.len()).sum();
                    }
                }
                Some(WriterMsg::Close(done)) => {
                    rx.close();
                    // Readings queued before the close message still count.
                    while let Ok(WriterMsg::Reading(reading)) = rx.try_recv() {
                        batch.push(reading);
                    }
                    flush(&backend, &mut batch, &writes_ok).await;
                    if !batch.is_empty() {
                        tracing::error!(unwritten = batch.len(), "the database refused the final flush");
                    }
                    let _ = done.send(());
                    return;
                }
                None => {
                    flush(&backend, &mut batch, &writes_ok).await;
                    return;
                }
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    flush(&backend, &mut batch, &writes_ok).await;
                    queued_values = batch.iter().map(|r| r.values.len()).sum();
                }
            }
        }
    }
}

/// Writes `batch` in one transaction and empties it. On failure the readings stay in `batch`
/// for the next attempt (bounded by [`MAX_UNWRITTEN`]).
async fn flush(
    backend: &Backend,
    batch: &mut Vec<Reading>,
    writes_ok: &std::sync::atomic::AtomicBool,
) {
    if batch.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let result = match backend {
        Backend::Sqlite(pool) => sqlite::write_batch(pool, batch).await,
        Backend::Postgres(pool) => postgres::write_batch(pool, batch).await,
    };
    match result {
        Ok(()) => {
            tracing::trace!(readings = batch.len(), elapsed = ?started.elapsed(), "flushed");
            batch.clear();
            writes_ok.store(true, std::sync::atomic::Ordering::Relaxed);
            metrics::histogram!(crate::metrics::STORE_FLUSH_SECONDS)
                .record(started.elapsed().as_secs_f64());
        }
        Err(err) => {
            writes_ok.store(false, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!(crate::metrics::STORE_WRITE_FAILURES).increment(1);
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

/// First and last receive time per device in a batch, for the `devices` table.
fn device_spans(batch: &[Reading]) -> Vec<(&str, i64, i64)> {
    let mut spans: std::collections::HashMap<&str, (i64, i64)> = std::collections::HashMap::new();
    for r in batch {
        let span = spans
            .entry(&r.device_id)
            .or_insert((r.received_ms, r.received_ms));
        span.0 = span.0.min(r.received_ms);
        span.1 = span.1.max(r.received_ms);
    }
    let mut spans: Vec<(&str, i64, i64)> = spans.into_iter().map(|(d, (a, b))| (d, a, b)).collect();
    // A fixed order keeps concurrent writers (PostgreSQL) from deadlocking on device rows.
    spans.sort_unstable();
    spans
}

/// Helpers for tests that need a real database (here and in the integration tests).
pub mod test_support {
    use sqlx::{Connection, Executor, PgConnection};

    /// The PostgreSQL server tests use, if any: a URL whose user may create databases.
    pub const POSTGRES_URL_VAR: &str = "IOTHUB_TEST_POSTGRES_URL";

    /// A fresh, empty PostgreSQL database for one test. `None` when no server is configured.
    pub struct TestPostgres {
        pub url: String,
        admin_url: String,
        name: String,
    }

    impl TestPostgres {
        pub async fn create() -> Option<TestPostgres> {
            let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
                eprintln!(
                    "{POSTGRES_URL_VAR} is not set: skipping the PostgreSQL part of this test"
                );
                return None;
            };
            let mut url = url::Url::parse(&admin_url)
                .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}={admin_url:?} is not a URL: {e}"));
            let name = format!("iothub_test_{:016x}", fastrand::u64(..));
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unreachable: {e}"));
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
            url.set_path(&name);
            Some(TestPostgres {
                url: url.to_string(),
                admin_url,
                name,
            })
        }

        /// Drops the database (best effort; names are random, so a leftover harms nothing).
        pub async fn drop_database(self) {
            // An autovacuum worker on a fresh table can hold the database for a moment, and a
            // non-superuser may not end it: try a few times.
            for _ in 0..20 {
                let Ok(mut admin) = PgConnection::connect(&self.admin_url).await else {
                    return;
                };
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                if admin.execute(drop.as_str()).await.is_ok() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
