//! Simulated power loss, below the log's own bookkeeping: a file layer that remembers what
//! each fsync covered, and a power loss that keeps exactly that (plus, if asked, a torn piece
//! of what was not).
//!
//! The model's crash keeps what was fsynced and nothing else. A real `SIGKILL` is kinder: the
//! kernel still holds every write the process made, fsynced or not, and the restarted process
//! would find them all. So a node that runs with `track_durability` (stepped mode, or
//! `--simulate-power-loss-on-start`) fsyncs its log through [`sync_data`], which performs the
//! fsync and then records the file's length at that moment in the sidecar
//! [`SYNCED_LENGTHS_FILE_NAME`]: not the offset the log believes durable, the bytes the kernel
//! was told to make durable. A log that skips an fsync therefore loses its unsynced tail in
//! the simulation exactly as on a real machine, whatever its own counters say.
//!
//! Before the dead node restarts, the harness (or the node itself, with
//! `--simulate-power-loss-on-start`) calls [`simulate_power_loss`] on its directory, which
//!
//! 1. cuts every tracked file to its synced length plus at most `torn_bytes_max` of the bytes
//!    written after it (a power loss may leave part of an unsynced write: a torn tail, which
//!    recovery must find and cut);
//! 2. deletes leftover `*.tmp` files: a checkpoint write the kill interrupted, which a power
//!    loss would leave torn or empty and which nothing reads;
//! 3. keeps the leader-epoch and high-watermark checkpoints as they are: each is only ever
//!    replaced by a write that fsyncs the new file before renaming it and fsyncs the directory
//!    after, so each one on disk had reached stable storage before the write returned (a
//!    checkpoint the node skipped writing is simply older on disk, as on a real machine);
//! 4. recovers the log as the restarted node will (torn frame cut), and records the result as
//!    synced, so a second power loss before any fsync loses nothing more.
//!
//! Limits: a truncation is not undone (the cut bytes are gone from the file even if the fsync
//! after the truncation was skipped; the log fsyncs every truncation, see `log`), and a file
//! the layer never saw fsynced is left alone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::Path;

use super::checkpoint::{read_checkpoint, remove_temporaries, write_checkpoint};
use super::epoch_cache::EpochEntry;
use super::error::{IoContext, StorageError};
use super::log::{Log, LOG_FILE_NAME};
use super::log_format::RECORD_HEADER_BYTES;
use super::options::{FsyncPolicy, StorageOptions};
use super::record::Record;
use super::recovery::{scan, RecoveryReport};
use super::Storage;
use crate::core::ReplicaRead;

/// The largest torn tail that can never hold a whole record: one frame header less a byte.
pub const TORN_TAIL_BYTES_MAX: u64 = RECORD_HEADER_BYTES - 1;

/// File name of the sidecar: bytes covered by the last fsync, per file of the directory.
pub const SYNCED_LENGTHS_FILE_NAME: &str = "synced-lengths.checkpoint";

/// Bytes the last fsync of each tracked file covered, by file name.
type SyncedLengths = BTreeMap<String, u64>;

/// What [`simulate_power_loss`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerLossReport {
    /// The log end offset after the power loss: the records an fsync had covered.
    pub durable_end_offset: u64,
    /// The log end offset the dead process left in the file (after recovery of torn bytes).
    pub log_end_offset_before: u64,
    /// Records that had not been fsynced and are now gone.
    pub records_dropped: u64,
    /// Unsynced bytes left behind as a torn tail (recovery then cut them).
    pub torn_bytes: u64,
    /// Interrupted checkpoint writes removed.
    pub temporaries_removed: u64,
    /// Recovery of the file as the dead process left it.
    pub recovery: RecoveryReport,
}

/// The file layer's fsync: makes `file`'s data durable and, with `track`, records the bytes it
/// covered in the directory's sidecar. Every fsync of a tracked data file goes through here.
pub(crate) fn sync_data(file: &File, path: &Path, track: bool) -> Result<(), StorageError> {
    file.sync_data().at(path)?;
    if track {
        let length = file.metadata().at(path)?.len();
        record_synced(path, length)?;
    }
    Ok(())
}

/// Records that the first `length` bytes of `path` are durable.
fn record_synced(path: &Path, length: u64) -> Result<(), StorageError> {
    let (dir, name) = split(path);
    let sidecar = dir.join(SYNCED_LENGTHS_FILE_NAME);
    let mut lengths: SyncedLengths = read_checkpoint(&sidecar)?.unwrap_or_default();
    lengths.insert(name, length);
    write_checkpoint(&sidecar, &lengths)
}

/// Makes the data directory of a dead node look as a power loss would leave it, with no torn
/// tail. See the module doc. The node must not be running.
pub fn simulate_power_loss(dir: &Path) -> Result<PowerLossReport, StorageError> {
    simulate_torn_power_loss(dir, 0)
}

/// As [`simulate_power_loss`], leaving up to `torn_bytes_max` unsynced bytes of each tracked
/// file behind. Below one frame header (`log_format::RECORD_HEADER_BYTES`) the torn piece is
/// never a whole record, so the outcome is still the model's: the flushed prefix.
pub fn simulate_torn_power_loss(
    dir: &Path,
    torn_bytes_max: u64,
) -> Result<PowerLossReport, StorageError> {
    let sidecar = dir.join(SYNCED_LENGTHS_FILE_NAME);
    let lengths: SyncedLengths =
        read_checkpoint(&sidecar)?.ok_or_else(|| StorageError::DurabilityNotTracked {
            dir: dir.to_owned(),
        })?;
    let temporaries_removed = remove_temporaries(dir)?;
    let log_path = dir.join(LOG_FILE_NAME);
    let before = recovery_of(&log_path)?;
    let mut torn_bytes = 0;
    for (name, synced) in &lengths {
        torn_bytes += cut(&dir.join(name), *synced, torn_bytes_max)?;
    }
    // Untracked open: the sidecar is rewritten below, once, with what recovery kept.
    let (log, _) = Log::open(dir, StorageOptions::new(FsyncPolicy::Always))?;
    let kept = log.log_end_offset();
    assert!(kept <= before.records_kept, "a power loss adds no record");
    drop(log);
    let length = std::fs::metadata(&log_path).at(&log_path)?.len();
    record_synced(&log_path, length)?;
    Ok(PowerLossReport {
        durable_end_offset: kept,
        log_end_offset_before: before.records_kept,
        records_dropped: before.records_kept - kept,
        torn_bytes,
        temporaries_removed,
        recovery: before,
    })
}

/// Cuts `path` to `synced` bytes plus at most `torn_bytes_max` more; returns the torn bytes
/// kept. A file shorter than its synced length (truncated since) is left as it is.
fn cut(path: &Path, synced: u64, torn_bytes_max: u64) -> Result<u64, StorageError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(StorageError::io(path, error)),
    };
    let length = file.metadata().at(path)?.len();
    if length <= synced {
        return Ok(0);
    }
    let torn = (length - synced).min(torn_bytes_max);
    file.set_len(synced + torn).at(path)?;
    file.sync_data().at(path)?;
    Ok(torn)
}

/// What recovery would make of the log file as it is now (read only).
fn recovery_of(path: &Path) -> Result<RecoveryReport, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(RecoveryReport {
                records_kept: 0,
                bytes_truncated: 0,
                reason: None,
            })
        }
        Err(error) => return Err(StorageError::io(path, error)),
    };
    let length = file.metadata().at(path)?.len();
    let found = scan(&file, path)?;
    Ok(RecoveryReport {
        records_kept: found.positions.len() as u64,
        bytes_truncated: length - found.valid_bytes,
        reason: found.reason,
    })
}

/// What a restarting node's recovery finds in a data directory: the log, the high watermark
/// and the leader-epoch cache as opening the storage makes them (checkpoints clamped to the
/// log, a missing or unreadable one replaced). The harness compares this with the model's
/// storage after every power loss; call it only while no node runs on `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub records: Vec<Record>,
    pub high_watermark: u64,
    pub epochs: Vec<EpochEntry>,
}

/// Opens `dir` as a restarting node would and reports what it found. See [`Recovered`].
pub fn recovered(dir: &Path) -> Result<Recovered, StorageError> {
    let (storage, _) = Storage::open(dir, StorageOptions::new(FsyncPolicy::Always))?;
    let records = storage.read_within(0, u32::MAX, u64::MAX)?;
    assert_eq!(
        records.len() as u64,
        storage.log().log_end_offset(),
        "one read, whole log"
    );
    Ok(Recovered {
        records,
        high_watermark: storage.high_watermark_checkpoint(),
        epochs: storage.epoch_cache().entries(),
    })
}

fn split(path: &Path) -> (&Path, String) {
    let dir = path.parent().expect("a data file lies in a directory");
    let name = path.file_name().expect("a data file has a name");
    (dir, name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::storage::log_format::encode_record;

    fn record(offset: u64) -> Record {
        Record {
            offset,
            leader_epoch: 1,
            producer_id: 7,
            sequence: offset as u32,
            value: vec![b'v'; 16],
        }
    }

    fn tracked(fsync: FsyncPolicy) -> StorageOptions {
        StorageOptions::new(fsync).tracking_durability()
    }

    /// Goal: the power loss trusts the fsyncs, not the log's counters. Method: a valid frame
    /// written to the log file without an fsync (as a log that skipped one would leave it) is
    /// gone after the power loss, while the fsynced records stay.
    #[test]
    fn bytes_no_fsync_covered_are_lost_whatever_the_log_believes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), tracked(FsyncPolicy::Always)).unwrap();
        log.append(&[record(0), record(1)]).unwrap();
        log.flush().unwrap();
        drop(log);
        let mut frame = Vec::new();
        encode_record(&record(2), &mut frame);
        let path = dir.path().join(LOG_FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&frame).unwrap();
        drop(file);
        assert_eq!(recovery_of(&path).unwrap().records_kept, 3);
        let report = simulate_power_loss(dir.path()).unwrap();
        assert_eq!(report.log_end_offset_before, 3);
        assert_eq!(report.durable_end_offset, 2);
        assert_eq!(report.records_dropped, 1);
    }

    /// Goal: a torn tail is cut by recovery and never becomes a record. Method: three records
    /// flushed, two more not; a power loss that keeps one frame header less one byte of the
    /// unsynced bytes; then the log holds exactly the flushed three.
    #[test]
    fn a_torn_unsynced_tail_is_cut_back_to_the_flushed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), tracked(FsyncPolicy::Lazy)).unwrap();
        log.append(&[record(0), record(1), record(2)]).unwrap();
        log.flush().unwrap();
        log.append(&[record(3), record(4)]).unwrap();
        drop(log);
        let report = simulate_torn_power_loss(dir.path(), TORN_TAIL_BYTES_MAX).unwrap();
        assert_eq!(report.torn_bytes, TORN_TAIL_BYTES_MAX);
        assert_eq!(report.durable_end_offset, 3);
        assert_eq!(report.records_dropped, 2);
        let (log, recovered) = Log::open(dir.path(), tracked(FsyncPolicy::Lazy)).unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(
            recovered.bytes_truncated, 0,
            "the power loss already recovered"
        );
        let again = simulate_power_loss(dir.path()).unwrap();
        assert_eq!(
            again.records_dropped, 0,
            "what recovery kept counts as synced"
        );
    }
}
