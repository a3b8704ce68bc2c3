//! Readings read back: the newest of a device, downsampled windows, the fields a device used,
//! CSV export and counts (deleting old ones is `retention.rs`). One SQL text serves both back ends (sqlx binds `$1` on
//! SQLite too); the values are unpacked and aggregated here, in Rust.
//!
//! A window whose chart buckets are a minute or longer reads the rollups (see
//! [`super::rollup`]) for the whole minutes or hours inside it and raw readings only for the
//! ragged ends, so a year of history is a few thousand rows and still there after the raw
//! readings have been deleted.

use super::batch::MAX_BLOCK_SPAN_MS;
use super::rollup::{self, Aggregate};
use super::{packed, Backend, StorageError, Store};
use app::model::{FieldValue, HistoryWindow, Name, Reading, Series, SeriesPoint};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::pin::Pin;

/// Most buckets one window may ask for (the dashboard asks for at most 2,000).
const MAX_POINTS: u32 = 100_000;
/// Rows an export holds in flight between the database task and the HTTP response.
const EXPORT_BUFFER: usize = 256;

/// A stream of stored readings (for CSV export), oldest first.
pub type ReadingStream = Pin<Box<dyn Stream<Item = Result<Reading, StorageError>> + Send>>;

/// A device's key.
pub const DEVICE_KEY_SQL: &str = "SELECT key FROM devices WHERE id = $1";
/// The rollups of one device ($1) and level ($2) starting in [$3, $4). (Public for the storage
/// benchmark, which prints its query plan.)
/// A device's rollups of one level over a window, merged in the database into the chart's
/// buckets (`$5` the grid's origin, `$6` its bucket length; `start_ms >= $3 >= $5`, so the
/// division never meets a negative number): a year of hours is 8,760 rows per field, and
/// summing them in SQL costs far less than moving each row through the driver.
pub const ROLLUP_WINDOW_SQL: &str = "SELECT r.series, (r.start_ms - $5) / $6 AS bucket,
            MIN(r.minimum) AS minimum, MAX(r.maximum) AS maximum,
            SUM(r.total) AS total, CAST(SUM(r.samples) AS BIGINT) AS samples
       FROM rollups r JOIN series s ON s.key = r.series
      WHERE s.device = $1 AND r.span_ms = $2 AND r.start_ms >= $3 AND r.start_ms < $4
      GROUP BY r.series, bucket";

/// A block's readings, still packed.
#[derive(Debug, sqlx::FromRow)]
struct BlockRow {
    body: Vec<u8>,
}

/// The blocks of one device ($1) that may hold readings received in [$4, $3): those that
/// start before $3 and at most a block's span ($2 = $4 - span) before $4, and end after $4.
const WINDOW_BLOCKS: &str = "SELECT body FROM blocks
    WHERE device = $1 AND first_ms >= $2 AND first_ms < $3 AND last_ms >= $4
    ORDER BY first_ms, first_seq";

/// One page of an export's blocks, after the block at (`$5`, `$6`).
const EXPORT_PAGE: &str = "SELECT first_ms, first_seq, body FROM blocks
    WHERE device = $1 AND first_ms >= $2 AND first_ms < $3 AND last_ms >= $4
      AND (first_ms > $5 OR (first_ms = $5 AND first_seq > $6))
    ORDER BY first_ms, first_seq LIMIT $7";

/// Blocks read per query when exporting: the connection goes back to the pool between pages,
/// so a download holds none while its client reads (slowly, maybe on purpose). Small in
/// tests, so that they cross pages.
const EXPORT_PAGE_BLOCKS: i64 = if cfg!(test) { 2 } else { 64 };

/// A series (one field of a device) and its key.
#[derive(Debug, sqlx::FromRow)]
struct SeriesRow {
    key: i64,
    field: String,
}

#[derive(Debug, sqlx::FromRow)]
struct PageRow {
    first_ms: i64,
    first_seq: i64,
    body: Vec<u8>,
}

#[derive(Debug, sqlx::FromRow)]
struct RollupRow {
    series: i64,
    /// Index of the chart bucket, counted from the grid's origin.
    bucket: i64,
    minimum: f64,
    maximum: f64,
    total: f64,
    samples: i64,
}

/// A device's series keys and their field names.
type Names = HashMap<i64, Name>;

impl Store {
    async fn device_key(&self, device_id: &str) -> Result<Option<i64>, StorageError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(DEVICE_KEY_SQL)
            .bind(device_id)
            .fetch_optional(pool)
            .await?))
    }

    async fn series_names(&self, device: i64) -> Result<Names, StorageError> {
        let sql = "SELECT key, field FROM series WHERE device = $1";
        let rows: Vec<SeriesRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(device)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| (row.key, row.field.into()))
            .collect())
    }

    /// The newest `limit` readings of `device_id` received at or after `since_ms`, oldest first.
    pub async fn history(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reading>, StorageError> {
        let Some(device) = self.device_key(device_id).await? else {
            return Ok(Vec::new());
        };
        let device_id = Name::from(device_id);
        let limit = limit as usize;
        let sql = "SELECT body FROM blocks WHERE device = $1 AND first_ms >= $2
                    ORDER BY first_ms DESC, first_seq DESC";
        let mut blocks = on_pool!(self, |pool| sqlx::query_as::<_, BlockRow>(sql)
            .bind(device)
            .bind(since_ms.saturating_sub(MAX_BLOCK_SPAN_MS))
            .fetch(pool)
            .map(|row| row.map_err(StorageError::from))
            .boxed());
        let mut packed_newest = Vec::new();
        // Newest blocks first, until enough readings are in hand.
        while let Some(block) = blocks.next().await {
            for packed in packed::decode(&block?.body) {
                let packed = packed?;
                if packed.received_ms >= since_ms {
                    packed_newest.push(packed);
                }
            }
            if packed_newest.len() >= limit {
                break;
            }
        }
        drop(blocks);
        // The names after the blocks: a block may name a field first stored after a read of
        // the names (names are only ever added), never one stored after the block.
        let names = self.series_names(device).await?;
        let mut newest = packed_newest
            .into_iter()
            .map(|packed| reading_from(&device_id, packed, &names))
            .collect::<Result<Vec<_>, _>>()?;
        newest.sort_by_key(|r| (r.received_ms, r.seq));
        let skip = newest.len().saturating_sub(limit);
        Ok(newest.split_off(skip))
    }

    /// Every field of `device_id` over `[from_ms, to_ms)`, in at most `max_points` buckets each
    /// (min, max, average and count per bucket). Buckets of a minute or more are whole
    /// minutes (or hours) read from the rollups; `level_ms` in the answer says which.
    pub async fn series(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: u32,
    ) -> Result<HistoryWindow, StorageError> {
        let span = to_ms.saturating_sub(from_ms).max(1);
        let (bucket_ms, level) = chart_bucket(from_ms, to_ms, max_points);
        let mut window = HistoryWindow {
            device_id: device_id.to_string(),
            from_ms,
            to_ms,
            bucket_ms,
            level_ms: level.unwrap_or(0),
            series: Vec::new(),
        };
        let Some(device) = self.device_key(device_id).await? else {
            return Ok(window);
        };
        let buckets = usize::try_from(span / bucket_ms + i64::from(span % bucket_ms != 0))
            .unwrap_or(usize::MAX);
        let mut grid = Grid::new(from_ms, bucket_ms, buckets);
        match level {
            None => self.add_raw(&mut grid, device, from_ms, to_ms).await?,
            Some(level) => {
                // Whole rollup buckets inside the window, raw readings for the ends.
                let inner_from = rollup::align_up(from_ms, level);
                let inner_to = rollup::bucket_start(to_ms, level).max(inner_from);
                if inner_from >= to_ms {
                    self.add_raw(&mut grid, device, from_ms, to_ms).await?;
                } else {
                    self.add_raw(&mut grid, device, from_ms, inner_from).await?;
                    self.add_rollups(&mut grid, device, level, inner_from, inner_to)
                        .await?;
                    self.add_raw(&mut grid, device, inner_to, to_ms).await?;
                }
            }
        }
        // The names after the readings (see `history`).
        let names = self.series_names(device).await?;
        window.series = grid.into_series(&names);
        Ok(window)
    }

    /// The readings of `device` received in `[from_ms, to_ms)`, in the order of their blocks,
    /// still packed.
    fn window(
        &self,
        device: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> futures::stream::BoxStream<'_, Result<packed::Packed, StorageError>> {
        let blocks = on_pool!(self, |pool| sqlx::query_as::<_, BlockRow>(WINDOW_BLOCKS)
            .bind(device)
            .bind(from_ms.saturating_sub(MAX_BLOCK_SPAN_MS))
            .bind(to_ms)
            .bind(from_ms)
            .fetch(pool));
        blocks
            .flat_map(move |block| {
                let readings: Vec<Result<packed::Packed, StorageError>> = match block {
                    Err(err) => vec![Err(err.into())],
                    Ok(block) => packed::decode(&block.body)
                        .map(|r| r.map_err(StorageError::from))
                        // Errors go through; readings outside the window do not.
                        .filter(|r| {
                            !matches!(r, Ok(p) if p.received_ms < from_ms || p.received_ms >= to_ms)
                        })
                        .collect(),
                };
                futures::stream::iter(readings)
            })
            .boxed()
    }

    async fn add_raw(
        &self,
        grid: &mut Grid,
        device: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), StorageError> {
        if from_ms >= to_ms {
            return Ok(());
        }
        let mut readings = self.window(device, from_ms, to_ms);
        while let Some(packed) = readings.next().await {
            let packed = packed?;
            for (series, value) in packed.values {
                grid.add(series, packed.received_ms, &Aggregate::of(value));
            }
        }
        Ok(())
    }

    async fn add_rollups(
        &self,
        grid: &mut Grid,
        device: i64,
        level: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), StorageError> {
        let rows: Vec<RollupRow> = on_pool!(self, |pool| sqlx::query_as(ROLLUP_WINDOW_SQL)
            .bind(device)
            .bind(level)
            .bind(from_ms)
            .bind(to_ms)
            .bind(grid.from_ms)
            .bind(grid.bucket_ms)
            .fetch_all(pool)
            .await?);
        for row in rows {
            let aggregate = Aggregate {
                min: row.minimum,
                max: row.maximum,
                sum: row.total,
                count: row.samples,
            };
            grid.add_to(row.series, row.bucket, &aggregate);
        }
        Ok(())
    }

    /// Field names `device_id` used over `[from_ms, to_ms)`, sorted: those whose first and
    /// last use bound a span that meets the window.
    pub async fn fields(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let sql = "SELECT s.field FROM series s JOIN devices d ON d.key = s.device
                    WHERE d.id = $1 AND s.last_ms >= $2 AND s.first_ms < $3
                    ORDER BY s.field";
        Ok(on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(device_id)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(pool)
            .await?))
    }

    /// Every reading of `device_id` over `[from_ms, to_ms)`, oldest first, streamed from the
    /// database (never collected in memory).
    pub fn export(&self, device_id: &str, from_ms: i64, to_ms: i64) -> ReadingStream {
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        let store = self.clone();
        let device_id = device_id.to_string();
        // In its own task so the stream can outlive the borrow of the pool (an HTTP response
        // body must be 'static); it ends when the receiver goes away.
        tokio::spawn(async move {
            if let Err(err) = store.pump_export(&device_id, from_ms, to_ms, &tx).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|reading| (reading, rx))
        }))
    }

    async fn pump_export(
        &self,
        device_id: &str,
        from_ms: i64,
        to_ms: i64,
        tx: &tokio::sync::mpsc::Sender<Result<Reading, StorageError>>,
    ) -> Result<(), StorageError> {
        let Some(device) = self.device_key(device_id).await? else {
            return Ok(());
        };
        let mut names = self.series_names(device).await?;
        let device_id = Name::from(device_id);
        let mut after = (i64::MIN, i64::MIN);
        loop {
            // The whole page is read before anything is sent: no connection is held while
            // the client takes its time.
            let page: Vec<PageRow> = on_pool!(self, |pool| sqlx::query_as(EXPORT_PAGE)
                .bind(device)
                .bind(from_ms.saturating_sub(MAX_BLOCK_SPAN_MS))
                .bind(to_ms)
                .bind(from_ms)
                .bind(after.0)
                .bind(after.1)
                .bind(EXPORT_PAGE_BLOCKS)
                .fetch_all(pool)
                .await?);
            let last_page = (page.len() as i64) < EXPORT_PAGE_BLOCKS;
            // Names stored since they were read come with this page's blocks: read again.
            let page: Vec<(PageRow, Vec<packed::Packed>)> = page
                .into_iter()
                .map(|block| {
                    let readings = packed::decode(&block.body).collect::<Result<Vec<_>, _>>()?;
                    Ok((block, readings))
                })
                .collect::<Result<_, StorageError>>()?;
            let unknown = |p: &packed::Packed| p.values.iter().any(|(s, _)| !names.contains_key(s));
            if page
                .iter()
                .any(|(_, readings)| readings.iter().any(unknown))
            {
                names = self.series_names(device).await?;
            }
            for (block, readings) in page {
                after = (block.first_ms, block.first_seq);
                for packed in readings {
                    if packed.received_ms < from_ms || packed.received_ms >= to_ms {
                        continue;
                    }
                    let reading = reading_from(&device_id, packed, &names)?;
                    if tx.send(Ok(reading)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if last_page {
                return Ok(());
            }
        }
    }

    /// Number of stored readings, for tests and diagnostics.
    pub async fn count_readings(&self) -> Result<u64, StorageError> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(readings), 0) AS BIGINT) FROM blocks"
        )
        .fetch_one(pool)
        .await?);
        Ok(n as u64)
    }
}

/// The length of one point of a chart of `[from_ms, to_ms)` in at most `max_points` points,
/// and the rollup level it is read from (none: raw readings). A point of a minute or more is a
/// whole number of rollup buckets, so every point holds as many of them.
pub fn chart_bucket(from_ms: i64, to_ms: i64, max_points: u32) -> (i64, Option<i64>) {
    let span = to_ms.saturating_sub(from_ms).max(1);
    let points = i64::from(max_points.clamp(1, MAX_POINTS));
    let bucket_ms = (span / points + i64::from(span % points != 0)).max(1);
    match rollup::level_for(bucket_ms) {
        Some(level) => (rollup::align_up(bucket_ms, level), Some(level)),
        None => (bucket_ms, None),
    }
}

/// A stored reading with its names; values in field-name order, as the dashboard shows them.
fn reading_from(
    device_id: &Name,
    packed: packed::Packed,
    names: &Names,
) -> Result<Reading, StorageError> {
    let mut values = Vec::with_capacity(packed.values.len());
    for (series, value) in packed.values {
        let field = names
            .get(&series)
            .cloned()
            .ok_or(StorageError::Damaged(packed::Damaged("unknown series key")))?;
        values.push(FieldValue { field, value });
    }
    values.sort_by(|a, b| a.field.cmp(&b.field));
    Ok(Reading {
        seq: packed.seq as u64,
        device_id: device_id.clone(),
        received_ms: packed.received_ms,
        device_ms: packed.device_ms,
        values,
    })
}

/// Chart buckets being filled, per series.
struct Grid {
    from_ms: i64,
    bucket_ms: i64,
    buckets: usize,
    series: HashMap<i64, Vec<Option<Aggregate>>>,
}

impl Grid {
    fn new(from_ms: i64, bucket_ms: i64, buckets: usize) -> Grid {
        Grid {
            from_ms,
            bucket_ms,
            buckets,
            series: HashMap::new(),
        }
    }

    fn add(&mut self, series: i64, t_ms: i64, aggregate: &Aggregate) {
        self.add_to(
            series,
            (t_ms - self.from_ms).div_euclid(self.bucket_ms),
            aggregate,
        );
    }

    /// Adds to point `index` (counted from the window's start); points outside are ignored.
    fn add_to(&mut self, series: i64, index: i64, aggregate: &Aggregate) {
        let Ok(index) = usize::try_from(index) else {
            return;
        };
        if index >= self.buckets {
            return;
        }
        let buckets = self.buckets;
        let slots = self
            .series
            .entry(series)
            .or_insert_with(|| vec![None; buckets]);
        match &mut slots[index] {
            Some(existing) => existing.merge(aggregate),
            empty => *empty = Some(*aggregate),
        }
    }

    /// Series in field-name order, each with its non-empty buckets in time order.
    fn into_series(self, names: &Names) -> Vec<Series> {
        let (from_ms, bucket_ms) = (self.from_ms, self.bucket_ms);
        let mut series: Vec<Series> = self
            .series
            .into_iter()
            .filter_map(|(key, slots)| {
                let field = names.get(&key)?.clone();
                let points = slots
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, slot)| {
                        slot.map(|a| SeriesPoint {
                            t_ms: from_ms + i as i64 * bucket_ms + bucket_ms / 2,
                            min: a.min,
                            max: a.max,
                            avg: a.avg(),
                            count: a.count as u64,
                        })
                    })
                    .collect();
                Some(Series {
                    field: field.to_string(),
                    points,
                })
            })
            .collect();
        series.sort_by(|a, b| a.field.cmp(&b.field));
        series
    }
}
