//! The idempotent-producer table (docs/kafka-notes.md "Producer"; protocol §4.5 step 3).
//!
//! For each producer id the leader remembers which sequences are in its log and at which
//! offsets, so a retried batch is recognised and answered with its original offset, and a gap
//! in sequences is refused. The table is derived from the log alone: rebuilt by reading it at
//! start, extended on every append (as leader or follower), trimmed on truncation. A new
//! leader therefore knows every producer whose records it holds.
//!
//! Records carry no batch boundaries, so the table keeps *runs*: maximal stretches of
//! consecutive sequences at consecutive offsets. A retry matches when every sequence of the
//! batch is found, at consecutive offsets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::core::ReplicaRead;
use crate::protocol::{Offset, Record};

/// Runs remembered per producer; older runs are forgotten (Kafka keeps five batches).
const PRODUCER_RUNS_MAX: usize = 8;
/// Producers remembered; the one whose last record is oldest is forgotten first. A forgotten
/// producer's next batch is accepted as from a new producer.
const PRODUCERS_MAX: usize = 65_536;
/// Records read per call while rebuilding.
const REBUILD_READ_CHUNK: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first_sequence: u32,
    first_offset: Offset,
    count: u32,
}

impl Run {
    fn offset_of(&self, sequence: u32) -> Option<Offset> {
        let index = sequence.checked_sub(self.first_sequence)?;
        (index < self.count).then(|| self.first_offset + u64::from(index))
    }

    fn last_offset(&self) -> Offset {
        self.first_offset + u64::from(self.count) - 1
    }
}

#[derive(Clone, Debug, Default)]
struct ProducerState {
    /// Oldest first; never empty while the producer is in the table.
    runs: VecDeque<Run>,
}

impl ProducerState {
    fn last_sequence(&self) -> u32 {
        let run = self.runs.back().expect("a known producer has a run");
        run.first_sequence + (run.count - 1)
    }

    fn last_offset(&self) -> Offset {
        self.runs
            .back()
            .expect("a known producer has a run")
            .last_offset()
    }
}

/// How a produce batch `(producer_id, first_sequence, count)` relates to the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SequenceCheck {
    /// Append it: the next sequence of a known producer, or an unknown producer.
    Append,
    /// Every record of the batch is already in the log, at these offsets.
    Duplicate {
        base_offset: Offset,
        last_offset: Offset,
    },
    /// Neither: refuse, telling the producer which sequence comes next.
    OutOfOrder { expected: u32 },
}

#[derive(Clone, Debug, Default)]
pub(super) struct ProducerTable {
    producers: BTreeMap<u64, ProducerState>,
    /// `(last offset, producer id)` for every producer: eviction order.
    recency: BTreeSet<(Offset, u64)>,
}

impl ProducerTable {
    /// Reads the whole log once.
    pub(super) fn rebuild<L: ReplicaRead>(log: &L) -> Result<Self, L::Error> {
        let mut table = ProducerTable::default();
        let end = log.log_end_offset();
        let mut next = 0;
        while next < end {
            let records = log.read(next, REBUILD_READ_CHUNK)?;
            assert!(
                !records.is_empty(),
                "log read at {next} below LEO {end} returned nothing"
            );
            table.observe(&records);
            next = records.last().map_or(end, |record| record.offset + 1);
        }
        Ok(table)
    }

    /// Accounts for records just appended to the log.
    pub(super) fn observe(&mut self, records: &[Record]) {
        for record in records {
            self.observe_one(record.producer_id, record.sequence, record.offset);
        }
    }

    fn observe_one(&mut self, producer_id: u64, sequence: u32, offset: Offset) {
        let state = self.producers.entry(producer_id).or_default();
        if let Some(last) = state.runs.back() {
            self.recency.remove(&(last.last_offset(), producer_id));
        }
        let extends = state.runs.back().is_some_and(|run| {
            run.first_sequence.checked_add(run.count) == Some(sequence)
                && run.first_offset + u64::from(run.count) == offset
        });
        if extends {
            state.runs.back_mut().expect("checked above").count += 1;
        } else {
            state.runs.push_back(Run {
                first_sequence: sequence,
                first_offset: offset,
                count: 1,
            });
            if state.runs.len() > PRODUCER_RUNS_MAX {
                state.runs.pop_front();
            }
        }
        self.recency.insert((offset, producer_id));
        if self.producers.len() > PRODUCERS_MAX {
            let (_, oldest) = self
                .recency
                .pop_first()
                .expect("recency indexes every producer");
            self.producers.remove(&oldest);
        }
    }

    /// Forgets every record at `offset` and above.
    pub(super) fn truncate(&mut self, offset: Offset) {
        let cut: Vec<(Offset, u64)> = self.recency.range((offset, 0)..).copied().collect();
        for (last_offset, producer_id) in cut {
            self.recency.remove(&(last_offset, producer_id));
            let state = self
                .producers
                .get_mut(&producer_id)
                .expect("indexed producer");
            while state
                .runs
                .back()
                .is_some_and(|run| run.first_offset >= offset)
            {
                state.runs.pop_back();
            }
            if let Some(run) = state.runs.back_mut() {
                if run.last_offset() >= offset {
                    run.count = u32::try_from(offset - run.first_offset).expect("within run");
                }
                self.recency.insert((state.last_offset(), producer_id));
            } else {
                self.producers.remove(&producer_id);
            }
        }
    }

    /// Classifies a batch of `count` records starting at `first_sequence`.
    pub(super) fn check(&self, producer_id: u64, first_sequence: u32, count: u32) -> SequenceCheck {
        assert!(
            count > 0,
            "empty batches are refused before the sequence check"
        );
        let Some(state) = self.producers.get(&producer_id) else {
            return SequenceCheck::Append;
        };
        let last_sequence = state.last_sequence();
        let expected = last_sequence.wrapping_add(1);
        if first_sequence == expected {
            return SequenceCheck::Append;
        }
        let last_of_batch = first_sequence.checked_add(count - 1);
        let found = |sequence: u32| state.runs.iter().find_map(|run| run.offset_of(sequence));
        if let Some(last_of_batch) = last_of_batch.filter(|last| *last <= last_sequence) {
            if let (Some(base_offset), Some(last_offset)) =
                (found(first_sequence), found(last_of_batch))
            {
                if last_offset - base_offset == u64::from(count - 1) {
                    return SequenceCheck::Duplicate {
                        base_offset,
                        last_offset,
                    };
                }
            }
        }
        SequenceCheck::OutOfOrder { expected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: Offset, producer_id: u64, sequence: u32) -> Record {
        Record {
            offset,
            leader_epoch: 1,
            producer_id,
            sequence,
            value: Vec::new(),
        }
    }

    /// Goal: retries, appends and gaps are told apart across batches that merged into a run.
    #[test]
    fn classifies_batches() {
        let mut table = ProducerTable::default();
        table.observe(&[
            record(0, 7, 0),
            record(1, 7, 1),
            record(2, 9, 0),
            record(3, 7, 2),
        ]);
        assert_eq!(table.check(7, 3, 2), SequenceCheck::Append);
        assert_eq!(
            table.check(7, 0, 2),
            SequenceCheck::Duplicate {
                base_offset: 0,
                last_offset: 1
            }
        );
        // Sequences 1 and 2 are at offsets 1 and 3: not one batch.
        assert_eq!(
            table.check(7, 1, 2),
            SequenceCheck::OutOfOrder { expected: 3 }
        );
        assert_eq!(
            table.check(7, 5, 1),
            SequenceCheck::OutOfOrder { expected: 3 }
        );
        assert_eq!(table.check(8, 42, 1), SequenceCheck::Append);
    }

    /// Goal: truncation forgets exactly the records it removes, and whole producers with them.
    #[test]
    fn truncation_trims_runs() {
        let mut table = ProducerTable::default();
        table.observe(&[
            record(0, 7, 0),
            record(1, 7, 1),
            record(2, 9, 0),
            record(3, 7, 2),
        ]);
        table.truncate(2);
        assert_eq!(table.check(7, 2, 1), SequenceCheck::Append);
        assert_eq!(table.check(9, 5, 1), SequenceCheck::Append);
        table.truncate(1);
        assert_eq!(table.check(7, 1, 1), SequenceCheck::Append);
        table.truncate(0);
        assert!(table.producers.is_empty() && table.recency.is_empty());
    }
}
