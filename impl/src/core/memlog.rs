//! `MemLog`: an in-memory `ReplicaLog` for tests and for the harness's sanity checks.
//!
//! It models the durability rules of docs/protocol.md §2 so tests can crash a broker: under
//! `FsyncPolicy::Always` every append is durable; under `Lazy` appends wait for `flush`;
//! truncations are durable and leave the whole log durable, as on disk; the HW checkpoint is
//! what was last written. `crash` returns what a restart would recover.

use crate::core::ReplicaLog;
use crate::protocol::{Epoch, Offset, Record};
use crate::storage::FsyncPolicy;

/// Misuse of the log by its caller; the core never does this, so a test seeing one has found
/// a core bug.
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

    /// What survives a crash: the durable prefix and the HW checkpoint (which the broker
    /// clamps to the recovered LEO on restart).
    pub fn crash(&self) -> MemLog {
        let durable = usize::try_from(self.durable_end).expect("in-memory log fits in memory");
        MemLog {
            records: self.records[..durable].to_vec(),
            durable_end: self.durable_end,
            high_watermark: self.high_watermark,
            fsync: self.fsync,
        }
    }

    fn len(&self) -> Offset {
        self.records.len() as Offset
    }
}

impl ReplicaLog for MemLog {
    type Error = MemLogError;

    fn log_end_offset(&self) -> Offset {
        self.len()
    }

    fn last_epoch(&self) -> Epoch {
        self.records.last().map_or(0, |record| record.leader_epoch)
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        // Epochs never decrease along the log, so the records of epochs <= `epoch` are a
        // prefix; it ends where the first record of a larger epoch starts.
        let end = self
            .records
            .partition_point(|record| record.leader_epoch <= epoch);
        let found = self.records[..end].last()?.leader_epoch;
        Some((found, end as Offset))
    }

    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, MemLogError> {
        let start = usize::try_from(from.min(self.len())).expect("fits in memory");
        let end = start.saturating_add(max_records).min(self.records.len());
        Ok(self.records[start..end].to_vec())
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
        if self.fsync == FsyncPolicy::Always {
            self.durable_end = self.len();
        }
        Ok(())
    }

    fn truncate_to(&mut self, offset: Offset) -> Result<(), MemLogError> {
        if offset < self.len() {
            self.records
                .truncate(usize::try_from(offset).expect("below the length"));
            self.durable_end = self.len();
        }
        Ok(())
    }

    fn durable_end_offset(&self) -> Offset {
        self.durable_end
    }

    fn flush(&mut self) -> Result<(), MemLogError> {
        self.durable_end = self.len();
        Ok(())
    }

    fn high_watermark_checkpoint(&self) -> Offset {
        self.high_watermark
    }

    fn write_high_watermark(&mut self, hw: Offset) -> Result<(), MemLogError> {
        assert!(hw <= self.len(), "HW checkpoint {hw} past the log end");
        self.high_watermark = hw;
        Ok(())
    }
}
