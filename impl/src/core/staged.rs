//! The writes one input has issued, and the replica as they will leave it (raft-rs's
//! `unstable`).
//!
//! The core never writes its storage; yet within one input it must see its own writes (an
//! append, then the LEO; a truncation, then the epoch to fetch from). `Staged` holds the
//! input's writes in order together with their effect on what the core reads, and [`Overlay`]
//! reads the stored replica through them. At the end of the input the writes leave in
//! `Effects::writes`, and `Staged` keeps only what the storage must look like once the runtime
//! has applied them ([`Expected`]); the next input asserts that it does. The contract is
//! therefore checked, not assumed: the runtime applies all of a step's writes before the next
//! input.

use super::storage::{end_offset_for_epoch_by_search, ReplicaRead, Write};
use crate::protocol::{Epoch, Offset, Record};
use crate::storage::FsyncPolicy;

/// What the core reads of its replica: stored state as of the last input, and the writes
/// issued since. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    writes: Vec<Write>,
    /// Stored records below this offset are still visible; `None`: all of them.
    kept: Option<Offset>,
    /// Records appended by this input's writes, visible after the kept stored ones.
    appended: Vec<Record>,
    durable_end_offset: Option<Offset>,
    high_watermark_checkpoint: Option<Offset>,
    /// The stored replica once the previous input's writes are applied.
    expected: Option<Expected>,
}

/// A summary of the storage the core expects to find at its next input.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expected {
    log_end_offset: Offset,
    last_epoch: Epoch,
    durable_end_offset: Offset,
    high_watermark_checkpoint: Offset,
}

impl Expected {
    fn of<R: ReplicaRead + ?Sized>(log: &R) -> Expected {
        Expected {
            log_end_offset: log.log_end_offset(),
            last_epoch: log.last_epoch(),
            durable_end_offset: log.durable_end_offset(),
            high_watermark_checkpoint: log.high_watermark_checkpoint(),
        }
    }
}

impl Staged {
    /// Asserts that `stored` is where the previous input's writes leave it and that nothing
    /// is staged: the runtime applied every write before this input.
    pub(crate) fn assert_applied<S: ReplicaRead>(&self, stored: &S) {
        assert!(
            self.writes.is_empty() && self.kept.is_none() && self.appended.is_empty(),
            "writes left staged from an earlier input"
        );
        if let Some(expected) = &self.expected {
            assert_eq!(
                &Expected::of(stored),
                expected,
                "the runtime did not apply the previous input's writes before this input"
            );
        }
    }

    /// Ends the input: the staged writes leave, and what they leave is remembered.
    pub(crate) fn take_writes<S: ReplicaRead>(&mut self, stored: &S) -> Vec<Write> {
        let expected = Expected::of(&Overlay::new(stored, self));
        let writes = std::mem::take(&mut self.writes);
        *self = Staged {
            expected: Some(expected),
            ..Staged::default()
        };
        writes
    }

    /// Stages an append of records that continue the log; under `fsync = always` a `Flush`
    /// follows it, so the records are durable before anything of this input leaves.
    pub(crate) fn append<S: ReplicaRead>(&mut self, stored: &S, records: Vec<Record>) {
        let overlay = Overlay::new(stored, self);
        let (log_end_offset, last_epoch) = (overlay.log_end_offset(), overlay.last_epoch());
        for (expected, record) in (log_end_offset..).zip(&records) {
            assert_eq!(record.offset, expected, "append must continue the log");
        }
        assert!(
            records
                .iter()
                .all(|record| record.leader_epoch >= last_epoch)
                && records
                    .windows(2)
                    .all(|w| w[0].leader_epoch <= w[1].leader_epoch),
            "appended epochs must not decrease"
        );
        if records.is_empty() {
            return;
        }
        self.appended.extend_from_slice(&records);
        self.writes.push(Write::Append(records));
        if stored.fsync() == FsyncPolicy::Always {
            self.flush(stored);
        }
    }

    /// Stages the removal of every record at `offset` and above; a no-op at or past the LEO.
    /// Durable, with all it leaves.
    pub(crate) fn truncate<S: ReplicaRead>(&mut self, stored: &S, offset: Offset) {
        let overlay = Overlay::new(stored, self);
        let (log_end_offset, kept) = (overlay.log_end_offset(), overlay.kept());
        if offset >= log_end_offset {
            return;
        }
        match offset.checked_sub(kept) {
            Some(appended_kept) => self.appended.truncate(to_index(appended_kept)),
            None => {
                self.kept = Some(offset);
                self.appended.clear();
            }
        }
        self.durable_end_offset = Some(offset);
        self.writes.push(Write::TruncateTo(offset));
    }

    /// Stages an fsync of the log; a no-op when it is durable already.
    pub(crate) fn flush<S: ReplicaRead>(&mut self, stored: &S) {
        let overlay = Overlay::new(stored, self);
        let log_end_offset = overlay.log_end_offset();
        if overlay.durable_end_offset() == log_end_offset {
            return;
        }
        self.durable_end_offset = Some(log_end_offset);
        self.writes.push(Write::Flush);
    }

    /// Stages a HW checkpoint write; a no-op when the checkpoint holds `hw` already.
    pub(crate) fn checkpoint_high_watermark<S: ReplicaRead>(&mut self, stored: &S, hw: Offset) {
        let overlay = Overlay::new(stored, self);
        assert!(hw <= overlay.log_end_offset(), "HW checkpoint past the LEO");
        if overlay.high_watermark_checkpoint() == hw {
            return;
        }
        self.high_watermark_checkpoint = Some(hw);
        self.writes.push(Write::CheckpointHighWatermark(hw));
    }

    fn changes_log(&self) -> bool {
        self.kept.is_some() || !self.appended.is_empty()
    }
}

fn to_index(offset: Offset) -> usize {
    usize::try_from(offset).expect("an in-memory count fits in usize")
}

/// The stored replica read through the staged writes. See the module doc.
pub(crate) struct Overlay<'a, S> {
    stored: &'a S,
    staged: &'a Staged,
}

impl<'a, S: ReplicaRead> Overlay<'a, S> {
    pub(crate) fn new(stored: &'a S, staged: &'a Staged) -> Self {
        Overlay { stored, staged }
    }

    /// The stored records still visible: those below the staged truncation.
    fn kept(&self) -> Offset {
        self.staged.kept.unwrap_or(self.stored.log_end_offset())
    }
}

impl<S: ReplicaRead> ReplicaRead for Overlay<'_, S> {
    type Error = S::Error;

    fn fsync(&self) -> FsyncPolicy {
        self.stored.fsync()
    }

    fn log_end_offset(&self) -> Offset {
        self.kept() + self.staged.appended.len() as Offset
    }

    fn epoch_at(&self, offset: Offset) -> Option<Epoch> {
        let kept = self.kept();
        match offset.checked_sub(kept) {
            None => self.stored.epoch_at(offset),
            Some(index) => {
                let record = self.staged.appended.get(to_index(index))?;
                Some(record.leader_epoch)
            }
        }
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        match self.staged.changes_log() {
            false => self.stored.end_offset_for_epoch(epoch),
            true => end_offset_for_epoch_by_search(self, epoch),
        }
    }

    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, S::Error> {
        let kept = self.kept();
        let mut records = Vec::new();
        if from < kept {
            let stored_max = to_index(kept - from).min(max_records);
            records = self.stored.read(from, stored_max)?;
        }
        let next = from + records.len() as Offset;
        if next >= kept && records.len() < max_records {
            let start = to_index(next - kept).min(self.staged.appended.len());
            let end = start
                .saturating_add(max_records - records.len())
                .min(self.staged.appended.len());
            records.extend_from_slice(&self.staged.appended[start..end]);
        }
        Ok(records)
    }

    fn durable_end_offset(&self) -> Offset {
        let stored = self.stored.durable_end_offset().min(self.kept());
        self.staged.durable_end_offset.unwrap_or(stored)
    }

    fn high_watermark_checkpoint(&self) -> Offset {
        let stored = self.stored.high_watermark_checkpoint();
        self.staged.high_watermark_checkpoint.unwrap_or(stored)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::memlog::MemLog;
    use crate::core::storage::ReplicaApply;

    #[derive(Clone, Debug)]
    enum Operation {
        Append { count: u8, new_epoch: bool },
        Truncate { back: u8 },
        Flush,
        Checkpoint { back: u8 },
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            3 => (1u8..4, any::<bool>())
                .prop_map(|(count, new_epoch)| Operation::Append { count, new_epoch }),
            2 => (1u8..5).prop_map(|back| Operation::Truncate { back }),
            1 => Just(Operation::Flush),
            1 => (0u8..3).prop_map(|back| Operation::Checkpoint { back }),
        ]
    }

    fn records(from: Offset, count: u8, epoch: Epoch) -> Vec<Record> {
        (from..from + Offset::from(count))
            .map(|offset| Record {
                offset,
                leader_epoch: epoch,
                producer_id: 1,
                sequence: offset as u32,
                value: vec![offset as u8],
            })
            .collect()
    }

    /// Stages `operation` and applies the same write to `applied`, the log as it will be.
    fn stage(staged: &mut Staged, stored: &MemLog, applied: &mut MemLog, operation: &Operation) {
        let before = staged.writes.len();
        let overlay = Overlay::new(stored, staged);
        let (end, epoch) = (overlay.log_end_offset(), overlay.last_epoch().max(1));
        match *operation {
            Operation::Append { count, new_epoch } => {
                let epoch = epoch + u32::from(new_epoch);
                staged.append(stored, records(end, count, epoch));
            }
            Operation::Truncate { back } => {
                staged.truncate(stored, end.saturating_sub(Offset::from(back)))
            }
            Operation::Flush => staged.flush(stored),
            Operation::Checkpoint { back } => {
                staged.checkpoint_high_watermark(stored, end.saturating_sub(Offset::from(back)))
            }
        }
        applied.apply_all(&staged.writes[before..]).unwrap();
    }

    /// Every read the core makes gives the same answer through the overlay as on the log the
    /// writes produce.
    fn assert_reads_agree(overlay: &Overlay<'_, MemLog>, applied: &MemLog) {
        let end = applied.log_end_offset();
        assert_eq!(overlay.log_end_offset(), end);
        assert_eq!(overlay.last_epoch(), applied.last_epoch());
        assert_eq!(overlay.durable_end_offset(), applied.durable_end_offset());
        let checkpoint = applied.high_watermark_checkpoint();
        assert_eq!(overlay.high_watermark_checkpoint(), checkpoint);
        for offset in 0..=end {
            assert_eq!(overlay.epoch_at(offset), applied.epoch_at(offset));
            for max in [1, 2, 64] {
                let through = overlay.read(offset, max).unwrap();
                assert_eq!(through, applied.read(offset, max).unwrap());
            }
        }
        for epoch in 0..=applied.last_epoch() + 1 {
            let through = overlay.end_offset_for_epoch(epoch);
            assert_eq!(
                through,
                applied.end_offset_for_epoch(epoch),
                "epoch {epoch}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Goal: within one input the core sees exactly its own writes, and the runtime that
        /// applies them leaves the storage where the next input expects it. Method: a stored
        /// log built by one staged input, then a second input's random writes; after each
        /// write the overlay's reads are compared with a copy of the log that applied it.
        #[test]
        fn the_overlay_reads_as_the_log_its_writes_produce(
            first in prop::collection::vec(operation(), 0..8),
            second in prop::collection::vec(operation(), 1..8),
            fsync_always in any::<bool>(),
        ) {
            let fsync = if fsync_always { FsyncPolicy::Always } else { FsyncPolicy::Lazy };
            let mut stored = MemLog::new(fsync);
            let mut staged = Staged::default();
            for input in [first, second] {
                staged.assert_applied(&stored);
                let mut applied = stored.clone();
                for operation in &input {
                    stage(&mut staged, &stored, &mut applied, operation);
                    assert_reads_agree(&Overlay::new(&stored, &staged), &applied);
                }
                let writes = staged.take_writes(&stored);
                stored.apply_all(&writes).unwrap();
                prop_assert_eq!(&stored, &applied);
                if fsync == FsyncPolicy::Always {
                    prop_assert_eq!(stored.durable_end_offset(), stored.log_end_offset());
                }
            }
            staged.assert_applied(&stored);
        }
    }

    /// Goal: a runtime that skips a step's writes is caught at the next input, not later.
    #[test]
    #[should_panic(expected = "did not apply the previous input's writes")]
    fn unapplied_writes_are_caught_at_the_next_input() {
        let stored = MemLog::new(FsyncPolicy::Lazy);
        let mut staged = Staged::default();
        staged.append(&stored, records(0, 2, 1));
        let _dropped = staged.take_writes(&stored);
        staged.assert_applied(&stored);
    }
}
