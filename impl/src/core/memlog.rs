//! `MemLog`: an in-memory replica for tests and for the harness's sanity checks.
//!
//! It reads as `ReplicaRead` and applies the core's `Write`s as `ReplicaApply`, with the
//! durability rules of docs/protocol.md §2 so tests can crash a broker: an append waits for a
//! `Flush`; a truncation is durable and leaves the whole log durable, as on disk; the HW
//! checkpoint is what was last written. `crash` returns what a restart would recover.

use crate::core::storage::{end_offset_for_epoch_by_search, ReplicaApply, ReplicaRead, Write};
use crate::protocol::{Epoch, Offset, Record};
use crate::storage::FsyncPolicy;

/// A write that breaks the log's rules; the core never issues one, so a test seeing one has
/// found a core bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemLogError {
    #[error("append at offset {got}, but the log end offset is {expected}")]
    NotContiguous { expected: Offset, got: Offset },
    #[error("record at offset {offset} has epoch {epoch}, below the last epoch {last_epoch}")]
    EpochRegression {
        offset: Offset,
        epoch: Epoch,
        last_epoch: Epoch,
    },
    #[error("truncation to {offset} at or past the log end offset {log_end_offset}")]
    TruncationPastEnd {
        offset: Offset,
        log_end_offset: Offset,
    },
    #[error("HW checkpoint {hw} past the log end offset {log_end_offset}")]
    CheckpointPastEnd { hw: Offset, log_end_offset: Offset },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemLog {
    records: Vec<Record>,
    /// Records below this offset survive a crash.
    durable_end: Offset,
    high_watermark: Offset,
    fsync: FsyncPolicy,
}

impl MemLog {
    pub fn new(fsync: FsyncPolicy) -> Self {
        MemLog {
            records: Vec::new(),
            durable_end: 0,
            high_watermark: 0,
            fsync,
        }
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// What survives a crash and a restart's recovery, as `storage::Storage::open` leaves a
    /// data directory: the durable prefix, and the HW checkpoint capped at its end (a
    /// checkpoint may be ahead of the flushed log under `fsync = lazy`; opening caps and
    /// rewrites it, so a restarted broker never reads a checkpoint past its LEO).
    pub fn crash(&self) -> MemLog {
        MemLog {
            records: self.records[..to_index(self.durable_end)].to_vec(),
            durable_end: self.durable_end,
            high_watermark: self.high_watermark.min(self.durable_end),
            fsync: self.fsync,
        }
    }

    fn len(&self) -> Offset {
        self.records.len() as Offset
    }

    fn append(&mut self, records: &[Record]) -> Result<(), MemLogError> {
        let mut last_epoch = self.last_epoch();
        for (expected, record) in (self.len()..).zip(records) {
            if record.offset != expected {
                return Err(MemLogError::NotContiguous {
                    expected,
                    got: record.offset,
                });
            }
            if record.leader_epoch < last_epoch {
                return Err(MemLogError::EpochRegression {
                    offset: record.offset,
                    epoch: record.leader_epoch,
                    last_epoch,
                });
            }
            last_epoch = record.leader_epoch;
        }
        self.records.extend_from_slice(records);
        Ok(())
    }

    fn truncate_to(&mut self, offset: Offset) -> Result<(), MemLogError> {
        if offset >= self.len() {
            let log_end_offset = self.len();
            return Err(MemLogError::TruncationPastEnd {
                offset,
                log_end_offset,
            });
        }
        self.records.truncate(to_index(offset));
        self.durable_end = self.len();
        Ok(())
    }

    fn checkpoint(&mut self, hw: Offset) -> Result<(), MemLogError> {
        if hw > self.len() {
            let log_end_offset = self.len();
            return Err(MemLogError::CheckpointPastEnd { hw, log_end_offset });
        }
        self.high_watermark = hw;
        Ok(())
    }
}

fn to_index(offset: Offset) -> usize {
    usize::try_from(offset).expect("an in-memory log fits in memory")
}

impl ReplicaRead for MemLog {
    type Error = MemLogError;

    fn fsync(&self) -> FsyncPolicy {
        self.fsync
    }

    fn log_end_offset(&self) -> Offset {
        self.len()
    }

    fn epoch_at(&self, offset: Offset) -> Option<Epoch> {
        let record = self.records.get(usize::try_from(offset).ok()?)?;
        Some(record.leader_epoch)
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        end_offset_for_epoch_by_search(self, epoch)
    }

    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, MemLogError> {
        let start = to_index(from.min(self.len()));
        let end = start.saturating_add(max_records).min(self.records.len());
        Ok(self.records[start..end].to_vec())
    }

    fn durable_end_offset(&self) -> Offset {
        self.durable_end
    }

    fn high_watermark_checkpoint(&self) -> Offset {
        self.high_watermark
    }
}

impl ReplicaApply for MemLog {
    fn apply(&mut self, write: &Write) -> Result<(), MemLogError> {
        match write {
            Write::Append(records) => self.append(records),
            Write::TruncateTo(offset) => self.truncate_to(*offset),
            Write::Flush => {
                self.durable_end = self.len();
                Ok(())
            }
            Write::CheckpointHighWatermark(hw) => self.checkpoint(*hw),
        }
    }
}
