//! The in-memory log the core's tests run on is the on-disk storage in everything the core can
//! see: the same writes, applied to a `MemLog` and to a `Storage` in a temp dir, leave the two
//! answering every `ReplicaRead` question alike, and a crash of each (`MemLog::crash`; a
//! simulated power loss and reopening of the directory) keeps the same records and checkpoint.
//! So what a core test shows over `MemLog` is what a broker does over its disk.
//!
//! Method: proptest generates the writes the core issues (appends that continue the log with
//! epochs that do not decrease, each followed by a flush under `fsync = always`; truncations
//! below the LEO; flushes; HW checkpoints at most the LEO) and crashes; after each one every
//! read the core makes is compared at every offset, including the edges the trait promises
//! (`read` past the LEO or of zero records is empty).

use proptest::prelude::*;

use insync_impl::core::memlog::MemLog;
use insync_impl::core::{ReplicaApply, ReplicaRead, Write};
use insync_impl::storage::log_format::VALUE_BYTES_MAX;
use insync_impl::storage::{simulate_power_loss, FsyncPolicy, Record, Storage, StorageOptions};

#[derive(Clone, Debug)]
enum Operation {
    Append {
        count: u8,
        new_epoch: bool,
        value_bytes: u8,
    },
    Truncate {
        back: u8,
    },
    Flush,
    Checkpoint {
        back: u8,
    },
    Crash,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (1u8..4, any::<bool>(), 0u8..3).prop_map(|(count, new_epoch, value_bytes)| {
            Operation::Append { count, new_epoch, value_bytes }
        }),
        2 => (1u8..5).prop_map(|back| Operation::Truncate { back }),
        1 => Just(Operation::Flush),
        2 => (0u8..3).prop_map(|back| Operation::Checkpoint { back }),
        1 => Just(Operation::Crash),
    ]
}

/// The two logs under test; `disk` is `None` only while a crash replaces it.
struct Pair {
    dir: tempfile::TempDir,
    options: StorageOptions,
    disk: Option<Storage>,
    memory: MemLog,
}

impl Pair {
    fn new(fsync: FsyncPolicy) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let options = StorageOptions::new(fsync).tracking_durability();
        let (disk, _) = Storage::open(dir.path(), options).unwrap();
        Pair {
            dir,
            options,
            disk: Some(disk),
            memory: MemLog::new(fsync),
        }
    }

    fn disk(&self) -> &Storage {
        self.disk.as_ref().expect("open between operations")
    }

    fn apply(&mut self, write: Write) {
        self.disk.as_mut().unwrap().apply(&write).unwrap();
        self.memory.apply(&write).unwrap();
    }

    /// Performs `operation` as the core would issue it; an operation the core would not issue
    /// here (a truncation at the LEO) is skipped.
    fn perform(&mut self, operation: &Operation) {
        let end = self.memory.log_end_offset();
        match *operation {
            Operation::Append {
                count,
                new_epoch,
                value_bytes,
            } => {
                let epoch = self.memory.last_epoch().max(1) + u32::from(new_epoch);
                let records = (end..end + u64::from(count))
                    .map(|offset| record(offset, epoch, value_bytes))
                    .collect();
                self.apply(Write::Append(records));
                if self.memory.fsync() == FsyncPolicy::Always {
                    self.apply(Write::Flush);
                }
            }
            Operation::Truncate { back } => {
                let offset = end.saturating_sub(u64::from(back));
                if offset < end {
                    self.apply(Write::TruncateTo(offset));
                }
            }
            Operation::Flush => self.apply(Write::Flush),
            Operation::Checkpoint { back } => self.apply(Write::CheckpointHighWatermark(
                end.saturating_sub(u64::from(back)),
            )),
            Operation::Crash => self.crash(),
        }
    }

    /// Both logs lose what a power loss loses; the directory is reopened as a restarting
    /// broker opens it.
    fn crash(&mut self) {
        drop(self.disk.take());
        let report = simulate_power_loss(self.dir.path()).unwrap();
        self.memory = self.memory.crash();
        assert_eq!(report.durable_end_offset, self.memory.log_end_offset());
        let (disk, _) = Storage::open(self.dir.path(), self.options).unwrap();
        self.disk = Some(disk);
    }
}

fn record(offset: u64, leader_epoch: u32, value_bytes: u8) -> Record {
    Record {
        offset,
        leader_epoch,
        producer_id: offset % 3,
        sequence: offset as u32,
        value: vec![offset as u8; usize::from(value_bytes)],
    }
}

/// Every read the core makes gives the same answer on both logs.
fn assert_pair_agrees(pair: &Pair) {
    let (disk, memory) = (pair.disk(), &pair.memory);
    let end = memory.log_end_offset();
    assert_eq!(disk.fsync(), memory.fsync());
    assert_eq!(disk.log_end_offset(), end);
    assert_eq!(disk.last_epoch(), memory.last_epoch());
    assert_eq!(disk.durable_end_offset(), memory.durable_end_offset());
    let checkpoint = memory.high_watermark_checkpoint();
    assert_eq!(disk.high_watermark_checkpoint(), checkpoint);
    for offset in 0..=end + 1 {
        assert_eq!(disk.epoch_at(offset), memory.epoch_at(offset), "{offset}");
        for max in [0, 1, 2, 64] {
            let read = disk.read(offset, max).unwrap();
            assert_eq!(read, memory.read(offset, max).unwrap(), "{offset} {max}");
            let expected = usize::try_from(end.saturating_sub(offset))
                .unwrap()
                .min(max);
            assert_eq!(read.len(), expected, "read({offset}, {max})");
        }
    }
    for epoch in 0..=memory.last_epoch() + 1 {
        let found = disk.end_offset_for_epoch(epoch);
        assert_eq!(found, memory.end_offset_for_epoch(epoch), "epoch {epoch}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Goal: a `MemLog` and a `Storage` given the same writes and crashes read alike. See the
    /// module doc.
    #[test]
    fn memlog_and_storage_read_alike_after_the_same_writes(
        operations in prop::collection::vec(operation(), 1..24),
        fsync_always in any::<bool>(),
    ) {
        let fsync = if fsync_always { FsyncPolicy::Always } else { FsyncPolicy::Lazy };
        let mut pair = Pair::new(fsync);
        assert_pair_agrees(&pair);
        for operation in &operations {
            pair.perform(operation);
            assert_pair_agrees(&pair);
        }
    }
}

/// Goal: a crash keeps exactly what was flushed, on both logs, and never a HW checkpoint past
/// it. Method: five records, a flush after three, a HW checkpoint of 4 (ahead of the flushed
/// log, as under `fsync = lazy` when followers hold the records); after the crash both hold
/// the first three records, the durable end is 3, and the checkpoint reads 3.
#[test]
fn a_crash_keeps_the_flushed_prefix_on_both_logs() {
    let mut pair = Pair::new(FsyncPolicy::Lazy);
    let first: Vec<Record> = (0..3).map(|offset| record(offset, 1, 2)).collect();
    let second: Vec<Record> = (3..5).map(|offset| record(offset, 2, 2)).collect();
    pair.apply(Write::Append(first.clone()));
    pair.apply(Write::Flush);
    pair.apply(Write::Append(second));
    pair.apply(Write::CheckpointHighWatermark(4));
    assert_eq!(pair.memory.durable_end_offset(), 3);
    assert_pair_agrees(&pair);
    pair.crash();
    assert_eq!(pair.memory.records(), &first[..]);
    assert_eq!(pair.disk().read(0, 64).unwrap(), first);
    assert_eq!(pair.memory.durable_end_offset(), 3);
    assert_eq!(pair.memory.high_watermark_checkpoint(), 3);
    assert_pair_agrees(&pair);
}

/// Goal: a read on disk is bounded by the record count the core asks for, not by a byte
/// budget smaller than the log's own (`log::READ_BYTES_MAX`), so a follower fetching the
/// largest records gets as many per round trip as over `MemLog`. Method: three records of the
/// largest value; one read of three returns all of them on both logs.
#[test]
fn a_read_of_the_largest_records_returns_as_many_as_asked() {
    let mut pair = Pair::new(FsyncPolicy::Lazy);
    let largest = usize::try_from(VALUE_BYTES_MAX).unwrap();
    let records: Vec<Record> = (0..3)
        .map(|offset| Record {
            value: vec![offset as u8; largest],
            ..record(offset, 1, 0)
        })
        .collect();
    pair.apply(Write::Append(records.clone()));
    assert_eq!(pair.disk().read(0, 3).unwrap(), records);
    assert_eq!(pair.memory.read(0, 3).unwrap(), records);
}
