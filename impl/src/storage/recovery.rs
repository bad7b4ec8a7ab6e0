//! Recovery of the log file on open: find the longest valid prefix.
//!
//! The scan reads the file from the start and stops at the first frame that is torn (the file
//! ends inside it), has a bad length, fails its CRC, breaks offset contiguity, or lowers the
//! epoch. Everything before that point is kept and indexed; everything from it on is reported,
//! and the caller truncates it. Stopping at the first defect, rather than skipping it, is what
//! a log needs: a record after a hole cannot be trusted to be at its offset.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::error::{IoContext, StorageError};
use super::log_format::{decode_body, decode_prefix, FrameDefect, RECORD_PREFIX_BYTES};

/// Read-ahead for the sequential scan.
pub const SCAN_BUFFER_BYTES: usize = 1024 * 1024;

/// Why recovery cut the log short. `position` is the byte position of the rejected frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TruncationReason {
    /// The file ends inside a frame: the last write was interrupted.
    TornRecord { position: u64 },
    /// The length field is zero, too small or larger than `RECORD_BYTES_MAX`.
    BadLength { position: u64, len: u32 },
    /// The frame's bytes do not match its CRC.
    CrcMismatch { position: u64 },
    /// The frame's offset is not the next offset.
    NonContiguousOffset {
        position: u64,
        expected: u64,
        found: u64,
    },
    /// The frame's epoch is lower than the previous record's.
    DecreasingEpoch {
        position: u64,
        previous: u32,
        found: u32,
    },
}

impl fmt::Display for TruncationReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TruncationReason::TornRecord { position } => {
                write!(formatter, "torn record at byte {position}")
            }
            TruncationReason::BadLength { position, len } => {
                write!(formatter, "bad length {len} at byte {position}")
            }
            TruncationReason::CrcMismatch { position } => {
                write!(formatter, "CRC mismatch at byte {position}")
            }
            TruncationReason::NonContiguousOffset {
                position,
                expected,
                found,
            } => write!(
                formatter,
                "offset {found} at byte {position}, expected {expected}"
            ),
            TruncationReason::DecreasingEpoch {
                position,
                previous,
                found,
            } => write!(
                formatter,
                "epoch {found} at byte {position} after epoch {previous}"
            ),
        }
    }
}

/// What recovery did to the log, for the broker to log on start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub records_kept: u64,
    pub bytes_truncated: u64,
    /// `None` when the whole file was valid.
    pub reason: Option<TruncationReason>,
}

/// The valid prefix of a log file.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Byte position of each valid record; index = offset.
    pub positions: Vec<u64>,
    /// Leader epoch of each valid record; index = offset.
    pub epochs: Vec<u32>,
    /// Byte length of the valid prefix.
    pub valid_bytes: u64,
    pub reason: Option<TruncationReason>,
}

/// Scans `file` from the start. I/O errors are returned; defects end the scan.
pub(crate) fn scan(file: &File, path: &Path) -> Result<Scan, StorageError> {
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    let mut scan = Scan::default();
    let mut body = Vec::new();
    loop {
        let position = scan.valid_bytes;
        let mut prefix = [0u8; RECORD_PREFIX_BYTES];
        let got = read_full(&mut reader, &mut prefix).at(path)?;
        if got == 0 {
            return Ok(scan);
        }
        if got < RECORD_PREFIX_BYTES {
            scan.reason = Some(TruncationReason::TornRecord { position });
            return Ok(scan);
        }
        let (frame_bytes, crc) = match decode_prefix(prefix) {
            Ok(decoded) => decoded,
            Err(defect) => {
                scan.reason = Some(defect_reason(defect, position));
                return Ok(scan);
            }
        };
        body.resize((frame_bytes - RECORD_PREFIX_BYTES as u64) as usize, 0);
        if read_full(&mut reader, &mut body).at(path)? < body.len() {
            scan.reason = Some(TruncationReason::TornRecord { position });
            return Ok(scan);
        }
        let record = match decode_body(crc, &body) {
            Ok(record) => record,
            Err(defect) => {
                scan.reason = Some(defect_reason(defect, position));
                return Ok(scan);
            }
        };
        if let Some(reason) = check_sequence(&scan, record.offset, record.leader_epoch, position) {
            scan.reason = Some(reason);
            return Ok(scan);
        }
        scan.positions.push(position);
        scan.epochs.push(record.leader_epoch);
        scan.valid_bytes = position + frame_bytes;
    }
}

fn check_sequence(scan: &Scan, offset: u64, epoch: u32, position: u64) -> Option<TruncationReason> {
    let expected = scan.positions.len() as u64;
    if offset != expected {
        return Some(TruncationReason::NonContiguousOffset {
            position,
            expected,
            found: offset,
        });
    }
    match scan.epochs.last() {
        Some(&previous) if epoch < previous => Some(TruncationReason::DecreasingEpoch {
            position,
            previous,
            found: epoch,
        }),
        _ => None,
    }
}

fn defect_reason(defect: FrameDefect, position: u64) -> TruncationReason {
    match defect {
        FrameDefect::BadLength { len } => TruncationReason::BadLength { position, len },
        FrameDefect::CrcMismatch { .. } => TruncationReason::CrcMismatch { position },
    }
}

/// Reads until `buffer` is full or the input ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
