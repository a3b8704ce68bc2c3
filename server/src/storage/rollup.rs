//! Per-minute and per-hour aggregates (min, max, sum, count per series) kept as readings are
//! written, in the same transaction, so that long history windows read a few thousand rows
//! instead of millions and still work after raw readings have been deleted by retention.
//!
//! A batch adds its readings to [`Deltas`]; the back end merges each delta into its row
//! (`min` of mins, `max` of maxes, sums and counts added), so a minute that spans two batches,
//! or a restart, is neither lost nor counted twice. Pure: the merging rule lives here too.

use std::collections::BTreeMap;

/// The aggregation levels, finest first: a minute and an hour, in milliseconds.
pub const LEVELS: [i64; 2] = [60_000, 3_600_000];

/// What is known of one series over one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
}

impl Aggregate {
    pub fn of(value: f64) -> Aggregate {
        Aggregate {
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    /// Both together: what the back ends do in SQL when a bucket already has a row.
    pub fn merge(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn avg(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }
}

/// The start of the `span_ms` bucket that holds `t_ms` (buckets are aligned to the epoch).
pub fn bucket_start(t_ms: i64, span_ms: i64) -> i64 {
    t_ms.div_euclid(span_ms) * span_ms
}

/// The first bucket boundary at or after `t_ms` (saturating at the end of time).
pub fn align_up(t_ms: i64, span_ms: i64) -> i64 {
    let start = bucket_start(t_ms, span_ms);
    if start == t_ms {
        t_ms
    } else {
        start.saturating_add(span_ms)
    }
}

/// A key of the `rollups` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub series: i64,
    pub span_ms: i64,
    pub start_ms: i64,
}

/// The aggregates one batch adds, every level at once. Ordered, so that concurrent writers
/// (several hubs on one PostgreSQL) update rows in the same order and never deadlock.
#[derive(Debug, Default)]
pub struct Deltas(BTreeMap<BucketKey, Aggregate>);

impl Deltas {
    /// One value, at `t_ms`.
    pub fn add(&mut self, series: i64, t_ms: i64, value: f64) {
        self.add_minute(series, bucket_start(t_ms, LEVELS[0]), &Aggregate::of(value));
    }

    /// A minute's aggregate of one series: into its minute and its hour.
    pub fn add_minute(&mut self, series: i64, minute_ms: i64, aggregate: &Aggregate) {
        for span_ms in LEVELS {
            let key = BucketKey {
                series,
                span_ms,
                start_ms: bucket_start(minute_ms, span_ms),
            };
            self.0
                .entry(key)
                .and_modify(|a| a.merge(aggregate))
                .or_insert(*aggregate);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BucketKey, &Aggregate)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The coarsest level whose buckets fit in a chart bucket of `bucket_ms`, if any.
pub fn level_for(bucket_ms: i64) -> Option<i64> {
    LEVELS.into_iter().rev().find(|&span| span <= bucket_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_aligned_to_the_epoch_also_before_it() {
        assert_eq!(bucket_start(0, 60_000), 0);
        assert_eq!(bucket_start(59_999, 60_000), 0);
        assert_eq!(bucket_start(60_000, 60_000), 60_000);
        assert_eq!(bucket_start(-1, 60_000), -60_000);
        assert_eq!(align_up(0, 60_000), 0);
        assert_eq!(align_up(1, 60_000), 60_000);
        assert_eq!(align_up(-1, 60_000), 0);
        assert_eq!(align_up(i64::MAX, 60_000), i64::MAX);
    }

    #[test]
    fn a_batch_aggregates_every_level() {
        let mut deltas = Deltas::default();
        for (t, v) in [(0, 1.0), (30_000, 5.0), (60_000, -2.0)] {
            deltas.add(7, t, v);
        }
        let rows: Vec<_> = deltas
            .iter()
            .map(|(k, a)| (k.span_ms, k.start_ms, *a))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    60_000,
                    0,
                    Aggregate {
                        min: 1.0,
                        max: 5.0,
                        sum: 6.0,
                        count: 2
                    }
                ),
                (60_000, 60_000, Aggregate::of(-2.0)),
                (
                    3_600_000,
                    0,
                    Aggregate {
                        min: -2.0,
                        max: 5.0,
                        sum: 4.0,
                        count: 3
                    }
                ),
            ]
        );
    }

    #[test]
    fn the_level_is_the_coarsest_that_fits() {
        assert_eq!(level_for(59_999), None);
        assert_eq!(level_for(60_000), Some(60_000));
        assert_eq!(level_for(3_599_999), Some(60_000));
        assert_eq!(level_for(86_400_000), Some(3_600_000));
    }
}
