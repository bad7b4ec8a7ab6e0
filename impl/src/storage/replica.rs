//! `Storage` as the broker core sees it: read through `ReplicaRead`, changed only by applying
//! the core's `Write`s.

use super::error::StorageError;
use super::log_format::RECORD_BYTES_MAX;
use super::{FsyncPolicy, Record, Storage};
use crate::core::{ReplicaApply, ReplicaRead, Write};
use crate::protocol::{Epoch, Offset};

/// Byte budget of one `ReplicaRead::read`: the core bounds reads by record count, and the log
/// caps any read at `log::READ_BYTES_MAX` anyway.
const REPLICA_READ_BYTES_MAX: u64 = 64 * RECORD_BYTES_MAX;

impl ReplicaRead for Storage {
    type Error = StorageError;

    fn fsync(&self) -> FsyncPolicy {
        self.log().fsync_policy()
    }

    fn log_end_offset(&self) -> Offset {
        self.log().log_end_offset()
    }

    fn epoch_at(&self, offset: Offset) -> Option<Epoch> {
        self.log().epoch_at(offset)
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        let log_end_offset = self.log().log_end_offset();
        self.epoch_cache().end_offset_for(epoch, log_end_offset)
    }

    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, StorageError> {
        if from >= self.log().log_end_offset() || max_records == 0 {
            return Ok(Vec::new());
        }
        let records_max = u32::try_from(max_records).unwrap_or(u32::MAX);
        self.read_within(from, records_max, REPLICA_READ_BYTES_MAX)
    }

    fn durable_end_offset(&self) -> Offset {
        self.log().durable_end_offset()
    }

    fn high_watermark_checkpoint(&self) -> Offset {
        self.high_watermark
    }
}

impl ReplicaApply for Storage {
    /// Applies one write: an append is written, not fsynced; a truncation is fsynced (with
    /// everything it leaves); a flush fsyncs the log; a HW checkpoint is written durably.
    fn apply(&mut self, write: &Write) -> Result<(), StorageError> {
        match write {
            Write::Append(records) => self.append(records),
            Write::TruncateTo(offset) => self.truncate_to(*offset),
            Write::Flush => self.log.flush(),
            Write::CheckpointHighWatermark(hw) => self.checkpoint_high_watermark(*hw),
        }
    }
}
