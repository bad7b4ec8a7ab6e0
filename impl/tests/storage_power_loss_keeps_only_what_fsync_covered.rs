//! A simulated power loss keeps what an fsync covered and nothing else, however small the
//! unsynced records, and its report says what the dead process left and what the power loss
//! removed. The harness and `--simulate-power-loss-on-start` rely on both: the first is what
//! makes a skipped fsync lose data in the suite, the second is what they log.
//!
//! Method: a data directory written through `Storage` (durability tracked), the node "dies"
//! (the storage is dropped), sometimes leaving bytes behind by hand as an interrupted write
//! would; then `simulate_torn_power_loss` and a reopening of the directory.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

use insync_impl::core::{ReplicaApply, ReplicaRead, Write};
use insync_impl::storage::log::LOG_FILE_NAME;
use insync_impl::storage::log_format::{encode_record, RECORD_BYTES_MIN};
use insync_impl::storage::power_loss::TORN_TAIL_BYTES_MAX;
use insync_impl::storage::{
    simulate_power_loss, simulate_torn_power_loss, FsyncPolicy, Record, Storage, StorageOptions,
    TruncationReason,
};

fn options() -> StorageOptions {
    StorageOptions::new(FsyncPolicy::Lazy).tracking_durability()
}

/// Records `from..to` of `epoch` with empty values: the smallest frames the log writes.
fn empty_records(from: u64, to: u64, epoch: u32) -> Vec<Record> {
    (from..to)
        .map(|offset| Record {
            offset,
            leader_epoch: epoch,
            producer_id: 1,
            sequence: offset as u32,
            value: Vec::new(),
        })
        .collect()
}

/// A directory whose log holds `flushed` records fsynced and `unflushed` more written after
/// the last fsync, all of the smallest size; the process then dies.
fn dead_node(dir: &Path, flushed: u64, unflushed: u64) {
    let (mut storage, _) = Storage::open(dir, options()).unwrap();
    storage
        .apply(&Write::Append(empty_records(0, flushed, 1)))
        .unwrap();
    storage.apply(&Write::Flush).unwrap();
    if unflushed > 0 {
        let tail = empty_records(flushed, flushed + unflushed, 1);
        storage.apply(&Write::Append(tail)).unwrap();
    }
    assert_eq!(storage.durable_end_offset(), flushed);
}

fn reopened_records(dir: &Path) -> Vec<Record> {
    let (storage, _) = Storage::open(dir, options()).unwrap();
    storage.read(0, 64).unwrap()
}

/// Goal: the torn tail a power loss may leave never holds a whole record, not even one with
/// an empty value, so the log recovers exactly the flushed prefix. Method: two records
/// flushed, three empty ones not; the largest torn tail the layer allows is kept and then cut
/// by recovery. One byte more (a whole smallest frame) would bring an unsynced record back,
/// which is why `TORN_TAIL_BYTES_MAX` is one frame header less a byte.
#[test]
fn the_largest_torn_tail_never_brings_back_an_unsynced_record() {
    let dir = tempfile::tempdir().unwrap();
    dead_node(dir.path(), 2, 3);
    let report = simulate_torn_power_loss(dir.path(), TORN_TAIL_BYTES_MAX).unwrap();
    assert_eq!(report.torn_bytes, TORN_TAIL_BYTES_MAX);
    assert_eq!(report.log_end_offset_before, 5);
    assert_eq!(report.durable_end_offset, 2);
    assert_eq!(report.records_dropped, 3);
    assert_eq!(reopened_records(dir.path()), empty_records(0, 2, 1));

    let whole_frame = tempfile::tempdir().unwrap();
    dead_node(whole_frame.path(), 2, 3);
    let report = simulate_torn_power_loss(whole_frame.path(), RECORD_BYTES_MIN).unwrap();
    assert_eq!(
        report.durable_end_offset, 3,
        "a torn tail of one smallest frame is a whole unsynced record"
    );
}

/// Goal: the report says what the dead process left, so the log of a restart shows it.
/// Method: three records flushed, then half a frame appended by hand (an interrupted write
/// the log never counted) and a leftover checkpoint temporary; the power loss reports the
/// torn frame recovery found, the temporary it removed, and no record dropped.
#[test]
fn the_report_says_what_the_dead_process_left_and_what_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    dead_node(dir.path(), 3, 0);
    let mut frame = Vec::new();
    encode_record(&empty_records(3, 4, 1)[0], &mut frame);
    let half = frame.len() / 2;
    let path = dir.path().join(LOG_FILE_NAME);
    let position = std::fs::metadata(&path).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&frame[..half]).unwrap();
    drop(file);
    std::fs::write(dir.path().join("high-watermark.checkpoint.tmp"), b"torn").unwrap();

    let report = simulate_power_loss(dir.path()).unwrap();
    assert_eq!(report.recovery.records_kept, 3);
    assert_eq!(report.recovery.bytes_truncated, half as u64);
    assert_eq!(
        report.recovery.reason,
        Some(TruncationReason::TornRecord { position })
    );
    assert_eq!(report.temporaries_removed, 1);
    assert_eq!(report.log_end_offset_before, 3);
    assert_eq!(report.records_dropped, 0);
    assert_eq!(report.torn_bytes, 0, "no torn tail was asked for");
    assert_eq!(reopened_records(dir.path()), empty_records(0, 3, 1));
}
