//! `Storage` as the core's `ReplicaLog`: the on-disk log behind the sans-I/O broker.

use super::error::StorageError;
use super::log_format::RECORD_BYTES_MAX;
use super::{Record, Storage};
use crate::core::ReplicaLog;
use crate::protocol::{Epoch, Offset};

/// Byte budget of one `ReplicaLog::read`: the core bounds reads by record count, and the log
/// caps any read at `log::READ_BYTES_MAX` anyway.
const REPLICA_READ_BYTES_MAX: u64 = 64 * RECORD_BYTES_MAX;

impl ReplicaLog for Storage {
    type Error = StorageError;

    fn log_end_offset(&self) -> Offset {
        Storage::log_end_offset(self)
    }

    fn last_epoch(&self) -> Epoch {
        self.log().last_epoch().unwrap_or(0)
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        self.end_offset_for(epoch)
    }

    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, StorageError> {
        if from >= Storage::log_end_offset(self) || max_records == 0 {
            return Ok(Vec::new());
        }
        let records_max = u32::try_from(max_records).unwrap_or(u32::MAX);
        Storage::read(self, from, records_max, REPLICA_READ_BYTES_MAX)
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        Storage::append(self, records)
    }

    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        Storage::truncate_to(self, offset)
    }

    fn durable_end_offset(&self) -> Offset {
        Storage::durable_end_offset(self)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        Storage::flush(self)
    }

    fn high_watermark_checkpoint(&self) -> Offset {
        self.high_watermark()
    }

    fn write_high_watermark(&mut self, hw: Offset) -> Result<(), StorageError> {
        self.checkpoint_high_watermark(hw)
    }
}
