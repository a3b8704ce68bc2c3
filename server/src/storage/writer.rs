//! The writer task: takes the readings connections queue ([`WriterMsg`]) and writes them in
//! batches, one transaction each, through the back end's [`Writer`].
//!
//! One batch is written while the next one gathers. The task keeps taking readings from the
//! queue while the database commits; before, it waited for each commit, the queue filled
//! during it, and every connection stalled on a full queue though both cores had time to
//! spare (a ten-lines-per-frame flood read at 850k readings/s, with the server at 1.2 cores
//! of 2). Order is kept: a batch that fails goes back in front of what came after it, and
//! is tried again on the next tick (not at once, so a refusing database is not hammered).

use super::{postgres, sqlite, StorageError, StoreConfig, MAX_UNWRITTEN};
use app::model::Reading;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What writes readings: on SQLite a thread with its own connection, on PostgreSQL the
/// writer task itself.
pub(super) enum Writer {
    Sqlite(sqlite::Writer),
    Postgres(postgres::Writer),
}

impl Writer {
    /// Writes `batch` in one transaction; on failure the readings stay in `batch`.
    async fn write(&mut self, batch: &mut Vec<Arc<Reading>>) -> Result<(), StorageError> {
        match self {
            Writer::Sqlite(writer) => {
                let (back, result) = writer.write(std::mem::take(batch)).await;
                // Emptied by the thread after a good write: the allocation comes back.
                *batch = back;
                result
            }
            Writer::Postgres(writer) => {
                writer.write(batch).await?;
                batch.clear();
                Ok(())
            }
        }
    }

    pub(super) async fn convert_v1(&mut self) -> Result<u64, StorageError> {
        match self {
            Writer::Sqlite(writer) => writer.convert_v1().await,
            Writer::Postgres(writer) => writer.convert_v1().await,
        }
    }

    pub(super) async fn stop(self) {
        if let Writer::Sqlite(writer) = self {
            writer.stop().await;
        }
    }
}

pub(super) enum WriterMsg {
    Readings(Vec<Arc<Reading>>),
    /// Write what is queued now, then answer whether all of it is in the database (a failed
    /// batch stays queued for the next attempt).
    Flush(oneshot::Sender<bool>),
    /// Answer once everything queued before this message is in the database; false if some of
    /// it was dropped. A batch starts now if none is being written, else right after the one
    /// that is: questions from many devices share the same commits.
    WhenStored(oneshot::Sender<bool>),
    Close(oneshot::Sender<()>),
}

/// A batch on its way into the database; it owns the writer until it is done.
type Writing = Pin<Box<dyn Future<Output = Attempt> + Send>>;

struct Attempt {
    writer: Writer,
    /// Empty after a good write; the readings that were not written otherwise.
    batch: Vec<Arc<Reading>>,
    /// How many readings the batch had.
    count: usize,
    result: Result<(), StorageError>,
    started: std::time::Instant,
}

/// The readings waiting for the database, and the writer when no batch is being written.
struct Pipeline {
    writer: Option<Writer>,
    writing: Option<Writing>,
    waiting: Vec<Arc<Reading>>,
    /// Values in `waiting` (a batch is written once there are `flush_rows`).
    waiting_values: usize,
    /// The last write failed: the next one waits for the tick.
    failed: bool,
    writes_ok: Arc<AtomicBool>,
    /// Readings handed to the writer so far, and how many of them are written or were
    /// dropped: positions in one queue, since batches are written in order.
    appended: u64,
    written: u64,
    dropped: u64,
    /// Waiting to be told that everything before `position` is written: (position, drops
    /// when asked, whom to tell). In position order.
    watchers: std::collections::VecDeque<(u64, u64, oneshot::Sender<bool>)>,
}

pub(super) async fn run(
    writer: Writer,
    mut rx: mpsc::Receiver<WriterMsg>,
    config: StoreConfig,
    writes_ok: Arc<AtomicBool>,
) {
    let mut pipeline = Pipeline {
        writer: Some(writer),
        writing: None,
        waiting: Vec::new(),
        waiting_values: 0,
        failed: false,
        writes_ok,
        appended: 0,
        written: 0,
        dropped: 0,
        watchers: Default::default(),
    };
    // The first tick one period from now, not at once: nothing waits yet, and a tick owed
    // from the start would write the first readings early.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + config.flush_interval,
        config.flush_interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            attempt = written(&mut pipeline.writing) => {
                pipeline.writing = None;
                pipeline.finish(attempt);
                let asked = !pipeline.watchers.is_empty();
                if (pipeline.waiting_values >= config.flush_rows || asked) && !pipeline.failed {
                    pipeline.start();
                }
            }
            msg = rx.recv() => match msg {
                Some(WriterMsg::Readings(readings)) => {
                    pipeline.appended += readings.len() as u64;
                    pipeline.waiting_values += values(&readings);
                    pipeline.waiting.extend(readings);
                    if pipeline.waiting_values >= config.flush_rows && !pipeline.failed {
                        pipeline.start();
                    }
                }
                Some(WriterMsg::Flush(done)) => {
                    pipeline.write_all().await;
                    let _ = done.send(pipeline.waiting.is_empty());
                }
                Some(WriterMsg::WhenStored(done)) => pipeline.watch(done),
                Some(WriterMsg::Close(done)) => {
                    rx.close();
                    // Readings queued before the close message still count.
                    while let Ok(WriterMsg::Readings(readings)) = rx.try_recv() {
                        pipeline.waiting.extend(readings);
                    }
                    pipeline.stop().await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    pipeline.stop().await;
                    return;
                }
            },
            _ = tick.tick() => {
                pipeline.failed = false;
                pipeline.start();
            }
        }
    }
}

/// The batch being written, once it is; never, if none is.
async fn written(writing: &mut Option<Writing>) -> Attempt {
    match writing {
        Some(writing) => writing.await,
        None => std::future::pending().await,
    }
}

fn values(readings: &[Arc<Reading>]) -> usize {
    readings.iter().map(|r| r.values.len()).sum()
}

impl Pipeline {
    /// Tells `done` once everything appended so far is written (at once if it is), starting a
    /// batch unless one is being written (or writes are failing: then the tick retries).
    fn watch(&mut self, done: oneshot::Sender<bool>) {
        self.watchers.push_back((self.appended, self.dropped, done));
        self.answer_watchers();
        if !self.watchers.is_empty() && !self.failed {
            self.start();
        }
    }

    fn answer_watchers(&mut self) {
        let done = self.written + self.dropped;
        while self
            .watchers
            .front()
            .is_some_and(|(position, _, _)| *position <= done)
        {
            if let Some((_, dropped_then, tell)) = self.watchers.pop_front() {
                let _ = tell.send(self.dropped == dropped_then);
            }
        }
    }

    /// Starts writing what is waiting, unless a batch is being written or nothing waits.
    fn start(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let mut batch = std::mem::take(&mut self.waiting);
        self.waiting_values = 0;
        let count = batch.len();
        self.writing = Some(Box::pin(async move {
            let started = std::time::Instant::now();
            let result = writer.write(&mut batch).await;
            Attempt {
                writer,
                batch,
                count,
                result,
                started,
            }
        }));
    }

    /// Takes the writer back; a batch that failed goes back in front of the readings that
    /// came meanwhile.
    fn finish(&mut self, attempt: Attempt) {
        let Attempt {
            writer,
            mut batch,
            count,
            result,
            started,
        } = attempt;
        self.writer = Some(writer);
        match result {
            Ok(()) => {
                self.written += count as u64;
                tracing::trace!(elapsed = ?started.elapsed(), "flushed");
                self.writes_ok.store(true, Ordering::Relaxed);
                self.failed = false;
                metrics::histogram!(crate::metrics::STORE_FLUSH_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                if self.waiting.is_empty() {
                    // Its allocation serves the next batch.
                    self.waiting = batch;
                }
            }
            Err(err) => {
                self.writes_ok.store(false, Ordering::Relaxed);
                self.failed = true;
                metrics::counter!(crate::metrics::STORE_WRITE_FAILURES).increment(1);
                tracing::error!(%err, pending = batch.len() + self.waiting.len(), "writing readings failed; will retry");
                batch.append(&mut self.waiting);
                if batch.len() > MAX_UNWRITTEN {
                    let excess = batch.len() - MAX_UNWRITTEN;
                    tracing::error!(
                        dropped = excess,
                        "too many unwritten readings; dropping the oldest"
                    );
                    batch.drain(..excess);
                    self.dropped += excess as u64;
                }
                self.waiting_values = values(&batch);
                self.waiting = batch;
            }
        }
        self.answer_watchers();
    }

    /// Writes everything that waits now (one attempt; what fails stays waiting).
    async fn write_all(&mut self) {
        self.settle().await;
        self.start();
        self.settle().await;
    }

    /// Waits for the batch being written, if any, and takes the writer back.
    async fn settle(&mut self) {
        if let Some(writing) = self.writing.take() {
            self.finish(writing.await);
        }
    }

    /// Writes everything and stops the writer.
    async fn stop(mut self) {
        self.write_all().await;
        if !self.waiting.is_empty() {
            tracing::error!(
                unwritten = self.waiting.len(),
                "the database refused the final flush"
            );
        }
        if let Some(writer) = self.writer.take() {
            writer.stop().await;
        }
    }
}
