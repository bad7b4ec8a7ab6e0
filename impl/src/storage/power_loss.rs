//! Simulated power loss, so that a killed node loses exactly what the model says a crash loses.
//!
//! The model's crash keeps what was fsynced and nothing else. A real `SIGKILL` is kinder: the
//! kernel still holds every write the process made, fsynced or not, and the restarted process
//! would find them all. To make the model true on real processes, the node runs with
//! `track_durability`: after every fsync of its log (an `Always` append, a `flush`, a
//! truncation, the fsync on open) it records the durable end offset in the
//! `durable-end.checkpoint` file. Before the dead node restarts, the harness (or a `--stepped`
//! restart) calls [`simulate_power_loss`] on its directory, which
//!
//! 1. cuts the log back to the recorded durable end offset: exactly the records that had
//!    reached stable storage when the process died;
//! 2. keeps the leader-epoch and high-watermark checkpoints: they are only ever replaced by a
//!    write that fsyncs the new file before renaming it and fsyncs the directory after, so
//!    each one on disk had reached stable storage before the write returned;
//! 3. deletes leftover `*.tmp` files: a checkpoint write the kill interrupted, which a power
//!    loss would leave torn or empty and which nothing reads.
//!
//! Why this is faithful to a power loss: after a power failure, a file system that honours
//! fsync keeps every byte fsynced and may lose any byte not fsynced; keeping exactly the fsynced
//! prefix is the outcome the model assumes (the worst case a real disk may produce). The
//! checkpoints that might be newer than the last log fsync are kept, as they would be on a real
//! machine; the next open clamps them to the shortened log (epoch entries at or past the log
//! end dropped, high watermark capped at the log end), as recovery after a real power loss
//! must. The durable-end record is written after the fsync it describes, so it never claims
//! more than is durable; a kill between the fsync and the record makes the simulation drop a
//! tail that was durable but that the process never acted on, since it died inside that call.

use std::path::Path;

use super::checkpoint::{read_checkpoint, remove_temporaries, write_checkpoint};
use super::error::StorageError;
use super::log::Log;
use super::options::{FsyncPolicy, StorageOptions};
use super::recovery::RecoveryReport;

/// File name of the durable-end record inside the data directory.
pub const DURABLE_END_FILE_NAME: &str = "durable-end.checkpoint";

/// What [`simulate_power_loss`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerLossReport {
    /// The log end offset recorded at the last fsync, and the log end offset now.
    pub durable_end_offset: u64,
    /// The log end offset the dead process left in the file (after recovery of torn bytes).
    pub log_end_offset_before: u64,
    /// Records that had not been fsynced and are now gone.
    pub records_dropped: u64,
    /// Interrupted checkpoint writes removed.
    pub temporaries_removed: u64,
    /// Recovery of the file as the dead process left it.
    pub recovery: RecoveryReport,
}

/// Records `log_end_offset` as the log's durable end (called after each log fsync).
pub(crate) fn record_durable_end(dir: &Path, log_end_offset: u64) -> Result<(), StorageError> {
    write_checkpoint(&dir.join(DURABLE_END_FILE_NAME), &log_end_offset)
}

/// The durable end offset recorded in `dir`, if the node tracked durability.
pub fn read_durable_end(dir: &Path) -> Result<Option<u64>, StorageError> {
    read_checkpoint(&dir.join(DURABLE_END_FILE_NAME))
}

/// Makes the data directory of a dead node look as it would after a power loss. See the
/// module doc. The node must not be running.
pub fn simulate_power_loss(dir: &Path) -> Result<PowerLossReport, StorageError> {
    let durable_end_offset =
        read_durable_end(dir)?.ok_or_else(|| StorageError::DurabilityNotTracked {
            dir: dir.to_owned(),
        })?;
    let temporaries_removed = remove_temporaries(dir)?;
    // Untracked open: the recorded durable end must survive until the cut is done.
    let (mut log, recovery) = Log::open(dir, StorageOptions::new(FsyncPolicy::Always))?;
    let log_end_offset_before = log.log_end_offset();
    log.truncate_to(durable_end_offset)?;
    let kept = log.log_end_offset();
    assert!(kept <= durable_end_offset);
    record_durable_end(dir, kept)?;
    Ok(PowerLossReport {
        durable_end_offset: kept,
        log_end_offset_before,
        records_dropped: log_end_offset_before - kept,
        temporaries_removed,
        recovery,
    })
}
