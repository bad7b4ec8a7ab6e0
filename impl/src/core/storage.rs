//! The broker core's storage interface: a read-only trait, and the writes the core asks for.
//!
//! The core reads its replica through [`ReplicaRead`] and never writes: every change it wants
//! is a [`Write`] in `Effects::writes`, which the runtime applies in order through
//! [`ReplicaApply`] before it hands the core the next input (raft-rs: `Storage` is read-only,
//! and `Ready` says what to persist). `storage::Storage` (on disk) and `memlog::MemLog` (tests)
//! implement both traits, once each.
//!
//! Durability of each write, as docs/protocol.md §2 has it: an `Append` is written but not
//! durable; a `TruncateTo` is durable when applied, and so is everything it leaves (the file is
//! fsynced); a `Flush` fsyncs the log (the durable end becomes the LEO); a
//! `CheckpointHighWatermark` is durable when applied. Under `fsync = always` the core follows
//! every `Append` with a `Flush` in the same step.

use crate::protocol::{Epoch, Offset, Record};
use crate::storage::FsyncPolicy;

/// One change to the replica's storage, as the core asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Appends records whose offsets continue the log (the first is at the LEO) and whose
    /// epochs do not decrease. Not durable until a later `Flush`.
    Append(Vec<Record>),
    /// Removes every record at this offset and above, durably, leaving the whole remaining log
    /// durable. Issued only below the LEO.
    TruncateTo(Offset),
    /// Makes the whole log durable (fsync).
    Flush,
    /// Writes the HW checkpoint durably; the value never exceeds the LEO.
    CheckpointHighWatermark(Offset),
}

impl Write {
    /// Whether applying this write makes something durable, so that a message sent in the same
    /// step must wait for it (persist-before-send, docs/protocol.md §2).
    pub fn is_durable(&self) -> bool {
        match self {
            Write::Append(_) => false,
            Write::TruncateTo(_) | Write::Flush | Write::CheckpointHighWatermark(_) => true,
        }
    }
}

/// What the broker core reads of its replica. No method mutates: writes are `Write`s the
/// runtime applies. Offsets are dense and the log starts at offset 0 (the partition has no
/// retention).
pub trait ReplicaRead {
    type Error: std::error::Error + Send + Sync + 'static;
    /// The fsync policy the operator chose for this log; the core issues `Flush` after every
    /// append under `Always`.
    fn fsync(&self) -> FsyncPolicy;
    fn log_end_offset(&self) -> Offset;
    /// The epoch of the record at `offset`, `None` at or past the LEO.
    fn epoch_at(&self, offset: Offset) -> Option<Epoch>;
    /// Epoch of the last record, 0 when empty.
    fn last_epoch(&self) -> Epoch {
        let last = self.log_end_offset().checked_sub(1);
        last.and_then(|offset| self.epoch_at(offset)).unwrap_or(0)
    }
    /// Largest epoch <= `epoch` in the log and the offset where it ends (start of the next
    /// epoch, or LEO); `None` when the log has no epoch <= `epoch`.
    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)>;
    /// Up to `max_records` records starting at `from`; empty when `from >= LEO`.
    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, Self::Error>;
    /// The LEO as of the last fsync: what a crash now keeps.
    fn durable_end_offset(&self) -> Offset;
    /// The HW as last written durably.
    fn high_watermark_checkpoint(&self) -> Offset;
}

/// The runtime's side: applying the core's writes, in order. A failed write leaves the
/// storage unusable (the process exits and recovers from disk, the fault the model knows).
pub trait ReplicaApply: ReplicaRead {
    fn apply(&mut self, write: &Write) -> Result<(), Self::Error>;

    /// Applies every write of one step, in order, stopping at the first failure.
    fn apply_all(&mut self, writes: &[Write]) -> Result<(), Self::Error> {
        writes.iter().try_for_each(|write| self.apply(write))
    }
}

/// `end_offset_for_epoch` from `epoch_at` alone, for a log whose epochs never decrease: the
/// records of epochs <= `epoch` are a prefix, which ends where the first larger epoch starts.
/// O(log LEO) lookups.
pub fn end_offset_for_epoch_by_search<R: ReplicaRead + ?Sized>(
    log: &R,
    epoch: Epoch,
) -> Option<(Epoch, Offset)> {
    let (mut low, mut high) = (0, log.log_end_offset());
    // Invariant: every offset below `low` has an epoch <= `epoch`, none from `high` on does.
    while low < high {
        let middle = low + (high - low) / 2;
        let found = log.epoch_at(middle).expect("below the LEO");
        match found <= epoch {
            true => low = middle + 1,
            false => high = middle,
        }
    }
    let last = low.checked_sub(1)?;
    Some((log.epoch_at(last).expect("below the LEO"), low))
}
