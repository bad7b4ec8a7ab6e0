//! Small files replaced atomically: the leader-epoch and high-watermark checkpoints, the
//! power-loss layer's synced-lengths record, and anything else a node persists whole (e.g. the
//! controller's partition state).
//!
//! Writing: encode to `<name>.tmp`, fsync it, rename it over `<name>`, fsync the directory.
//! Rename is atomic, so after a crash at any point `<name>` holds either the old or the new
//! content, never a mix; the directory fsync makes the rename itself durable. A leftover
//! `.tmp` is garbage from an interrupted write and is deleted on open.
//!
//! Format (little-endian):
//!
//! ```text
//! byte  0  magic     "INSC"
//! byte  4  version   u16  CHECKPOINT_VERSION
//! byte  6  reserved  u16  zero
//! byte  8  len       u32  payload length
//! byte 12  crc32c    u32  CRC-32C of bytes 0..12 followed by the payload
//! byte 16  payload   len bytes: the value, encoded by `wire::codec`
//! ```
//!
//! The magic detects a foreign file, the version a file from an incompatible build, the length
//! and CRC a torn or corrupted one. Any of these is a [`StorageError::CorruptCheckpoint`], never
//! a panic, and the caller decides: rebuild (epoch cache), fall back (HW), or refuse to start.
//!
//! Why the wire codec for the payload rather than JSON: one serialization format in the whole
//! implementation, behind one module, with a byte limit on decoding; human readability of
//! these files matters less than the CRC framing, and the inspect interface shows their
//! contents to operators anyway.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{IoContext, StorageError};
use crate::wire::codec;

/// Identifies an insync checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"INSC";

/// The format version written, and the only one read.
pub const CHECKPOINT_VERSION: u16 = 1;

/// Bytes before the payload.
pub const CHECKPOINT_HEADER_BYTES: usize = 16;

/// The largest checkpoint file, header included. Checkpoints hold a few numbers or a small map;
/// anything bigger is corrupt or foreign and is refused before it is read into memory.
pub const CHECKPOINT_BYTES_MAX: u64 = 1024 * 1024;

/// Suffix of the temporary file a checkpoint is written to before the rename.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// Durably and atomically replaces the checkpoint at `path` with `value`.
pub fn write_checkpoint<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StorageError> {
    let bytes = encode_checkpoint(value).map_err(|reason| StorageError::Encode {
        path: path.to_owned(),
        reason,
    })?;
    let temporary = temporary_path(path);
    let mut file = File::create(&temporary).at(&temporary)?;
    file.write_all(&bytes).at(&temporary)?;
    file.sync_all().at(&temporary)?;
    drop(file);
    fs::rename(&temporary, path).at(path)?;
    sync_directory(parent_of(path))
}

/// Reads the checkpoint at `path`: `Ok(None)` if there is none, an error if it is unusable.
pub fn read_checkpoint<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StorageError::io(path, error)),
    };
    let mut bytes = Vec::new();
    file.take(CHECKPOINT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .at(path)?;
    let value = decode_checkpoint(&bytes).map_err(|reason| StorageError::CorruptCheckpoint {
        path: path.to_owned(),
        reason,
    })?;
    Ok(Some(value))
}

/// A checkpoint file's bytes (header, CRC, payload) for `value`.
pub fn encode_checkpoint<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let payload = codec::encode(value).map_err(|error| error.to_string())?;
    frame_checkpoint(&payload)
        .ok_or_else(|| format!("{} bytes exceed the checkpoint bound", payload.len()))
}

/// The value in a checkpoint file's bytes, or why they are unusable. Never panics, whatever
/// the bytes (the `checkpoint` fuzz target).
pub fn decode_checkpoint<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let payload = unframe_checkpoint(bytes)?;
    codec::decode(payload).map_err(|error| error.to_string())
}

/// Deletes leftover temporary files in `dir` (from writes a crash interrupted). Returns how
/// many were removed.
pub fn remove_temporaries(dir: &Path) -> Result<u64, StorageError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let is_temporary = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with(TEMPORARY_SUFFIX));
        if is_temporary && path.is_file() {
            fs::remove_file(&path).at(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_directory(dir)?;
    }
    Ok(removed)
}

/// Fsyncs a directory, making creations, renames and deletions in it durable.
pub fn sync_directory(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|handle| handle.sync_all()).at(dir)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMPORARY_SUFFIX);
    PathBuf::from(name)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Header and CRC around `payload`; `None` above the size bound.
pub fn frame_checkpoint(payload: &[u8]) -> Option<Vec<u8>> {
    let total = (CHECKPOINT_HEADER_BYTES + payload.len()) as u64;
    if total > CHECKPOINT_BYTES_MAX {
        return None;
    }
    let len = u32::try_from(payload.len()).ok()?;
    let mut bytes = Vec::with_capacity(CHECKPOINT_HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&CHECKPOINT_MAGIC);
    bytes.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..12]), payload);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(payload);
    Some(bytes)
}

fn unframe_checkpoint(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() as u64 > CHECKPOINT_BYTES_MAX {
        return Err(format!("larger than {CHECKPOINT_BYTES_MAX} bytes"));
    }
    if bytes.len() < CHECKPOINT_HEADER_BYTES {
        return Err(format!(
            "only {} bytes, shorter than the header",
            bytes.len()
        ));
    }
    if bytes[..4] != CHECKPOINT_MAGIC {
        return Err("not an insync checkpoint (bad magic)".to_owned());
    }
    let field = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != CHECKPOINT_VERSION {
        return Err(format!("version {version}, expected {CHECKPOINT_VERSION}"));
    }
    let len = u32::from_le_bytes(field(8)) as usize;
    let payload = &bytes[CHECKPOINT_HEADER_BYTES..];
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, header says {len} (torn write?)",
            payload.len()
        ));
    }
    let stored = u32::from_le_bytes(field(12));
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[..12]), payload);
    if stored != computed {
        return Err(format!(
            "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value.checkpoint");
        assert_eq!(read_checkpoint::<u64>(&path).unwrap(), None);
        write_checkpoint(&path, &17u64).unwrap();
        write_checkpoint(&path, &18u64).unwrap();
        assert_eq!(read_checkpoint::<u64>(&path).unwrap(), Some(18));
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn every_truncation_and_every_byte_flip_is_detected() {
        let bytes = frame_checkpoint(&codec::encode(&(1u32, 99u64)).unwrap()).unwrap();
        for cut in 0..bytes.len() {
            assert!(unframe_checkpoint(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= 0x40;
            assert!(unframe_checkpoint(&corrupt).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.checkpoint.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("keep"), b"data").unwrap();
        assert_eq!(remove_temporaries(dir.path()).unwrap(), 1);
        assert!(dir.path().join("keep").exists());
    }
}
