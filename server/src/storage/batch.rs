//! What one flush writes, worked out before any SQL runs, the same for both back ends: device
//! ids and field names become the small integer keys the tables use ([`Keys`], filled from the
//! database once per name and kept for the life of the writer), each device's readings are
//! packed into blocks ([`super::packed`]), and the batch's per-minute and per-hour
//! aggregates, first/last times per device and per series are summed up.

use super::packed;
use super::rollup::{self, Aggregate, Deltas};
use app::model::{Name, Reading};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A device's key is made by its first reading (or its registration); first and last seen are
/// then kept up to date by every flush. Same text on both back ends.
pub const INSERT_DEVICE: &str = "INSERT INTO devices (id, first_seen_ms, last_seen_ms)
                                 VALUES ($1, $2, $2) ON CONFLICT (id) DO NOTHING";
pub const DEVICE_KEY: &str = "SELECT key FROM devices WHERE id = $1";
pub const INSERT_SERIES: &str = "INSERT INTO series (device, field, first_ms, last_ms)
                                 VALUES ($1, $2, $3, $3) ON CONFLICT (device, field) DO NOTHING";
pub const SERIES_KEY: &str = "SELECT key FROM series WHERE device = $1 AND field = $2";
/// A block already stored (the same device, first time and number: a batch retried after its
/// commit went through) is not stored twice.
pub const INSERT_BLOCK: &str =
    "INSERT INTO blocks (device, first_ms, first_seq, last_ms, last_seq, readings, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Known keys: device id → its key and its series (field name → key).
#[derive(Debug, Default)]
pub struct Keys(HashMap<String, DeviceKeys>);

#[derive(Debug)]
struct DeviceKeys {
    key: i64,
    /// A list, not a map: a device has a handful of fields, a short list is searched as fast
    /// as a map is hashed, and it costs a tenth of the memory (the writer keeps this for every
    /// device it has seen).
    series: Vec<(Box<str>, i64)>,
}

impl DeviceKeys {
    fn series(&self, field: &str) -> Option<i64> {
        self.series
            .iter()
            .find(|(name, _)| &**name == field)
            .map(|(_, key)| *key)
    }
}

/// Names a batch uses that [`Keys`] does not know yet.
#[derive(Debug, Default, PartialEq)]
pub struct Missing {
    pub devices: Vec<String>,
    /// (device id, field name); only for devices whose key is known.
    pub series: Vec<(String, String)>,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.series.is_empty()
    }
}

impl Keys {
    /// What must be looked up (or created) before [`prepare`] can run. Called twice at most:
    /// a new device's series are found once its key is known.
    pub fn missing(&self, batch: &[Arc<Reading>]) -> Missing {
        let mut missing = Missing::default();
        let mut previous: Option<&Reading> = None;
        for reading in batch.iter().map(|r| &**r) {
            // Readings come in runs of one device with the same fields: look up once a run.
            if previous.is_some_and(|p| same_names(p, reading)) {
                continue;
            }
            previous = Some(reading);
            let device_id: &str = &reading.device_id;
            match self.0.get(device_id) {
                None => {
                    if !missing.devices.iter().any(|d| d == device_id) {
                        missing.devices.push(device_id.to_string());
                    }
                }
                Some(device) => {
                    for value in &reading.values {
                        let field: &str = &value.field;
                        if device.series(field).is_none()
                            && !missing
                                .series
                                .iter()
                                .any(|(d, f)| d == device_id && f == field)
                        {
                            missing
                                .series
                                .push((device_id.to_string(), field.to_string()));
                        }
                    }
                }
            }
        }
        missing
    }

    pub fn device(&self, id: &str) -> Option<i64> {
        self.0.get(id).map(|d| d.key)
    }

    pub fn learn_device(&mut self, id: &str, key: i64) {
        self.0.entry(id.to_string()).or_insert_with(|| DeviceKeys {
            key,
            series: Vec::new(),
        });
    }

    pub fn learn_series(&mut self, device_id: &str, field: &str, key: i64) {
        if let Some(device) = self.0.get_mut(device_id) {
            match device.series.iter_mut().find(|(name, _)| &**name == field) {
                Some(known) => known.1 = key,
                None => device.series.push((field.into(), key)),
            }
        }
    }
}

/// The receive time of the first reading of `device_id` in `batch` (with `field`, if given):
/// what a new device or series row starts with.
pub fn first_time(batch: &[Arc<Reading>], device_id: &str, field: Option<&str>) -> i64 {
    batch
        .iter()
        .filter(|r| &*r.device_id == device_id)
        .filter(|r| field.is_none_or(|f| r.values.iter().any(|v| &*v.field == f)))
        .map(|r| r.received_ms)
        .min()
        .unwrap_or(0)
}

/// Most a block spans, and most readings it holds. Reads find a window's blocks by their first
/// time, looking back at most this span; a flush longer than that (after an outage) is cut.
pub const MAX_BLOCK_SPAN_MS: i64 = 3_600_000;
pub const MAX_BLOCK_READINGS: i64 = 10_000;

/// One row of the `blocks` table: readings of one device, in the order they came.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub device: i64,
    /// Earliest and latest receive time in the block.
    pub first_ms: i64,
    pub last_ms: i64,
    /// Sequence numbers of the first and last reading written.
    pub first_seq: i64,
    pub last_seq: i64,
    pub readings: i64,
    pub body: Vec<u8>,
}

impl Block {
    /// An empty block of `device` that will start with reading number `first_seq` at `t`.
    fn new(device: i64, t: i64, first_seq: i64) -> Block {
        Block {
            device,
            first_ms: t,
            last_ms: t,
            first_seq,
            last_seq: first_seq,
            readings: 0,
            body: Vec::with_capacity(256),
        }
    }

    /// Appends one reading, keeping the block's times and counts up to date.
    fn push(
        &mut self,
        encoder: &mut packed::Encoder,
        t: i64,
        seq: i64,
        device_ms: Option<i64>,
        values: impl ExactSizeIterator<Item = (i64, f64)>,
    ) {
        self.first_ms = self.first_ms.min(t);
        self.last_ms = self.last_ms.max(t);
        self.last_seq = seq;
        self.readings += 1;
        encoder.push(&mut self.body, t, seq, device_ms, values);
    }
}

/// Everything one flush writes.
#[derive(Debug, Default)]
pub struct Prepared {
    pub blocks: Vec<Block>,
    /// Device key → (first, last) receive time in this batch.
    pub devices: BTreeMap<i64, (i64, i64)>,
    /// Series key → (first, last) receive time in this batch.
    pub series: BTreeMap<i64, (i64, i64)>,
    pub rollups: Deltas,
}

/// A block being filled, with what it adds up so far.
struct Open {
    block: Block,
    encoder: packed::Encoder,
    /// Per series: (key, first, last, the minute being summed, its aggregate).
    series: Vec<(i64, i64, i64, i64, Aggregate)>,
    /// Minutes summed up and left behind: (series, minute, aggregate).
    pending_rollups: Vec<(i64, i64, Aggregate)>,
}

impl Open {
    fn new(device: i64, reading: &Reading) -> Open {
        Open {
            block: Block::new(device, reading.received_ms, reading.seq as i64),
            encoder: packed::Encoder::default(),
            series: Vec::new(),
            pending_rollups: Vec::new(),
        }
    }

    fn full_for(&self, t: i64) -> bool {
        self.block.readings >= MAX_BLOCK_READINGS
            || t.saturating_sub(self.block.first_ms) > MAX_BLOCK_SPAN_MS
            || self.block.last_ms.saturating_sub(t) > MAX_BLOCK_SPAN_MS
    }

    fn push(&mut self, reading: &Reading, series_keys: &[i64]) {
        let t = reading.received_ms;
        let values = reading.values.iter().zip(series_keys);
        self.block.push(
            &mut self.encoder,
            t,
            reading.seq as i64,
            reading.device_ms,
            values.clone().map(|(v, &key)| (key, v.value)),
        );
        let minute = rollup::bucket_start(t, rollup::LEVELS[0]);
        for (value, &key) in values {
            let slot = match self.series.iter().position(|s| s.0 == key) {
                Some(i) => i,
                None => {
                    self.series
                        .push((key, t, t, minute, Aggregate::of(value.value)));
                    continue;
                }
            };
            let s = &mut self.series[slot];
            s.1 = s.1.min(t);
            s.2 = s.2.max(t);
            if s.3 == minute {
                s.4.merge(&Aggregate::of(value.value));
            } else {
                // Another minute (readings of one device come in time order): the last one
                // is complete as far as this batch goes.
                let (done_minute, done) = (s.3, s.4);
                s.3 = minute;
                s.4 = Aggregate::of(value.value);
                self.pending_rollups.push((key, done_minute, done));
            }
        }
    }
}

/// A name [`Keys`] did not know: [`Keys::missing`] was not resolved first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no key for {0}")]
pub struct UnknownName(String);

/// Works out the blocks, spans and aggregates of `batch`; every name must have its key.
pub fn prepare(batch: &[Arc<Reading>], keys: &Keys) -> Result<Prepared, UnknownName> {
    let mut out = Prepared::default();
    let mut open: Vec<Open> = Vec::new();
    // Device key → its open block in `open`; looked up only when the device changes.
    let mut open_of: HashMap<i64, usize> = HashMap::new();
    // Keys of the previous reading: readings come in runs of one device with the same
    // fields, so most need no lookup (and no hashing) at all.
    let mut current = 0usize;
    let mut series_keys: Vec<i64> = Vec::new();
    let mut previous: Option<&Reading> = None;
    for reading in batch.iter().map(|r| &**r) {
        if !previous.is_some_and(|p| same_names(p, reading)) {
            let device = keys
                .0
                .get(&*reading.device_id)
                .ok_or_else(|| UnknownName(format!("device {:?}", reading.device_id)))?;
            series_keys.clear();
            for value in &reading.values {
                series_keys.push(device.series(&value.field).ok_or_else(|| {
                    UnknownName(format!(
                        "field {:?} of {:?}",
                        value.field, reading.device_id
                    ))
                })?);
            }
            current = *open_of.entry(device.key).or_insert_with(|| {
                open.push(Open::new(device.key, reading));
                open.len() - 1
            });
            previous = Some(reading);
        }
        if open[current].block.readings > 0 && open[current].full_for(reading.received_ms) {
            let device = open[current].block.device;
            let done = std::mem::replace(&mut open[current], Open::new(device, reading));
            finish(done, &mut out);
        }
        open[current].push(reading, &series_keys);
    }
    for block in open {
        finish(block, &mut out);
    }
    // Key order: concurrent writers (several hubs on PostgreSQL) lock rows in the same order.
    out.blocks
        .sort_by_key(|b| (b.device, b.first_ms, b.first_seq));
    Ok(out)
}

/// Readings already packed (what retention keeps of a block), as one block again.
pub fn reblock(device: i64, readings: &[packed::Packed]) -> Option<Block> {
    let first = readings.first()?;
    let mut block = Block::new(device, first.received_ms, first.seq);
    let mut encoder = packed::Encoder::default();
    for r in readings {
        block.push(
            &mut encoder,
            r.received_ms,
            r.seq,
            r.device_ms,
            r.values.iter().copied(),
        );
    }
    Some(block)
}

fn finish(mut open: Open, out: &mut Prepared) {
    for (key, first, last, minute, aggregate) in open.series.drain(..) {
        widen(&mut out.series, key, first, last);
        out.rollups.add_minute(key, minute, &aggregate);
    }
    for (key, minute, aggregate) in open.pending_rollups.drain(..) {
        out.rollups.add_minute(key, minute, &aggregate);
    }
    widen(
        &mut out.devices,
        open.block.device,
        open.block.first_ms,
        open.block.last_ms,
    );
    out.blocks.push(open.block);
}

/// Whether two readings name the same device and the same fields in the same order.
fn same_names(a: &Reading, b: &Reading) -> bool {
    // A connection's readings share their names: comparing pointers settles most pairs
    // without reading the text.
    let same = |x: &Name, y: &Name| Arc::ptr_eq(x, y) || x == y;
    same(&a.device_id, &b.device_id)
        && a.values.len() == b.values.len()
        && a.values
            .iter()
            .zip(&b.values)
            .all(|(x, y)| same(&x.field, &y.field))
}

fn widen(spans: &mut BTreeMap<i64, (i64, i64)>, key: i64, first: i64, last: i64) {
    let span = spans.entry(key).or_insert((first, last));
    span.0 = span.0.min(first);
    span.1 = span.1.max(last);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite numbers `$N` parameters by first appearance; rusqlite binds by position. The
    /// shared statements are only right on SQLite if their `$N` first appear in order.
    #[test]
    fn shared_statements_number_their_parameters_in_order() {
        for sql in [
            INSERT_DEVICE,
            DEVICE_KEY,
            INSERT_SERIES,
            SERIES_KEY,
            INSERT_BLOCK,
        ] {
            let mut seen: Vec<u32> = Vec::new();
            for part in sql.split('$').skip(1) {
                let n: u32 = part
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap();
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
            assert_eq!(seen, (1..=seen.len() as u32).collect::<Vec<_>>(), "{sql}");
        }
    }
    use app::model::FieldValue;

    fn reading(device: &str, ms: i64, fields: &[(&str, f64)]) -> Arc<Reading> {
        Arc::new(Reading {
            seq: ms as u64,
            device_id: device.into(),
            received_ms: ms,
            device_ms: None,
            values: fields
                .iter()
                .map(|(f, v)| FieldValue {
                    field: (*f).into(),
                    value: *v,
                })
                .collect(),
        })
    }

    #[test]
    fn names_are_looked_up_device_first_then_series_once_each() {
        let batch = [
            reading("a", 1, &[("t", 1.0), ("h", 2.0)]),
            reading("a", 2, &[("t", 1.0)]),
            reading("b", 3, &[("t", 1.0)]),
        ];
        let mut keys = Keys::default();
        assert_eq!(
            keys.missing(&batch),
            Missing {
                devices: vec!["a".into(), "b".into()],
                series: vec![]
            }
        );
        keys.learn_device("a", 10);
        keys.learn_device("b", 11);
        assert_eq!(
            keys.missing(&batch).series,
            [
                ("a".into(), "t".into()),
                ("a".into(), "h".into()),
                ("b".into(), "t".into())
            ]
        );
        assert!(prepare(&batch, &keys).is_err(), "series keys still unknown");
        keys.learn_series("a", "t", 1);
        keys.learn_series("a", "h", 2);
        keys.learn_series("b", "t", 3);
        assert!(keys.missing(&batch).is_empty());

        let prepared = prepare(&batch, &keys).unwrap();
        assert_eq!(prepared.blocks.len(), 2, "one block per device");
        let a: Vec<packed::Packed> = packed::decode(&prepared.blocks[0].body)
            .map(Result::unwrap)
            .collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].values, [(1, 1.0), (2, 2.0)]);
        assert_eq!(a[1].values, [(1, 1.0)]);
        assert_eq!(
            (
                prepared.blocks[0].first_ms,
                prepared.blocks[0].last_ms,
                prepared.blocks[0].readings
            ),
            (1, 2, 2)
        );
        assert_eq!(prepared.devices[&10], (1, 2));
        assert_eq!(prepared.series[&3], (3, 3));
        assert_eq!(prepared.rollups.len(), 6, "three series, two levels");
    }

    #[test]
    fn a_block_spans_at_most_an_hour_and_holds_a_bounded_number_of_readings() {
        let mut keys = Keys::default();
        keys.learn_device("a", 1);
        keys.learn_series("a", "t", 1);
        let hours: Vec<Arc<Reading>> = (0..5)
            .map(|h| reading("a", h * 1_800_000, &[("t", 1.0)]))
            .collect();
        let prepared = prepare(&hours, &keys).unwrap();
        assert_eq!(
            block_sizes(&prepared),
            [3, 2],
            "0, 30 and 60 min (an hour exactly); 90 and 120 min"
        );
        assert!(prepared
            .blocks
            .iter()
            .all(|b| b.last_ms - b.first_ms <= MAX_BLOCK_SPAN_MS));
        let many: Vec<Arc<Reading>> = (0..(MAX_BLOCK_READINGS + 1))
            .map(|i| reading("a", i, &[("t", 1.0)]))
            .collect();
        let prepared = prepare(&many, &keys).unwrap();
        assert_eq!(block_sizes(&prepared), [MAX_BLOCK_READINGS, 1]);
    }

    /// How many readings each block holds.
    fn block_sizes(prepared: &Prepared) -> Vec<i64> {
        prepared.blocks.iter().map(|b| b.readings).collect()
    }
}
