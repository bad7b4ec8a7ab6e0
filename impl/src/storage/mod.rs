//! Storage: one broker's crash-safe on-disk state for its replica of the partition.
//!
//! [`Storage`] opens a data directory and keeps three things consistent: the record [`Log`],
//! the leader-epoch cache ([`EpochCache`], persisted as a checkpoint) and the high-watermark
//! checkpoint. What survives a crash is exactly what the model says survives: the log up to
//! its last fsync (a `Write::Flush`, or a truncation) and the two checkpoints (always written
//! durably). See [`power_loss`] for how a killed process is made to lose the rest.
//!
//! Directory layout:
//!
//! ```text
//! <data-dir>/
//!   partition.log               the records (format: `log_format`)
//!   leader-epoch.checkpoint     epoch cache entries (format: `checkpoint`)
//!   high-watermark.checkpoint   the high watermark, a u64
//!   synced-lengths.checkpoint   bytes each file's last fsync covered (only when tracking
//!                               durability, for `simulate_power_loss`)
//!   *.tmp                       a checkpoint write in progress; deleted on open
//! ```
//!
//! Opening recovers: the log is cut at its first invalid record ([`recovery`]); the epoch
//! cache is checked against the records (the cache is derivable from them) and rebuilt from
//! them if the checkpoint is missing, corrupt or disagrees; the high watermark is capped at the
//! log end. Nothing read from disk can panic the broker: defects become reports or errors.
//!
//! Ordering: an epoch-cache checkpoint is written (durably) before the records that need it
//! are appended, and after the log is truncated, so a crash between the two leaves the cache
//! ahead of the log, and opening clamps it back. The checkpoint and the log are therefore not
//! flushed together (under `fsync = lazy` the checkpoint may name an epoch whose records were
//! never fsynced), and need not be: opening keeps the cache only where it agrees with the
//! recovered records, so what survives a crash is always the epoch cache of the durable log
//! (docs/protocol.md §2).
//!
//! The broker core reads a `Storage` through `core::ReplicaRead` and changes it only through
//! `core::ReplicaApply::apply`, one `core::Write` at a time, in the order the core issued them
//! ([`replica`]); nothing else writes it. The API is synchronous (std files, fsync).

pub mod checkpoint;
pub mod epoch_cache;
pub mod error;
pub mod log;
pub mod log_format;
pub mod options;
pub mod power_loss;
pub mod record;
pub mod recovery;
mod replica;
pub mod value_bytes;

use std::fs;
use std::path::{Path, PathBuf};

pub use checkpoint::{read_checkpoint, write_checkpoint};
pub use epoch_cache::{EpochCache, EpochEntry};
pub use error::StorageError;
pub use log::Log;
pub use options::{FsyncPolicy, StorageOptions};
pub use power_loss::{simulate_power_loss, simulate_torn_power_loss, PowerLossReport};
pub use record::Record;
pub use recovery::{RecoveryReport, TruncationReason};

use checkpoint::remove_temporaries;
use error::IoContext;

/// File name of the leader-epoch checkpoint inside the data directory.
pub const LEADER_EPOCH_FILE_NAME: &str = "leader-epoch.checkpoint";

/// File name of the high-watermark checkpoint inside the data directory.
pub const HIGH_WATERMARK_FILE_NAME: &str = "high-watermark.checkpoint";

/// What opening made of a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// Used as found.
    Loaded,
    /// Absent: derived from the log (epoch cache) or zero (high watermark).
    Missing,
    /// Readable but inconsistent with the recovered log: clamped or rebuilt, and rewritten.
    Adjusted { reason: String },
    /// Unreadable (torn, foreign, bad CRC): derived from the log or zero, and rewritten.
    Corrupt { reason: String },
}

/// What opening the data directory found and repaired, for the broker to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub log: RecoveryReport,
    pub epoch_cache: CheckpointOutcome,
    pub high_watermark: CheckpointOutcome,
    pub temporaries_removed: u64,
}

/// One broker's replica state on disk. See the module doc.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    log: Log,
    epochs: EpochCache,
    /// The HW checkpoint as on disk.
    high_watermark: u64,
}

impl Storage {
    /// Opens (creating if absent) the data directory and recovers it.
    pub fn open(
        dir: &Path,
        options: StorageOptions,
    ) -> Result<(Storage, OpenReport), StorageError> {
        fs::create_dir_all(dir).at(dir)?;
        let temporaries_removed = remove_temporaries(dir)?;
        let (log, log_report) = Log::open(dir, options)?;
        let (epochs, epoch_outcome) = load_epoch_cache(dir, &log)?;
        let (high_watermark, high_watermark_outcome) =
            load_high_watermark(dir, log.log_end_offset())?;
        let report = OpenReport {
            log: log_report,
            epoch_cache: epoch_outcome,
            high_watermark: high_watermark_outcome,
            temporaries_removed,
        };
        let storage = Storage {
            dir: dir.to_owned(),
            log,
            epochs,
            high_watermark,
        };
        storage.assert_consistent();
        Ok((storage, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record file, for its size and format-level reads.
    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn epoch_cache(&self) -> &EpochCache {
        &self.epochs
    }

    /// Reads records; see [`Log::read`]. (The core reads through `ReplicaRead::read`.)
    pub fn read_within(
        &self,
        from_offset: u64,
        records_max: u32,
        bytes_max: u64,
    ) -> Result<Vec<Record>, StorageError> {
        self.log.read(from_offset, records_max, bytes_max)
    }

    /// Appends records (as leader or follower), assigning any new epoch they start: the
    /// epoch checkpoint is written (durably) first, so it is never behind the log.
    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.log.check_batch(records)?;
        let mut epochs = self.epochs.clone();
        let mut changed = false;
        let mut previous_epoch = None;
        for record in records {
            if previous_epoch != Some(record.leader_epoch) {
                changed |= epochs.assign(record.leader_epoch, record.offset);
                previous_epoch = Some(record.leader_epoch);
            }
        }
        if changed {
            self.write_epoch_checkpoint(&epochs)?;
            self.epochs = epochs;
        }
        self.log.append(records)?;
        self.assert_consistent();
        Ok(())
    }

    /// Durably removes every record at `offset` and after, and the epochs starting there.
    fn truncate_to(&mut self, offset: u64) -> Result<(), StorageError> {
        assert!(
            offset < self.log.log_end_offset(),
            "truncation to {offset} at or past the log end {}",
            self.log.log_end_offset()
        );
        self.log.truncate_to(offset)?;
        let mut epochs = self.epochs.clone();
        if epochs.truncate_from_end(offset) {
            self.write_epoch_checkpoint(&epochs)?;
            self.epochs = epochs;
        }
        self.assert_consistent();
        Ok(())
    }

    /// Durably writes `high_watermark`, which must not exceed the log end, as the HW
    /// checkpoint. The broker asks for it when its `HwCheckpoint` timer fires, not on every HW
    /// change (docs/protocol.md §2); a write of the value on disk is skipped.
    fn checkpoint_high_watermark(&mut self, high_watermark: u64) -> Result<(), StorageError> {
        assert!(
            high_watermark <= self.log.log_end_offset(),
            "high watermark {high_watermark} past the log end {}",
            self.log.log_end_offset()
        );
        if high_watermark == self.high_watermark {
            return Ok(());
        }
        write_checkpoint(&self.dir.join(HIGH_WATERMARK_FILE_NAME), &high_watermark)?;
        self.high_watermark = high_watermark;
        Ok(())
    }

    fn write_epoch_checkpoint(&self, epochs: &EpochCache) -> Result<(), StorageError> {
        write_checkpoint(&self.dir.join(LEADER_EPOCH_FILE_NAME), &epochs.entries())
    }

    fn assert_consistent(&self) {
        let log_end_offset = self.log.log_end_offset();
        if let Some(latest) = self.epochs.latest() {
            assert!(
                latest.start_offset <= log_end_offset,
                "epoch cache past the log end"
            );
        }
        if let Some(last) = self.log.last_epoch() {
            assert!(
                self.epochs.latest_epoch() >= Some(last),
                "epoch cache behind the log"
            );
        }
    }
}

/// The epoch cache the log's records imply: one entry where each epoch first appears.
fn derive_epoch_cache(log: &Log) -> EpochCache {
    let mut cache = EpochCache::new();
    for offset in 0..log.log_end_offset() {
        if let Some(epoch) = log.epoch_at(offset) {
            cache.assign(epoch, offset);
        }
    }
    cache
}

fn load_epoch_cache(
    dir: &Path,
    log: &Log,
) -> Result<(EpochCache, CheckpointOutcome), StorageError> {
    let path = dir.join(LEADER_EPOCH_FILE_NAME);
    let derived = derive_epoch_cache(log);
    let outcome = match read_checkpoint::<Vec<EpochEntry>>(&path) {
        Err(StorageError::CorruptCheckpoint { reason, .. }) => {
            CheckpointOutcome::Corrupt { reason }
        }
        Err(error) => return Err(error),
        Ok(None) => CheckpointOutcome::Missing,
        Ok(Some(entries)) => compare_epoch_cache(&entries, &derived, log.log_end_offset()),
    };
    if outcome != CheckpointOutcome::Loaded {
        if outcome != CheckpointOutcome::Missing {
            let path = path.display();
            tracing::warn!(%path, ?outcome, "leader-epoch checkpoint rebuilt from the log");
        }
        write_checkpoint(&path, &derived.entries())?;
    }
    Ok((derived, outcome))
}

fn compare_epoch_cache(
    entries: &[EpochEntry],
    derived: &EpochCache,
    log_end_offset: u64,
) -> CheckpointOutcome {
    let mut loaded = match EpochCache::from_entries(entries) {
        Ok(loaded) => loaded,
        Err(reason) => return CheckpointOutcome::Corrupt { reason },
    };
    let clamped = loaded.truncate_from_end(log_end_offset);
    if &loaded != derived {
        return CheckpointOutcome::Adjusted {
            reason: format!("checkpoint {entries:?} disagrees with the records"),
        };
    }
    if clamped {
        return CheckpointOutcome::Adjusted {
            reason: format!("dropped entries at or past the log end {log_end_offset}"),
        };
    }
    CheckpointOutcome::Loaded
}

fn load_high_watermark(
    dir: &Path,
    log_end_offset: u64,
) -> Result<(u64, CheckpointOutcome), StorageError> {
    let path = dir.join(HIGH_WATERMARK_FILE_NAME);
    let (high_watermark, outcome) = match read_checkpoint::<u64>(&path) {
        Err(StorageError::CorruptCheckpoint { reason, .. }) => {
            (0, CheckpointOutcome::Corrupt { reason })
        }
        Err(error) => return Err(error),
        Ok(None) => (0, CheckpointOutcome::Missing),
        Ok(Some(found)) if found > log_end_offset => {
            let reason = format!("high watermark {found} capped at the log end {log_end_offset}");
            (log_end_offset, CheckpointOutcome::Adjusted { reason })
        }
        Ok(Some(found)) => (found, CheckpointOutcome::Loaded),
    };
    if outcome != CheckpointOutcome::Loaded {
        if outcome != CheckpointOutcome::Missing {
            tracing::warn!(path = %path.display(), ?outcome, "high-watermark checkpoint repaired");
        }
        write_checkpoint(&path, &high_watermark)?;
    }
    Ok((high_watermark, outcome))
}
