//! The leader-epoch cache a follower's divergence check relies on (KIP-101, KIP-279) is the
//! epochs of the records, through `Storage`'s public API: empty with no records, one entry
//! where each epoch starts, emptied with the records a truncation removes, and the same after
//! reopening the directory.

use insync_impl::core::{ReplicaApply, ReplicaRead, Write};
use insync_impl::storage::{EpochEntry, FsyncPolicy, Record, Storage, StorageOptions};

fn record(offset: u64, leader_epoch: u32) -> Record {
    Record {
        offset,
        leader_epoch,
        producer_id: 7,
        sequence: offset as u32,
        value: vec![b'v'; 3],
    }
}

fn entry(epoch: u32, start_offset: u64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

/// Appends and makes durable, as the core's writes do under `fsync = always`.
fn append(storage: &mut Storage, records: &[Record]) {
    storage
        .apply_all(&[Write::Append(records.to_vec()), Write::Flush])
        .unwrap();
}

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(dir, StorageOptions::new(FsyncPolicy::Always))
        .expect("open")
        .0
}

#[test]
fn the_epoch_cache_is_empty_exactly_when_the_log_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = open(dir.path());
    assert!(storage.epoch_cache().is_empty(), "a fresh directory");
    assert_eq!(storage.last_epoch(), 0, "no epoch with no records");

    append(&mut storage, &[record(0, 3), record(1, 3)]);
    append(&mut storage, &[record(2, 5)]);
    assert!(
        !storage.epoch_cache().is_empty(),
        "records of epochs 3 and 5"
    );
    assert_eq!(storage.epoch_cache().entries(), [entry(3, 0), entry(5, 2)]);
    assert_eq!(storage.last_epoch(), 5);
    assert_eq!(
        storage.end_offset_for_epoch(3),
        Some((3, 2)),
        "epoch 3 ends where 5 starts"
    );

    storage.apply(&Write::TruncateTo(2)).unwrap();
    assert_eq!(storage.epoch_cache().entries(), [entry(3, 0)]);
    assert!(
        !open(dir.path()).epoch_cache().is_empty(),
        "reopened: epoch 3 kept"
    );

    let mut storage = open(dir.path());
    storage.apply(&Write::TruncateTo(0)).unwrap();
    assert!(storage.epoch_cache().is_empty(), "every record truncated");
    assert!(
        open(dir.path()).epoch_cache().is_empty(),
        "and so after reopening"
    );
}
