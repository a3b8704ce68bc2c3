//! The SQLite back end: one file, WAL mode. Reads and the small tables go through the sqlx
//! pool; readings are written by one connection of their own on a thread of their own
//! ([`Writer`], rusqlite): a flush is then one hand-over of the whole batch and a loop of
//! cached prepared statements, instead of an async round trip per statement. (With the old
//! layout half of the hub's CPU went to sqlx's SQLite worker thread during a flood.)
//!
//! Statements here number their parameters `?N`: rusqlite binds by position, and SQLite
//! numbers `$N` names by where they first appear, not by N. The statements shared with
//! PostgreSQL (`batch.rs`) use `$N` in order, which a test checks.

use super::batch::{self, Keys, Prepared};
use super::convert::{self, OldRow};
use super::StorageError;
use app::model::Reading;
use rusqlite::{params, Connection, OpenFlags, Transaction};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives a process crash; only an OS crash or power loss may lose
        // the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

/// A batch handed back with the outcome of writing it (kept for a retry when it failed).
type Written = (Vec<Arc<Reading>>, Result<(), StorageError>);

enum Job {
    Write(Vec<Arc<Reading>>, oneshot::Sender<Written>),
    Convert(oneshot::Sender<Result<u64, StorageError>>),
}

/// The thread that writes readings. Dropping the handle ends the thread once its queue is
/// done; [`Writer::stop`] also waits for the connection to close.
pub(super) struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(path: &Path) -> Result<Writer, StorageError> {
        let conn = connect(path)?;
        let (jobs, queue) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .map_err(StorageError::Thread)?;
        Ok(Writer {
            jobs,
            thread: Some(thread),
        })
    }

    /// Writes `batch` in one transaction; hands it back with the outcome.
    pub async fn write(&self, batch: Vec<Arc<Reading>>) -> Written {
        let (done, result) = oneshot::channel();
        if let Err(refused) = self.jobs.send(Job::Write(batch, done)) {
            let Job::Write(batch, _) = refused.0 else {
                unreachable!("a write job comes back as it went")
            };
            return (batch, Err(StorageError::Closed));
        }
        // The thread only drops the reply sender by panicking, and then the batch is gone.
        result
            .await
            .unwrap_or((Vec::new(), Err(StorageError::Closed)))
    }

    /// Converts readings stored in the old layout, if there are any; returns the value rows
    /// converted.
    pub async fn convert_v1(&self) -> Result<u64, StorageError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Convert(done))
            .map_err(|_| StorageError::Closed)?;
        result.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Ends the thread and waits until its connection is closed.
    pub async fn stop(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 16 MiB of page cache: the pages where each device's newest readings go stay in memory.
    conn.pragma_update(None, "cache_size", -16_384)?;
    Ok(conn)
}

fn run(mut conn: Connection, queue: std::sync::mpsc::Receiver<Job>) {
    let mut keys = Keys::default();
    for job in queue {
        match job {
            Job::Write(mut batch, done) => {
                let result = write(&mut conn, &mut keys, &batch);
                if result.is_err() {
                    // Keys learned in the failed transaction may not exist: look them up again.
                    keys = Keys::default();
                } else {
                    // Written: the readings are dropped here, on this thread, rather than on
                    // the runtime's workers, which have the devices to serve.
                    batch.clear();
                }
                let _ = done.send((batch, result));
            }
            Job::Convert(done) => {
                let result = convert_v1(&mut conn, &mut keys);
                if result.is_err() {
                    keys = Keys::default();
                }
                let _ = done.send(result);
            }
        }
    }
}

fn write(
    conn: &mut Connection,
    keys: &mut Keys,
    batch: &[Arc<Reading>],
) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    resolve(&tx, keys, batch)?;
    let prepared = batch::prepare(batch, keys)?;
    write_prepared(&tx, &prepared)?;
    tx.commit()?;
    Ok(())
}

/// Finds (or creates) the keys of the batch's devices and series that `keys` does not know.
fn resolve(tx: &Transaction, keys: &mut Keys, batch: &[Arc<Reading>]) -> Result<(), StorageError> {
    for _ in 0..2 {
        let missing = keys.missing(batch);
        if missing.is_empty() {
            break;
        }
        for id in &missing.devices {
            let first = batch::first_time(batch, id, None);
            tx.prepare_cached(batch::INSERT_DEVICE)?
                .execute(params![id, first])?;
            let key: i64 = tx
                .prepare_cached(batch::DEVICE_KEY)?
                .query_row([id], |row| row.get(0))?;
            keys.learn_device(id, key);
        }
        for (id, field) in &missing.series {
            let Some(device) = keys.device(id) else {
                continue;
            };
            let first = batch::first_time(batch, id, Some(field));
            tx.prepare_cached(batch::INSERT_SERIES)?
                .execute(params![device, field, first])?;
            let key: i64 = tx
                .prepare_cached(batch::SERIES_KEY)?
                .query_row(params![device, field], |row| row.get(0))?;
            keys.learn_series(id, field, key);
        }
    }
    Ok(())
}

fn write_prepared(tx: &Transaction, batch: &Prepared) -> Result<(), rusqlite::Error> {
    let mut insert = tx.prepare_cached(batch::INSERT_BLOCK)?;
    for block in &batch.blocks {
        insert.execute(params![
            block.device,
            block.first_ms,
            block.first_seq,
            block.last_ms,
            block.last_seq,
            block.readings,
            block.body
        ])?;
    }
    let mut seen = tx
        // A removed device is listed again by readings received after its removal.
        .prepare_cached(
            "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?2),
               removed_ms = CASE WHEN removed_ms < ?2 THEN NULL ELSE removed_ms END
             WHERE key = ?1",
        )?;
    for (key, (_, last)) in &batch.devices {
        seen.execute(params![key, last])?;
    }
    let mut used = tx.prepare_cached(
        "UPDATE series SET first_ms = min(first_ms, ?2), last_ms = max(last_ms, ?3) WHERE key = ?1",
    )?;
    for (key, (first, last)) in &batch.series {
        used.execute(params![key, first, last])?;
    }
    let mut rollup = tx.prepare_cached(
        "INSERT INTO rollups (series, span_ms, start_ms, minimum, maximum, total, samples)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (series, span_ms, start_ms) DO UPDATE SET
           minimum = min(minimum, excluded.minimum), maximum = max(maximum, excluded.maximum),
           total = total + excluded.total, samples = samples + excluded.samples",
    )?;
    for (key, a) in batch.rollups.iter() {
        rollup.execute(params![
            key.series,
            key.span_ms,
            key.start_ms,
            a.min,
            a.max,
            a.sum,
            a.count
        ])?;
    }
    Ok(())
}

fn convert_v1(conn: &mut Connection, keys: &mut Keys) -> Result<u64, StorageError> {
    let pending: i64 = conn.query_row(convert::SQLITE_PENDING, [], |row| row.get(0))?;
    if pending == 0 {
        return Ok(0);
    }
    let tx = conn.transaction()?;
    let total: i64 = tx.query_row(convert::COUNT, [], |row| row.get(0))?;
    let mut progress = convert::Progress::new(total);
    let devices: Vec<String> = tx
        .prepare(convert::DEVICES)?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut next = tx.prepare(convert::NEXT)?;
    for device in devices {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let rows: Vec<OldRow> = next
                .query_map(params![device, after.0, after.1, convert::CHUNK], |row| {
                    Ok(OldRow {
                        received_ms: row.get(0)?,
                        seq: row.get(1)?,
                        device_ms: row.get(2)?,
                        field: row.get(3)?,
                        value: row.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let full = rows.len() as i64 == convert::CHUNK;
            let readings = convert::group(&device, rows, full);
            let Some(last) = convert::after(&readings) else {
                break;
            };
            after = last;
            resolve(&tx, keys, &readings)?;
            write_prepared(&tx, &batch::prepare(&readings, keys)?)?;
            progress.add(&readings);
            if !full {
                break;
            }
        }
    }
    drop(next);
    tx.execute(convert::DROP, [])?;
    tx.commit()?;
    progress.finish();
    Ok(total as u64)
}
