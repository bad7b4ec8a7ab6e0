//! [`Log`]: one partition's append-only record log, in a single file.
//!
//! The file is a sequence of frames in the format of [`log_format`](super::log_format); the
//! first record has offset 0 and each next record the next offset. Memory holds only an
//! index (byte position and epoch per offset, 12 bytes a record); every read goes to the file
//! and re-checks each frame's CRC, offset and epoch against the index, so a record damaged
//! after open is reported as [`StorageError::CorruptRecord`], never served.
//!
//! Durability: the log tracks its *durable end offset*, the log end offset as of the last
//! fsync. An append only writes; [`flush`](Log::flush) fsyncs, when the broker core asks for it
//! (`Write::Flush`: after every append under [`FsyncPolicy::Always`], when the `Flush` timer
//! fires under [`FsyncPolicy::Lazy`]). Truncation always fsyncs, because a truncation that
//! could be undone by a crash would resurrect records the protocol removed (and an append after
//! it could land in bytes the last fsync covered). Opening fsyncs once, so everything recovered
//! counts as durable.
//!
//! Failure: after a failed write or fsync the file's state is unknown (and, on Linux, a retried
//! fsync may succeed without the data reaching disk), so the log poisons itself and refuses
//! further use. The broker exits and recovers from disk on restart.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::checkpoint::sync_directory;
use super::error::{IoContext, StorageError};
use super::log_format::{decode_frame, encode_record, frame_bytes, RECORD_BYTES_MAX};
use super::options::{FsyncPolicy, StorageOptions};
use super::power_loss;
use super::record::Record;
use super::recovery::{scan, RecoveryReport};

/// File name of the log inside the data directory.
pub const LOG_FILE_NAME: &str = "partition.log";

/// The largest batch one append writes, in bytes.
pub const APPEND_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The most bytes one read returns, whatever the caller's budget (one oversized record aside).
pub const READ_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The log. See the module doc.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    options: StorageOptions,
    /// Byte position of each record; index = offset; length = log end offset.
    positions: Vec<u64>,
    /// Leader epoch of each record; index = offset.
    epochs: Vec<u32>,
    /// File length: where the next append goes.
    end_position: u64,
    durable_end_offset: u64,
    poisoned: bool,
}

impl Log {
    /// Opens (creating if absent) the log in `dir`, recovering its longest valid prefix.
    pub fn open(
        dir: &Path,
        options: StorageOptions,
    ) -> Result<(Log, RecoveryReport), StorageError> {
        let path = dir.join(LOG_FILE_NAME);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        if !existed {
            sync_directory(dir)?;
        }
        let file_bytes = file.metadata().at(&path)?.len();
        let found = scan(&file, &path)?;
        assert!(found.valid_bytes <= file_bytes);
        if found.valid_bytes < file_bytes {
            file.set_len(found.valid_bytes).at(&path)?;
        }
        power_loss::sync_data(&file, &path, options.track_durability)?;
        let report = RecoveryReport {
            records_kept: found.positions.len() as u64,
            bytes_truncated: file_bytes - found.valid_bytes,
            reason: found.reason,
        };
        let log_end_offset = found.positions.len() as u64;
        let log = Log {
            path,
            file,
            options,
            positions: found.positions,
            epochs: found.epochs,
            end_position: found.valid_bytes,
            durable_end_offset: log_end_offset,
            poisoned: false,
        };
        Ok((log, report))
    }

    /// The next offset to be appended.
    pub fn log_end_offset(&self) -> u64 {
        self.positions.len() as u64
    }

    /// The log end offset as of the last fsync: what a power loss now would keep.
    pub fn durable_end_offset(&self) -> u64 {
        self.durable_end_offset
    }

    /// The epoch of the last record, if any.
    pub fn last_epoch(&self) -> Option<u32> {
        self.epochs.last().copied()
    }

    /// The epoch of the record at `offset`, if it is in the log.
    pub fn epoch_at(&self, offset: u64) -> Option<u32> {
        let index = usize::try_from(offset).ok()?;
        self.epochs.get(index).copied()
    }

    /// The file's size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.end_position
    }

    /// The policy the broker core follows for this log (the log itself fsyncs only when told).
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.options.fsync
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `records` may be appended now: offsets contiguous from the log end, epochs
    /// not decreasing, each record and the batch within their size bounds. Callers holding
    /// records from the network check with this before acting on them.
    pub fn check_batch(&self, records: &[Record]) -> Result<(), StorageError> {
        let invalid = |reason: String| Err(StorageError::InvalidBatch { reason });
        let mut previous_epoch = self.last_epoch();
        let mut batch_bytes = 0u64;
        for (expected_offset, record) in (self.log_end_offset()..).zip(records) {
            if record.offset != expected_offset {
                return invalid(format!(
                    "offset {} where {expected_offset} was expected",
                    record.offset
                ));
            }
            if previous_epoch.is_some_and(|previous| record.leader_epoch < previous) {
                return invalid(format!(
                    "epoch {} at offset {} is lower than the previous epoch {previous_epoch:?}",
                    record.leader_epoch, record.offset
                ));
            }
            let bytes = frame_bytes(record);
            if bytes > RECORD_BYTES_MAX {
                return invalid(format!(
                    "record at offset {} is {bytes} bytes, more than {RECORD_BYTES_MAX}",
                    record.offset
                ));
            }
            batch_bytes += bytes;
            previous_epoch = Some(record.leader_epoch);
        }
        if batch_bytes > APPEND_BYTES_MAX {
            return invalid(format!(
                "batch of {batch_bytes} bytes exceeds {APPEND_BYTES_MAX}"
            ));
        }
        Ok(())
    }

    /// Appends `records` with one write, no fsync. An invalid batch is refused before any byte
    /// is written.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.check_usable()?;
        self.check_batch(records)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::new();
        let mut positions = Vec::with_capacity(records.len());
        for record in records {
            positions.push(self.end_position + buffer.len() as u64);
            encode_record(record, &mut buffer);
        }
        let written = self.file.write_all_at(&buffer, self.end_position);
        self.poison_on_error(written)?;
        self.end_position += buffer.len() as u64;
        self.positions.extend(positions);
        self.epochs
            .extend(records.iter().map(|record| record.leader_epoch));
        Ok(())
    }

    /// Fsyncs now, making everything appended durable.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.durable_end_offset == self.log_end_offset() {
            return Ok(());
        }
        self.sync()
    }

    /// Removes every record at `offset` and after, durably. A no-op when `offset` is at or
    /// past the log end (as in Kafka: a follower truncates to `min(diverging end, LEO)`).
    pub fn truncate_to(&mut self, offset: u64) -> Result<(), StorageError> {
        self.check_usable()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let kept = offset as usize;
        let new_end = self.positions[kept];
        let truncated = self.file.set_len(new_end);
        self.poison_on_error(truncated)?;
        self.positions.truncate(kept);
        self.epochs.truncate(kept);
        self.end_position = new_end;
        self.sync()?;
        assert_eq!(self.durable_end_offset, offset);
        Ok(())
    }

    /// Reads records from `from_offset` on: at most `records_max` records and `bytes_max`
    /// bytes of frames (capped at [`READ_BYTES_MAX`]), but always at least one record when
    /// `from_offset` is below the log end (so a consumer makes progress past a record larger
    /// than its byte budget).
    pub fn read(
        &self,
        from_offset: u64,
        records_max: u32,
        bytes_max: u64,
    ) -> Result<Vec<Record>, StorageError> {
        assert!(records_max > 0, "a read must allow at least one record");
        self.check_usable()?;
        let log_end_offset = self.log_end_offset();
        if from_offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: from_offset,
                log_end_offset,
            });
        }
        let until = self.read_end(from_offset, records_max, bytes_max);
        if until == from_offset {
            return Ok(Vec::new());
        }
        let start = self.position_of(from_offset);
        let mut buffer = vec![0u8; (self.position_of(until) - start) as usize];
        self.file.read_exact_at(&mut buffer, start).at(&self.path)?;
        let mut records = Vec::with_capacity((until - from_offset) as usize);
        for offset in from_offset..until {
            let begin = (self.position_of(offset) - start) as usize;
            let end = (self.position_of(offset + 1) - start) as usize;
            records.push(self.verify(offset, &buffer[begin..end])?);
        }
        Ok(records)
    }

    /// The offset one past the last record a read from `from_offset` returns.
    fn read_end(&self, from_offset: u64, records_max: u32, bytes_max: u64) -> u64 {
        let log_end_offset = self.log_end_offset();
        let bytes_max = bytes_max.min(READ_BYTES_MAX);
        let mut until = from_offset;
        let mut bytes = 0u64;
        while until < log_end_offset && until - from_offset < u64::from(records_max) {
            let frame = self.position_of(until + 1) - self.position_of(until);
            if until > from_offset && bytes + frame > bytes_max {
                break;
            }
            bytes += frame;
            until += 1;
        }
        until
    }

    /// Decodes the frame read for `offset` and checks it against the index.
    fn verify(&self, offset: u64, frame: &[u8]) -> Result<Record, StorageError> {
        let corrupt = |reason: String| StorageError::CorruptRecord { offset, reason };
        let record = decode_frame(frame).map_err(|defect| corrupt(defect.to_string()))?;
        if record.offset != offset {
            return Err(corrupt(format!("frame carries offset {}", record.offset)));
        }
        if Some(record.leader_epoch) != self.epoch_at(offset) {
            return Err(corrupt(format!(
                "frame carries epoch {}",
                record.leader_epoch
            )));
        }
        Ok(record)
    }

    /// Byte position of `offset`; the log end offset maps to the end of the file.
    fn position_of(&self, offset: u64) -> u64 {
        match self.positions.get(offset as usize) {
            Some(&position) => position,
            None => {
                assert_eq!(offset, self.log_end_offset(), "offset past the log end");
                self.end_position
            }
        }
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let synced = power_loss::sync_data(&self.file, &self.path, self.options.track_durability);
        if synced.is_err() {
            self.poisoned = true;
        }
        synced?;
        self.durable_end_offset = self.log_end_offset();
        Ok(())
    }

    fn poison_on_error<T>(&mut self, result: std::io::Result<T>) -> Result<T, StorageError> {
        if result.is_err() {
            self.poisoned = true;
        }
        result.at(&self.path)
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}
