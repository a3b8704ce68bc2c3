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
mod alarms;
mod api_tokens;
mod batch;
mod convert;
mod devices;
pub mod packed;
mod postgres;
mod readings;
mod retention;
pub mod rollup;
mod sqlite;
mod writer;

pub use accounts::{RevokedToken, SessionRow, UserRow};
pub use alarms::{AlarmFilter, Channel, StoredRule, StoredRun};
pub use api_tokens::{ApiTokenUse, NewApiTokenRow};
pub use devices::StoredDevice;
pub use readings::{chart_bucket, ReadingStream, DEVICE_KEY_SQL, ROLLUP_WINDOW_SQL};

use app::model::Reading;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use writer::{Writer, WriterMsg};

/// File name of the SQLite database inside the data folder.
pub const DATABASE_FILE: &str = "iothub.db";

/// Batches of readings waiting for the writer before `append` makes ingest wait. A batch is
/// what one connection read at once (a frame, a read of a TCP socket): usually one to a few
/// dozen readings.
const QUEUE_CAPACITY: usize = 4_096;
/// Readings kept in memory while the database refuses writes; beyond it the oldest are dropped
/// with an error in the log rather than exhausting memory.
pub const MAX_UNWRITTEN: usize = 1_000_000;
/// Longest window one history query may cover (the widest a chart may zoom out to).
pub const MAX_WINDOW_MS: i64 = app::model::TimeWindow::MAX_RANGE_MS;

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
    #[error("writing to the SQLite database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the database writer thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Damaged(#[from] packed::Damaged),
    #[error("the writer lost track of a name: {0}")]
    Keys(#[from] batch::UnknownName),
    #[error("the store is closed")]
    Closed,
    #[error("backups of PostgreSQL are made with its own tools (pg_dump)")]
    BackupUnsupported,
    #[error("a stored value cannot be read: {0}")]
    Corrupt(String),
}

/// The pools reads and the small tables go through.
#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

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
    /// Connects (creating a SQLite file if needed), brings the schema up to date, converts
    /// readings stored in an older layout and starts the writer task.
    pub async fn open(config: StoreConfig) -> Result<Store, StorageError> {
        let describe = config.database.to_string();
        let open_error = |source| StorageError::Open {
            database: describe.clone(),
            source,
        };
        let (backend, mut writer) = match &config.database {
            Database::Sqlite(path) => {
                let pool = sqlite::open(path).await.map_err(open_error)?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                let writer = Writer::Sqlite(sqlite::Writer::start(path)?);
                (Backend::Sqlite(pool), writer)
            }
            Database::Postgres(url) => {
                let pool = postgres::open(url).await.map_err(open_error)?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                let writer = Writer::Postgres(postgres::Writer::new(pool.clone()));
                (Backend::Postgres(pool), writer)
            }
        };
        if let Err(err) = writer.convert_v1().await {
            writer.stop().await;
            return Err(err);
        }
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writes_ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let task = tokio::spawn(writer::run(writer, rx, config, writes_ok.clone()));
        Ok(Store {
            backend,
            writes_ok,
            queue,
            writer: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// Queues a reading for the writer. Waits only while the queue is full.
    pub async fn append(&self, reading: Reading) -> Result<(), StorageError> {
        self.append_batch(vec![Arc::new(reading)]).await
    }

    /// Queues readings for the writer, in order. Waits only while the queue is full. They
    /// are shared (the registry keeps the newest of each device for the live charts), not
    /// copied.
    pub async fn append_batch(&self, readings: Vec<Arc<Reading>>) -> Result<(), StorageError> {
        if readings.is_empty() {
            return Ok(());
        }
        self.queue
            .send(WriterMsg::Readings(readings))
            .await
            .map_err(|_| StorageError::Closed)
    }

    /// Writes everything queued so far (a failed write stays queued for the next attempt).
    pub async fn flush(&self) {
        self.write_queued().await;
    }

    /// Writes what is queued now; true if every reading appended before this call is in the
    /// database (false while the database refuses them, or once the store is closed).
    async fn write_queued(&self) -> bool {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(WriterMsg::Flush(done)).await.is_err() {
            return false;
        }
        flushed.await.unwrap_or(false)
    }

    /// Resolves once every reading appended before this call is in the database: a batch
    /// starts at once unless one is being written, and then right after it, so devices asking
    /// together share commits (group commit) instead of each forcing one, and nobody waits for
    /// `--flush-interval-ms`. False if some of it was dropped or the store closed. While the
    /// database refuses writes it waits: callers bound it with a timeout.
    pub async fn stored(&self) -> bool {
        let (done, answer) = oneshot::channel();
        if self.queue.send(WriterMsg::WhenStored(done)).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
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

    /// Batches queued for the writer.
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
}

// Test helpers: for this crate's tests, and for the integration tests through the
// `test-support` feature (a dev-dependency of the crate on itself turns it on), so that they
// are not part of the hub's library otherwise.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod tests;
