//! [`StorageError`]: everything storage reports instead of panicking.
//!
//! The broker treats any I/O error on its log as fatal (it exits; a crash is the fault the
//! model knows), but it reports first, so the variants say which file and what went wrong.

use std::path::PathBuf;

/// A storage failure. Corruption found on disk is a value here, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused an operation on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record read from the open log does not match what was written (bit rot, or a file
    /// modified behind the broker's back). Served as an error, never as data.
    #[error("log record at offset {offset} is corrupt: {reason}")]
    CorruptRecord { offset: u64, reason: String },
    /// A checkpoint file exists but is torn, foreign, or of an unknown version.
    #[error("checkpoint {path} is unusable: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
    /// An append was refused before any byte was written; the log is unchanged and usable.
    #[error("append refused: {reason}")]
    InvalidBatch { reason: String },
    /// A read asked for an offset past the log end.
    #[error("offset {offset} is beyond the log end offset {log_end_offset}")]
    OffsetOutOfRange { offset: u64, log_end_offset: u64 },
    /// An earlier write or fsync failed, so the file's contents are unknown; the log refuses
    /// all further use (retrying an fsync after a failure can falsely report success).
    #[error("the log at {path} failed earlier and must be reopened")]
    Poisoned { path: PathBuf },
    /// `simulate_power_loss` found no synced-lengths record: the node ran without tracking.
    #[error(
        "no synced-lengths checkpoint in {dir}: the node did not run with durability tracking"
    )]
    DurabilityNotTracked { dir: PathBuf },
    /// A value could not be encoded for a checkpoint.
    #[error("cannot encode checkpoint {path}: {reason}")]
    Encode { path: PathBuf, reason: String },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Attaches a path to an `io::Result`, so every I/O error names its file.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::io(path, source))
    }
}
