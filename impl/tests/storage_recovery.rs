//! Storage recovery: what survives reopening, torn writes, corruption and simulated power loss.
//!
//! Each test builds a data directory in a temp dir through the public API, damages the files
//! the way a crash or a bad disk would (chopping bytes, flipping bytes, writing garbage), and
//! checks what `Storage::open` or `Log::read` make of it.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use insync_impl::core::{ReplicaApply, ReplicaRead, Write};
use insync_impl::storage::log::LOG_FILE_NAME;
use insync_impl::storage::log_format::{encode_record, RECORD_HEADER_BYTES};
use insync_impl::storage::power_loss::SYNCED_LENGTHS_FILE_NAME;
use insync_impl::storage::{
    simulate_power_loss, CheckpointOutcome, FsyncPolicy, Log, Record, Storage, StorageError,
    StorageOptions, TruncationReason, HIGH_WATERMARK_FILE_NAME, LEADER_EPOCH_FILE_NAME,
};

fn record(offset: u64, leader_epoch: u32) -> Record {
    Record {
        offset,
        leader_epoch,
        producer_id: 1000 + offset,
        sequence: offset as u32,
        value: format!("value-{offset}").into_bytes(),
    }
}

/// Records `from..to`, all in `epoch`.
fn records(from: u64, to: u64, epoch: u32) -> Vec<Record> {
    (from..to).map(|offset| record(offset, epoch)).collect()
}

fn lazy() -> StorageOptions {
    StorageOptions::new(FsyncPolicy::Lazy)
}

fn always() -> StorageOptions {
    StorageOptions::new(FsyncPolicy::Always)
}

fn read_all(storage: &Storage) -> Vec<Record> {
    storage.read_within(0, u32::MAX, u64::MAX).unwrap()
}

/// Appends as the broker core asks for it: the records, then under `fsync = always` a flush.
fn append(storage: &mut Storage, records: &[Record]) {
    storage.apply(&Write::Append(records.to_vec())).unwrap();
    if storage.fsync() == FsyncPolicy::Always {
        storage.apply(&Write::Flush).unwrap();
    }
}

/// Byte position of record `offset` when every record before it is `record(o, _)`.
fn position_of(offset: u64) -> u64 {
    (0..offset)
        .map(|o| RECORD_HEADER_BYTES + record(o, 0).value.len() as u64)
        .sum()
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], position).unwrap();
}

fn chop(path: &Path, bytes: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - bytes).unwrap();
}

#[test]
fn append_and_read_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = records(0, 3, 1);
    expected.extend(records(3, 7, 2));
    {
        let (mut storage, report) = Storage::open(dir.path(), always()).unwrap();
        assert_eq!(report.log.records_kept, 0);
        append(&mut storage, &expected[..3]);
        append(&mut storage, &expected[3..]);
        assert_eq!(read_all(&storage), expected);
    }
    let (storage, report) = Storage::open(dir.path(), always()).unwrap();
    assert_eq!(report.log.records_kept, 7);
    assert_eq!(report.log.reason, None);
    assert_eq!(report.epoch_cache, CheckpointOutcome::Loaded);
    assert_eq!(read_all(&storage), expected);
    assert_eq!(storage.read_within(5, 1, u64::MAX).unwrap(), expected[5..6]);
    assert_eq!(storage.read_within(7, 10, u64::MAX).unwrap(), vec![]);
    assert!(matches!(
        storage.read_within(8, 10, u64::MAX),
        Err(StorageError::OffsetOutOfRange {
            offset: 8,
            log_end_offset: 7
        })
    ));
    assert_eq!(storage.log().epoch_at(4), Some(2));
    assert_eq!(storage.log().last_epoch(), Some(2));
}

#[test]
fn read_respects_byte_budget_but_always_returns_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut storage, _) = Storage::open(dir.path(), lazy()).unwrap();
    append(&mut storage, &records(0, 10, 1));
    let one_frame = RECORD_HEADER_BYTES + 7;
    assert_eq!(
        storage.read_within(0, 100, 1).unwrap().len(),
        1,
        "progress past a small budget"
    );
    assert_eq!(storage.read_within(0, 100, 3 * one_frame).unwrap().len(), 3);
    assert_eq!(
        storage.read_within(2, 4, u64::MAX).unwrap(),
        records(2, 6, 1)
    );
}

#[test]
fn truncate_then_append_replaces_the_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut storage, _) = Storage::open(dir.path(), lazy()).unwrap();
    append(&mut storage, &records(0, 4, 1));
    append(&mut storage, &records(4, 8, 2));
    storage.apply(&Write::TruncateTo(5)).unwrap();
    assert_eq!(storage.log_end_offset(), 5);
    assert_eq!(storage.durable_end_offset(), 5, "truncation is durable");
    append(&mut storage, &records(5, 7, 3));
    let mut expected = records(0, 4, 1);
    expected.extend(records(4, 5, 2));
    expected.extend(records(5, 7, 3));
    assert_eq!(read_all(&storage), expected);
    assert_eq!(storage.end_offset_for_epoch(2), Some((2, 5)));
    drop(storage);
    let (storage, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert_eq!(read_all(&storage), expected);
    assert_eq!(report.epoch_cache, CheckpointOutcome::Loaded);
}

#[test]
fn invalid_batches_are_refused_and_leave_the_log_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut storage, _) = Storage::open(dir.path(), lazy()).unwrap();
    append(&mut storage, &records(0, 2, 3));
    let gap = records(3, 4, 3);
    let older_epoch = records(2, 3, 2);
    let mut too_big = record(2, 3);
    too_big.value = vec![0; 2 * 1024 * 1024];
    for batch in [gap, older_epoch, vec![too_big]] {
        let result = storage.apply(&Write::Append(batch.clone()));
        assert!(
            matches!(result, Err(StorageError::InvalidBatch { .. })),
            "{result:?}"
        );
    }
    append(&mut storage, &records(2, 3, 3));
    assert_eq!(storage.log_end_offset(), 3);
}

#[test]
fn torn_last_record_keeps_exactly_the_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = Storage::open(dir.path(), always()).unwrap();
        append(&mut storage, &records(0, 5, 1));
    }
    chop(&dir.path().join(LOG_FILE_NAME), 3);
    let (storage, report) = Storage::open(dir.path(), always()).unwrap();
    assert_eq!(report.log.records_kept, 4);
    let last_frame = RECORD_HEADER_BYTES + 7;
    assert_eq!(report.log.bytes_truncated, last_frame - 3);
    assert_eq!(
        report.log.reason,
        Some(TruncationReason::TornRecord {
            position: position_of(4)
        })
    );
    assert_eq!(read_all(&storage), records(0, 4, 1));
}

#[test]
fn torn_length_prefix_is_a_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = Storage::open(dir.path(), always()).unwrap();
        append(&mut storage, &records(0, 2, 1));
    }
    let path = dir.path().join(LOG_FILE_NAME);
    let file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all_at(&[9, 0], position_of(2)).unwrap();
    let (_, report) = Storage::open(dir.path(), always()).unwrap();
    assert_eq!(report.log.records_kept, 2);
    assert_eq!(report.log.bytes_truncated, 2);
    assert!(matches!(
        report.log.reason,
        Some(TruncationReason::TornRecord { .. })
    ));
}

#[test]
fn flipped_byte_in_middle_record_truncates_there_with_crc_reason() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = Storage::open(dir.path(), always()).unwrap();
        append(&mut storage, &records(0, 5, 1));
    }
    let path = dir.path().join(LOG_FILE_NAME);
    flip_byte(&path, position_of(2) + RECORD_HEADER_BYTES + 1); // Inside record 2's value.
    let (storage, report) = Storage::open(dir.path(), always()).unwrap();
    assert_eq!(report.log.records_kept, 2);
    assert_eq!(
        report.log.reason,
        Some(TruncationReason::CrcMismatch {
            position: position_of(2)
        })
    );
    assert_eq!(report.log.bytes_truncated, position_of(5) - position_of(2));
    assert_eq!(read_all(&storage), records(0, 2, 1));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), position_of(2));
}

#[test]
fn zero_length_field_is_a_bad_length() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = Storage::open(dir.path(), always()).unwrap();
        append(&mut storage, &records(0, 2, 1));
    }
    let path = dir.path().join(LOG_FILE_NAME);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0u8; 40], position_of(2)).unwrap();
    let (_, report) = Storage::open(dir.path(), always()).unwrap();
    assert_eq!(report.log.records_kept, 2);
    assert_eq!(
        report.log.reason,
        Some(TruncationReason::BadLength {
            position: position_of(2),
            len: 0
        })
    );
}

/// Writes raw valid frames (correct CRCs) straight to the log file.
fn write_raw_frames(dir: &Path, frames: &[Record]) {
    let mut bytes = Vec::new();
    for record in frames {
        encode_record(record, &mut bytes);
    }
    std::fs::write(dir.join(LOG_FILE_NAME), bytes).unwrap();
}

#[test]
fn non_contiguous_offset_and_decreasing_epoch_end_the_log() {
    let dir = tempfile::tempdir().unwrap();
    write_raw_frames(dir.path(), &[record(0, 1), record(1, 1), record(3, 1)]);
    let (storage, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert_eq!(storage.log_end_offset(), 2);
    assert!(matches!(
        report.log.reason,
        Some(TruncationReason::NonContiguousOffset {
            expected: 2,
            found: 3,
            ..
        })
    ));
    drop(storage);

    let dir = tempfile::tempdir().unwrap();
    write_raw_frames(dir.path(), &[record(0, 2), record(1, 3), record(2, 1)]);
    let (storage, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert_eq!(storage.log_end_offset(), 2);
    assert!(matches!(
        report.log.reason,
        Some(TruncationReason::DecreasingEpoch {
            previous: 3,
            found: 1,
            ..
        })
    ));
    assert_eq!(report.epoch_cache, CheckpointOutcome::Missing);
    assert_eq!(storage.end_offset_for_epoch(2), Some((2, 1)));
}

#[test]
fn read_never_serves_a_record_corrupted_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), always()).unwrap();
    log.append(&records(0, 4, 1)).unwrap();
    flip_byte(&dir.path().join(LOG_FILE_NAME), position_of(2) + 9); // Record 2's offset field.
    assert_eq!(log.read(0, 2, u64::MAX).unwrap(), records(0, 2, 1));
    let result = log.read(1, 10, u64::MAX);
    assert!(
        matches!(result, Err(StorageError::CorruptRecord { offset: 2, .. })),
        "{result:?}"
    );
    assert!(
        log.read(3, 1, u64::MAX).is_ok(),
        "records after the damage are intact"
    );
}

#[test]
fn epoch_cache_is_checkpointed_and_rebuilt_when_missing_or_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = records(0, 2, 1);
    expected.extend(records(2, 5, 3));
    expected.extend(records(5, 6, 6));
    {
        let (mut storage, _) = Storage::open(dir.path(), lazy()).unwrap();
        append(&mut storage, &expected);
        assert_eq!(storage.end_offset_for_epoch(1), Some((1, 2)));
        assert_eq!(storage.end_offset_for_epoch(2), Some((1, 2)));
        assert_eq!(storage.end_offset_for_epoch(3), Some((3, 5)));
        assert_eq!(storage.end_offset_for_epoch(6), Some((6, 6)));
        assert_eq!(storage.end_offset_for_epoch(9), Some((6, 6)));
        assert_eq!(storage.end_offset_for_epoch(0), None);
    }
    let checkpoint = dir.path().join(LEADER_EPOCH_FILE_NAME);
    std::fs::remove_file(&checkpoint).unwrap();
    let (storage, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert_eq!(report.epoch_cache, CheckpointOutcome::Missing);
    assert_eq!(storage.end_offset_for_epoch(3), Some((3, 5)));
    drop(storage);

    std::fs::write(&checkpoint, b"not a checkpoint at all").unwrap();
    let (storage, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert!(matches!(
        report.epoch_cache,
        CheckpointOutcome::Corrupt { .. }
    ));
    assert_eq!(storage.end_offset_for_epoch(3), Some((3, 5)));
    drop(storage);
    let (_, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert_eq!(
        report.epoch_cache,
        CheckpointOutcome::Loaded,
        "rewritten after rebuild"
    );
}

#[test]
fn torn_checkpoints_are_detected_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = Storage::open(dir.path(), lazy()).unwrap();
        append(&mut storage, &records(0, 6, 2));
        storage.apply(&Write::CheckpointHighWatermark(4)).unwrap();
    }
    for name in [HIGH_WATERMARK_FILE_NAME, LEADER_EPOCH_FILE_NAME] {
        chop(&dir.path().join(name), 1);
    }
    let (storage, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert!(matches!(
        report.high_watermark,
        CheckpointOutcome::Corrupt { .. }
    ));
    assert!(matches!(
        report.epoch_cache,
        CheckpointOutcome::Corrupt { .. }
    ));
    assert_eq!(
        storage.high_watermark_checkpoint(),
        0,
        "an unreadable HW falls back to zero"
    );
    assert_eq!(storage.end_offset_for_epoch(2), Some((2, 6)));
}

#[test]
fn leftover_temporary_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Storage::open(dir.path(), lazy()).unwrap());
    let temporary = dir.path().join(format!("{HIGH_WATERMARK_FILE_NAME}.tmp"));
    std::fs::write(&temporary, b"half a write").unwrap();
    let (_, report) = Storage::open(dir.path(), lazy()).unwrap();
    assert_eq!(report.temporaries_removed, 1);
    assert!(!temporary.exists());
}

#[test]
fn power_loss_with_lazy_fsync_drops_exactly_the_unflushed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let options = lazy().tracking_durability();
    {
        let (mut storage, _) = Storage::open(dir.path(), options).unwrap();
        append(&mut storage, &records(0, 3, 1));
        storage.apply(&Write::Flush).unwrap();
        append(&mut storage, &records(3, 5, 2));
        storage.apply(&Write::CheckpointHighWatermark(5)).unwrap();
        assert_eq!(storage.durable_end_offset(), 3);
    } // The process dies: the kernel still has offsets 3 and 4.
    let report = simulate_power_loss(dir.path()).unwrap();
    assert_eq!(report.log_end_offset_before, 5);
    assert_eq!(report.durable_end_offset, 3);
    assert_eq!(report.records_dropped, 2);
    let (storage, opened) = Storage::open(dir.path(), options).unwrap();
    assert_eq!(read_all(&storage), records(0, 3, 1));
    // The checkpoints were durable and are kept, then clamped to the shorter log.
    assert!(matches!(
        opened.high_watermark,
        CheckpointOutcome::Adjusted { .. }
    ));
    assert_eq!(storage.high_watermark_checkpoint(), 3);
    assert!(matches!(
        opened.epoch_cache,
        CheckpointOutcome::Adjusted { .. }
    ));
    assert_eq!(storage.epoch_cache().latest_epoch(), Some(1));
    assert_eq!(storage.end_offset_for_epoch(2), Some((1, 3)));
}

#[test]
fn power_loss_with_always_fsync_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = always().tracking_durability();
    {
        let (mut storage, _) = Storage::open(dir.path(), options).unwrap();
        append(&mut storage, &records(0, 3, 1));
        append(&mut storage, &records(3, 5, 2));
    }
    let report = simulate_power_loss(dir.path()).unwrap();
    assert_eq!(report.records_dropped, 0);
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    assert_eq!(storage.log_end_offset(), 5);
}

#[test]
fn power_loss_after_truncation_does_not_resurrect_or_keep_replaced_records() {
    // Truncate (durable) then append lazily: the durable end is the truncation point, so the
    // replacement records, never fsynced, must go.
    let dir = tempfile::tempdir().unwrap();
    let options = lazy().tracking_durability();
    {
        let (mut storage, _) = Storage::open(dir.path(), options).unwrap();
        append(&mut storage, &records(0, 6, 1));
        storage.apply(&Write::Flush).unwrap();
        storage.apply(&Write::TruncateTo(2)).unwrap();
        append(&mut storage, &records(2, 5, 2));
    }
    let report = simulate_power_loss(dir.path()).unwrap();
    assert_eq!(report.durable_end_offset, 2);
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    assert_eq!(read_all(&storage), records(0, 2, 1));
}

#[test]
fn power_loss_needs_durability_tracking() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut storage, _) = Storage::open(dir.path(), lazy()).unwrap();
        append(&mut storage, &records(0, 2, 1));
    }
    assert!(!dir.path().join(SYNCED_LENGTHS_FILE_NAME).exists());
    let result = simulate_power_loss(dir.path());
    assert!(
        matches!(result, Err(StorageError::DurabilityNotTracked { .. })),
        "{result:?}"
    );
}
