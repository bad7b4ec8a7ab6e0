//! `log_format::VALUE_BYTES_MAX` is the documented largest value a record may carry, the bound
//! a producer sizes its values by. Goal: a value of exactly that size is stored, survives a
//! reopen (recovery accepts its frame) and reads back whole; one byte more is refused before
//! anything is written.

use insync_impl::core::{ReplicaApply, ReplicaRead, Write};
use insync_impl::storage::log_format::{RECORD_BYTES_MAX, RECORD_HEADER_BYTES, VALUE_BYTES_MAX};
use insync_impl::storage::{FsyncPolicy, Record, Storage, StorageError, StorageOptions};

fn record(offset: u64, value_bytes: u64) -> Record {
    Record {
        offset,
        leader_epoch: 1,
        producer_id: 9,
        sequence: offset as u32,
        value: vec![0xa5; value_bytes as usize],
    }
}

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(dir, StorageOptions::new(FsyncPolicy::Always))
        .expect("open")
        .0
}

#[test]
fn a_value_of_the_largest_size_is_stored_and_one_byte_more_is_refused() {
    assert_eq!(VALUE_BYTES_MAX + RECORD_HEADER_BYTES, RECORD_BYTES_MAX);
    let dir = tempfile::tempdir().unwrap();
    let mut storage = open(dir.path());
    let largest = record(0, VALUE_BYTES_MAX);
    storage
        .apply_all(&[Write::Append(vec![largest.clone()]), Write::Flush])
        .unwrap();

    let too_large = record(1, VALUE_BYTES_MAX + 1);
    match storage.apply(&Write::Append(vec![too_large])) {
        Err(StorageError::InvalidBatch { .. }) => {}
        other => panic!("a value one byte over the bound: {other:?}"),
    }
    assert_eq!(storage.log_end_offset(), 1, "nothing of the refused batch");

    let reopened = open(dir.path());
    assert_eq!(
        reopened.log_end_offset(),
        1,
        "recovery keeps the largest frame"
    );
    assert_eq!(reopened.read_within(0, 1, u64::MAX).unwrap(), [largest]);
}
