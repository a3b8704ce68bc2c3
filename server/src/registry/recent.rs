//! A device's recent readings, kept for the live charts in columns rather than as readings.
//!
//! Held as shared [`Reading`]s, a kept two-field reading cost about 170 bytes (the reading and
//! its `Arc` ~96, its values ~64, the ring's slot 8): with 10,000 devices at 1 Hz and 600 kept
//! each, a gigabyte. Here the same reading is its sequence number, receive time, a count, and
//! per value a field number and the value: 35 bytes (43 once the device sends its own
//! timestamps). Snapshots rebuild readings from the columns; field names are kept once.

use app::model::{FieldValue, Name, Reading};
use std::collections::VecDeque;

/// Distinct field names one device's ring can name (a field number is a byte). A device that
/// uses more starts its ring over: its charts lose their past, nothing else.
const MAX_FIELDS: usize = u8::MAX as usize;

#[derive(Debug, Default)]
pub struct Recent {
    /// Field names in order of first appearance.
    fields: Vec<Name>,
    /// One entry per reading, oldest first.
    seqs: VecDeque<u64>,
    received_ms: VecDeque<i64>,
    /// Values per reading.
    counts: VecDeque<u8>,
    /// The device's own timestamps, one per reading, once any reading had one (`i64::MIN`:
    /// none); most devices never send one and never pay for the column.
    device_ms: Option<VecDeque<i64>>,
    /// Every reading's values, in order: field numbers and values.
    field_of: VecDeque<u8>,
    values: VecDeque<f64>,
}

impl Recent {
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Adds `reading`, dropping the oldest beyond `cap` readings.
    pub fn push(&mut self, reading: &Reading, cap: usize) {
        let mut numbers = Vec::with_capacity(reading.values.len());
        for value in reading.values.iter().take(u8::MAX as usize) {
            match self.number_of(&value.field) {
                Some(n) => numbers.push(n),
                None => {
                    // A device that names more fields than a byte counts: start over.
                    *self = Recent::default();
                    return self.push(reading, cap);
                }
            }
        }
        while self.len() >= cap.max(1) {
            self.pop();
        }
        grow_exact(&mut self.seqs, cap);
        grow_exact(&mut self.received_ms, cap);
        grow_exact(&mut self.counts, cap);
        self.seqs.push_back(reading.seq);
        self.received_ms.push_back(reading.received_ms);
        self.counts.push_back(numbers.len() as u8);
        match (reading.device_ms, &mut self.device_ms) {
            (_, Some(column)) => column.push_back(reading.device_ms.unwrap_or(i64::MIN)),
            (Some(ms), None) => {
                // The first timestamp: the readings before it had none.
                let mut column: VecDeque<i64> = std::iter::repeat_n(i64::MIN, self.len() - 1)
                    .chain([ms])
                    .collect();
                column.shrink_to_fit();
                self.device_ms = Some(column);
            }
            (None, None) => {}
        }
        self.field_of.extend(numbers.iter().copied());
        self.values
            .extend(reading.values.iter().take(numbers.len()).map(|v| v.value));
    }

    fn number_of(&mut self, field: &Name) -> Option<u8> {
        if let Some(n) = self.fields.iter().position(|f| f == field) {
            return Some(n as u8);
        }
        if self.fields.len() >= MAX_FIELDS {
            return None;
        }
        self.fields.push(field.clone());
        Some((self.fields.len() - 1) as u8)
    }

    fn pop(&mut self) {
        self.seqs.pop_front();
        self.received_ms.pop_front();
        if let Some(column) = &mut self.device_ms {
            column.pop_front();
        }
        let count = self.counts.pop_front().unwrap_or(0) as usize;
        self.field_of.drain(..count.min(self.field_of.len()));
        self.values.drain(..count.min(self.values.len()));
    }

    /// The newest `last` readings (all if fewer), oldest first, as `device`'s.
    pub fn readings(&self, device: &Name, last: usize) -> Vec<Reading> {
        let skip = self.len().saturating_sub(last);
        let mut first_value: usize = self.counts.iter().take(skip).map(|&c| c as usize).sum();
        let mut out = Vec::with_capacity(self.len() - skip);
        for i in skip..self.len() {
            let count = self.counts[i] as usize;
            let values = (first_value..first_value + count)
                .map(|v| FieldValue {
                    field: self.fields[self.field_of[v] as usize].clone(),
                    value: self.values[v],
                })
                .collect();
            first_value += count;
            out.push(Reading {
                seq: self.seqs[i],
                device_id: device.clone(),
                received_ms: self.received_ms[i],
                device_ms: self
                    .device_ms
                    .as_ref()
                    .map(|column| column[i])
                    .filter(|&ms| ms != i64::MIN),
                values,
            });
        }
        out
    }
}

/// Lets a column grow by doubling, but never past `cap` (a `VecDeque` left to itself would
/// reach 1,024 slots for 600 readings).
fn grow_exact<T>(column: &mut VecDeque<T>, cap: usize) {
    if column.len() == column.capacity() && column.len() < cap {
        let more = column.len().max(4).min(cap - column.len());
        column.reserve_exact(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(seq: u64, values: &[(&str, f64)], device_ms: Option<i64>) -> Reading {
        Reading {
            seq,
            device_id: "7".into(),
            received_ms: seq as i64 * 1000,
            device_ms,
            values: values
                .iter()
                .map(|(f, v)| FieldValue {
                    field: (*f).into(),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn readings_come_back_as_they_went_in_newest_last_within_the_cap() {
        let mut recent = Recent::default();
        let all: Vec<Reading> = (1..=10)
            .map(|i| {
                let values: &[(&str, f64)] = if i % 3 == 0 {
                    &[("temp", 20.5), ("hum", 40.0), ("co2", 400.0)]
                } else {
                    &[("hum", i as f64)]
                };
                reading(i, values, (i > 6).then_some(i as i64 * 999))
            })
            .collect();
        for r in &all {
            recent.push(r, 6);
        }
        assert_eq!(recent.len(), 6);
        assert_eq!(recent.readings(&"7".into(), 100), all[4..]);
        assert_eq!(recent.readings(&"7".into(), 2), all[8..]);
        assert!(recent.readings(&"7".into(), 0).is_empty());
    }

    proptest::proptest! {
        /// Whatever the readings (any fields, with and without timestamps) and the cap, the
        /// ring gives back exactly the newest `cap` of them.
        #[test]
        fn the_ring_holds_the_newest_readings_unchanged(
            cap in 1usize..40,
            input in proptest::collection::vec(
                (
                    proptest::collection::vec((0u8..6, -1e9f64..1e9), 0..5),
                    proptest::option::of(0i64..1_000_000),
                ),
                0..120,
            ),
        ) {
            let mut recent = Recent::default();
            let names = ["a", "b", "c", "temp", "hum", "x"];
            let all: Vec<Reading> = input
                .iter()
                .enumerate()
                .map(|(i, (values, device_ms))| {
                    let values: Vec<(&str, f64)> =
                        values.iter().map(|(f, v)| (names[*f as usize], *v)).collect();
                    reading(i as u64 + 1, &values, *device_ms)
                })
                .collect();
            for r in &all {
                recent.push(r, cap);
            }
            let skip = all.len().saturating_sub(cap);
            proptest::prop_assert_eq!(recent.readings(&"7".into(), usize::MAX), &all[skip..]);
        }
    }

    #[test]
    fn columns_grow_to_the_cap_and_no_further() {
        let mut recent = Recent::default();
        for i in 0..2000 {
            recent.push(&reading(i, &[("temp", 1.0), ("hum", 2.0)], None), 600);
        }
        assert_eq!(recent.len(), 600);
        assert!(recent.seqs.capacity() <= 600, "{}", recent.seqs.capacity());
        assert!(recent.device_ms.is_none(), "no column without timestamps");
    }

    #[test]
    fn a_device_naming_too_many_fields_starts_its_ring_over() {
        let mut recent = Recent::default();
        let names: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            recent.push(&reading(i as u64, &[(name, 1.0)], None), 1000);
        }
        assert!(recent.len() < 300 && recent.fields.len() <= MAX_FIELDS);
        let kept = recent.readings(&"7".into(), 1);
        assert_eq!(&*kept[0].values[0].field, "f299");
    }
}
