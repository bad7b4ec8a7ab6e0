//! The trace log's bytes on disk, and reading them back.
//!
//! ```text
//! file    = MAGIC frame*
//! frame   = len: u32 LE | crc32c: u32 LE (of value) | value: len bytes
//! value   = wire::codec of a StoredEvent (an Event with its record lists as runs: `stored`)
//! ```
//!
//! Version 1 (`insync-tlog-v1`) encoded the `Event` itself; this reader refuses it by name.
//!
//! Frames are appended and never rewritten. A crash (SIGKILL, power loss) can leave the last
//! frame half written; the reader stops at the first frame that is incomplete, fails its CRC
//! or does not decode, drops everything from there, and reports how many bytes it dropped.
//! Nothing after a bad frame can be trusted: its length field may itself be the damage.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::event::Event;
use super::stored::StoredEvent;
use crate::wire::codec::{self, ENCODED_BYTES_MAX};

/// The first bytes of every trace log: the format and its version.
pub const MAGIC: &[u8; 16] = b"insync-tlog-v2\n\0";

/// What every version's magic starts with, to tell an older log from something else.
const MAGIC_FAMILY: &[u8] = b"insync-tlog-v";

/// Bytes before a frame's value: `len` and `crc32c`.
pub const FRAME_PREFIX_BYTES: usize = 8;

/// Why a trace log could not be read at all (a torn tail is not an error: see [`ReadLog`]).
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a trace log (bad magic bytes)")]
    NotATraceLog { path: PathBuf },
    #[error(
        "{path}: a trace log of another format version ({found:?}; this build reads {MAGIC:?})"
    )]
    OtherVersion { path: PathBuf, found: String },
    #[error("{path}: cannot encode a record: {reason}")]
    Encode { path: PathBuf, reason: String },
}

/// A trace log as read: every intact record, and what was dropped at the end.
#[derive(Debug, Default)]
pub struct ReadLog {
    pub events: Vec<Event>,
    /// Bytes after the last intact frame (a torn tail); 0 for a clean file.
    pub torn_bytes: u64,
    /// What was wrong with the first dropped frame.
    pub torn_reason: Option<String>,
    /// The length of the intact part: where the next frame should be appended.
    pub intact_bytes: u64,
}

/// Appends `event`'s frame to `target`.
pub fn encode_frame(event: &Event, target: &mut Vec<u8>) -> Result<(), codec::CodecError> {
    encode_owned_frame(event.clone(), target)
}

/// [`encode_frame`] of an event the caller gives away (the writer thread's: no copy).
pub fn encode_owned_frame(event: Event, target: &mut Vec<u8>) -> Result<(), codec::CodecError> {
    let stored = StoredEvent::from(event);
    stored
        .check()
        .map_err(|reason| codec::CodecError::Encode { reason })?;
    let value = codec::encode(&stored)?;
    let len = u32::try_from(value.len()).expect("codec output is bounded by ENCODED_BYTES_MAX");
    target.extend_from_slice(&len.to_le_bytes());
    target.extend_from_slice(&crc32c::crc32c(&value).to_le_bytes());
    target.extend_from_slice(&value);
    Ok(())
}

/// Decodes every intact frame of `bytes` (a whole file, magic included).
pub fn decode_frames(bytes: &[u8]) -> Option<ReadLog> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut log = ReadLog::default();
    let mut at = 0usize;
    // Bounded: every round consumes at least one frame prefix, or stops.
    while at < body.len() {
        match frame_at(&body[at..]) {
            Ok((event, used)) => {
                log.events.push(event);
                at += used;
            }
            Err(reason) => {
                log.torn_reason = Some(reason);
                break;
            }
        }
    }
    log.torn_bytes = (body.len() - at) as u64;
    log.intact_bytes = (MAGIC.len() + at) as u64;
    Some(log)
}

/// One frame at the start of `bytes`: the event and the bytes it took, or what is wrong.
fn frame_at(bytes: &[u8]) -> Result<(Event, usize), String> {
    if bytes.len() < FRAME_PREFIX_BYTES {
        return Err(format!("{} bytes, less than a frame prefix", bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > ENCODED_BYTES_MAX {
        return Err(format!("length field {len} exceeds the record bound"));
    }
    let Some(value) = bytes[FRAME_PREFIX_BYTES..].get(..len) else {
        return Err(format!("frame of {len} bytes cut short"));
    };
    let computed = crc32c::crc32c(value);
    if computed != stored {
        return Err(format!(
            "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    let stored: StoredEvent = codec::decode(value).map_err(|error| error.to_string())?;
    stored.check()?;
    Ok((stored.into_event(), FRAME_PREFIX_BYTES + len))
}

/// Reads the trace log at `path`.
pub fn read_log(path: &Path) -> Result<ReadLog, TraceFileError> {
    let bytes = std::fs::read(path).map_err(|source| TraceFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_frames(&bytes).ok_or_else(|| match bytes.starts_with(MAGIC_FAMILY) {
        true => TraceFileError::OtherVersion {
            path: path.to_owned(),
            found: String::from_utf8_lossy(&bytes[..MAGIC.len().min(bytes.len())]).into_owned(),
        },
        false => TraceFileError::NotATraceLog {
            path: path.to_owned(),
        },
    })
}

/// Opens `path` for appending: creates it with the magic bytes, or cuts an existing file's
/// torn tail off so that new frames follow the last intact one. Returns the file, its length
/// and the index the next record takes.
pub fn open_for_append(path: &Path) -> Result<(std::fs::File, u64, u64), TraceFileError> {
    let io = |source| TraceFileError::Io {
        path: path.to_owned(),
        source,
    };
    let (intact_bytes, next_index) = match path.exists() {
        true => {
            let log = read_log(path)?;
            let next = log.events.last().map_or(0, |event| event.index + 1);
            (log.intact_bytes, next)
        }
        false => {
            let mut file = std::fs::File::create(path).map_err(io)?;
            file.write_all(MAGIC).map_err(io)?;
            (MAGIC.len() as u64, 0)
        }
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    // Drops a torn tail; a no-op on a clean file.
    file.set_len(intact_bytes).map_err(io)?;
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(io)?;
    Ok((file, intact_bytes, next_index))
}
