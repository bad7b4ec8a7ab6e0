//! The history checker of `insync chaos`: what the clients saw, against what the guarantees
//! allow (Jepsen's Kafka workload checks, for one partition).
//!
//! A history is three things the chaos run records: every record a producer had acknowledged
//! (`acks=all`, identified by `(producer id, sequence)`, which the broker stores with the
//! record), every read each consumer incarnation made while the faults ran, in the order it
//! made them, and one final read from offset 0 to the end after everything healed. Pure: no
//! I/O, so every check is unit-tested with a history that breaks it.
//!
//! The checks, each counted with its first examples:
//! - **lost**: acknowledged, but not in the final read (acks=all promises it survives);
//! - **duplicated**: one record (producer id, sequence) at two offsets, in any read; the
//!   idempotent producer's retries must be deduplicated by the leader;
//! - **poll-skip**: a consumer incarnation's next read is past an offset it never read (the
//!   final read holds a record there), or its first read is past where it started;
//! - **nonmonotonic**: a consumer incarnation reads an offset at or below one it read before;
//! - **gone**: a consumer read a record (only committed records are served, below the HW) that
//!   the final read does not hold at that offset: a committed record was later truncated;
//! - **reordered**: in the final read, one producer id's sequences go back (one batch is in
//!   flight per producer, so its log order is its send order).
//!
//! The final read is also checked as a consumer incarnation from 0: read once, in offset
//! order, nothing skipped.

use std::collections::{BTreeMap, BTreeSet};

use insync_impl::protocol::{Offset, RecordId};
use serde::Serialize;

/// How many examples each finding keeps.
pub const EXAMPLES_MAX: usize = 5;

/// One record a consumer read: where, and which record it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub offset: Offset,
    pub id: RecordId,
}

/// One consumer incarnation: it started reading at `from` and made `reads`, in order. A
/// consumer that is re-created (after it gave up on a broken cluster) is a new incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerLog {
    pub from: Offset,
    pub reads: Vec<Read>,
}

/// What the clients of a run saw. See the module doc.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub acknowledged: Vec<RecordId>,
    pub consumers: Vec<ConsumerLog>,
    /// From offset 0 to the end, after the last heal.
    pub final_read: Vec<Read>,
}

/// One kind of violation: how many, and the first few in words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Finding {
    fn record(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(example());
        }
    }
}

/// The History verdict and its figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HistoryVerdict {
    pub acknowledged: u64,
    /// Records in the final read.
    pub final_records: u64,
    /// Records every consumer incarnation read while the run went on.
    pub consumed: u64,
    /// In the final read but never acknowledged (a batch whose answer was lost, or that was
    /// still in flight): allowed, indeterminate in Jepsen's words.
    pub unacknowledged_present: u64,
    pub lost: Finding,
    pub duplicated: Finding,
    pub poll_skip: Finding,
    pub nonmonotonic: Finding,
    pub gone: Finding,
    pub reordered: Finding,
}

impl HistoryVerdict {
    /// No violation of any kind.
    pub fn passed(&self) -> bool {
        [
            &self.lost,
            &self.duplicated,
            &self.poll_skip,
            &self.nonmonotonic,
            &self.gone,
            &self.reordered,
        ]
        .iter()
        .all(|finding| finding.count == 0)
    }
}

/// Runs every check of the module doc on `history`.
pub fn check(history: &History) -> HistoryVerdict {
    let by_offset: BTreeMap<Offset, RecordId> = history
        .final_read
        .iter()
        .map(|read| (read.offset, read.id))
        .collect();
    let present: BTreeSet<RecordId> = by_offset.values().copied().collect();
    let acknowledged: BTreeSet<RecordId> = history.acknowledged.iter().copied().collect();
    let mut verdict = HistoryVerdict {
        acknowledged: acknowledged.len() as u64,
        final_records: history.final_read.len() as u64,
        consumed: history.consumers.iter().map(|c| c.reads.len() as u64).sum(),
        unacknowledged_present: present.difference(&acknowledged).count() as u64,
        ..HistoryVerdict::default()
    };
    for id in acknowledged.difference(&present) {
        verdict
            .lost
            .record(|| format!("{} acknowledged, never read", name(id)));
    }
    check_duplicates(history, &mut verdict.duplicated);
    let final_log = ConsumerLog {
        from: 0,
        reads: history.final_read.clone(),
    };
    for log in history.consumers.iter().chain(std::iter::once(&final_log)) {
        check_order(log, &by_offset, &mut verdict);
    }
    for read in history.consumers.iter().flat_map(|log| &log.reads) {
        if by_offset.get(&read.offset) != Some(&read.id) {
            let now = by_offset.get(&read.offset).map(name);
            verdict.gone.record(|| {
                let now = now.unwrap_or_else(|| "nothing".into());
                format!(
                    "{} read at {}, later {now} there",
                    name(&read.id),
                    read.offset
                )
            });
        }
    }
    check_reordered(&history.final_read, &mut verdict.reordered);
    verdict
}

/// A record (producer id, sequence) seen at more than one offset, in any read.
fn check_duplicates(history: &History, duplicated: &mut Finding) {
    let mut offsets: BTreeMap<RecordId, BTreeSet<Offset>> = BTreeMap::new();
    let every_read = history.consumers.iter().flat_map(|log| &log.reads);
    for read in every_read.chain(&history.final_read) {
        offsets.entry(read.id).or_default().insert(read.offset);
    }
    for (id, at) in offsets.iter().filter(|(_, at)| at.len() > 1) {
        duplicated.record(|| format!("{} at offsets {at:?}", name(id)));
    }
}

/// Poll-skip and nonmonotonic within one consumer incarnation.
fn check_order(
    log: &ConsumerLog,
    by_offset: &BTreeMap<Offset, RecordId>,
    verdict: &mut HistoryVerdict,
) {
    let mut next = log.from;
    for read in &log.reads {
        if read.offset < next {
            verdict
                .nonmonotonic
                .record(|| format!("read {} after reading up to {}", read.offset, next - 1));
        } else if read.offset > next {
            let skipped = by_offset.range(next..read.offset).next();
            if let Some((offset, id)) = skipped {
                verdict.poll_skip.record(|| {
                    format!(
                        "jumped from {next} to {}, over {} at {offset}",
                        read.offset,
                        name(id)
                    )
                });
            }
        }
        next = next.max(read.offset + 1);
    }
}

/// One producer id's sequences in the final read must rise with the offset.
fn check_reordered(final_read: &[Read], reordered: &mut Finding) {
    let mut last: BTreeMap<u64, (u32, Offset)> = BTreeMap::new();
    for read in final_read {
        let producer = read.id.producer_id;
        if let Some((sequence, offset)) = last.get(&producer).copied() {
            if read.id.sequence < sequence {
                reordered.record(|| {
                    format!(
                        "producer {producer:x}: sequence {} at {} after {sequence} at {offset}",
                        read.id.sequence, read.offset
                    )
                });
            }
        }
        last.insert(producer, (read.id.sequence, read.offset));
    }
}

fn name(id: &RecordId) -> String {
    format!("record {:x}/{}", id.producer_id, id.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(ids: &[(Offset, RecordId)]) -> Vec<Read> {
        ids.iter()
            .map(|&(offset, id)| Read { offset, id })
            .collect()
    }

    /// Producer 1's records 0..n at offsets 0..n, all acknowledged, read by one consumer.
    fn clean(n: u32) -> History {
        let log: Vec<(Offset, RecordId)> = (0..n)
            .map(|s| (Offset::from(s), RecordId::new(1, s)))
            .collect();
        History {
            acknowledged: (0..n).map(|s| RecordId::new(1, s)).collect(),
            consumers: vec![ConsumerLog {
                from: 0,
                reads: reads(&log),
            }],
            final_read: reads(&log),
        }
    }

    /// Goal: a history with nothing wrong passes, with its figures counted.
    #[test]
    fn a_clean_history_passes() {
        let verdict = check(&clean(10));
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!((verdict.acknowledged, verdict.final_records), (10, 10));
        assert_eq!(verdict.consumed, 10);
    }

    /// Goal: an acknowledged record missing from the final read is lost; an unacknowledged
    /// one present is allowed and counted.
    #[test]
    fn a_missing_acknowledged_record_is_lost() {
        let mut history = clean(10);
        history.final_read.truncate(8);
        history.consumers.clear();
        let verdict = check(&history);
        assert_eq!(verdict.lost.count, 2, "{verdict:?}");
        assert!(verdict.lost.examples[0].contains("1/8"));
        let mut extra = clean(3);
        extra.acknowledged.pop();
        let verdict = check(&extra);
        assert!(verdict.passed());
        assert_eq!(verdict.unacknowledged_present, 1);
    }

    /// Goal: one record at two offsets is a duplicate, in the final read or across reads.
    #[test]
    fn a_record_at_two_offsets_is_duplicated() {
        let mut history = clean(4);
        history.final_read.push(Read {
            offset: 4,
            id: RecordId::new(1, 2),
        });
        let verdict = check(&history);
        assert_eq!(verdict.duplicated.count, 1, "{verdict:?}");
        assert!(verdict.reordered.count > 0, "sequence 2 after 3");
    }

    /// Goal: a consumer whose reads jump over an existing record is a poll-skip, and one
    /// that starts past its position too; a jump over offsets nobody holds is not.
    #[test]
    fn a_jump_over_a_record_is_a_poll_skip() {
        let mut history = clean(6);
        history.consumers[0].reads.remove(3);
        let verdict = check(&history);
        assert_eq!(verdict.poll_skip.count, 1, "{verdict:?}");
        assert!(verdict.poll_skip.examples[0].contains("from 3 to 4"));
        let mut late = clean(6);
        late.consumers[0].reads.remove(0);
        assert_eq!(check(&late).poll_skip.count, 1);
        let mut tail = clean(6);
        tail.final_read.truncate(3);
        tail.acknowledged.truncate(3);
        tail.consumers[0].reads.truncate(3);
        assert!(check(&tail).passed());
    }

    /// Goal: reading an offset again, or one below, within one incarnation is nonmonotonic;
    /// a new incarnation may start anywhere.
    #[test]
    fn going_back_within_an_incarnation_is_nonmonotonic() {
        let mut history = clean(5);
        let again = history.consumers[0].reads[2];
        history.consumers[0].reads.push(again);
        let verdict = check(&history);
        assert_eq!(verdict.nonmonotonic.count, 1, "{verdict:?}");
        let mut restarted = clean(5);
        restarted.consumers.push(ConsumerLog {
            from: 2,
            reads: restarted.final_read[2..].to_vec(),
        });
        assert!(check(&restarted).passed());
    }

    /// Goal: a record a consumer read that the final read does not hold there (truncated
    /// after it was served as committed) is gone, whether replaced or absent.
    #[test]
    fn a_read_record_later_missing_is_gone() {
        let mut history = clean(5);
        history.final_read[4].id = RecordId::new(3, 0);
        let verdict = check(&history);
        assert_eq!(verdict.gone.count, 1, "{verdict:?}");
        assert!(verdict.gone.examples[0].contains("later record 3/0"));
        let mut absent = clean(5);
        absent.final_read.truncate(4);
        let verdict = check(&absent);
        assert_eq!((verdict.gone.count, verdict.lost.count), (1, 1));
    }

    /// Goal: the final read is itself checked: a gap in its offsets is a poll-skip, and a
    /// producer's sequences going back is reordered.
    #[test]
    fn the_final_read_must_be_contiguous_and_in_send_order() {
        let mut history = clean(4);
        history.consumers.clear();
        history.final_read.swap(1, 2);
        let verdict = check(&history);
        assert_eq!(verdict.nonmonotonic.count, 1, "{verdict:?}");
        let mut swapped = clean(4);
        swapped.consumers.clear();
        swapped.final_read[1].id = RecordId::new(1, 2);
        swapped.final_read[2].id = RecordId::new(1, 1);
        let verdict = check(&swapped);
        assert_eq!(verdict.reordered.count, 1, "{verdict:?}");
        assert!(!verdict.passed());
    }

    /// Goal: examples are capped, counts are not.
    #[test]
    fn examples_are_bounded() {
        let mut history = clean(20);
        history.final_read.clear();
        history.consumers.clear();
        let verdict = check(&history);
        assert_eq!(verdict.lost.count, 20);
        assert_eq!(verdict.lost.examples.len(), EXAMPLES_MAX);
    }
}
