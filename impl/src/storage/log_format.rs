//! The on-disk encoding of one log record, and its checks.
//!
//! Each record is one frame, little-endian, with no padding:
//!
//! ```text
//! byte  0  len           u32  number of bytes after this field: 28 + value length
//! byte  4  crc32c        u32  CRC-32C (Castagnoli) of bytes 8 .. 4 + len
//! byte  8  offset        u64
//! byte 16  leader_epoch  u32
//! byte 20  producer_id   u64
//! byte 28  sequence      u32
//! byte 32  value         len - 28 bytes
//! ```
//!
//! The length comes first so a reader can skip or bound a frame before reading it; the CRC
//! covers every field after itself, so a torn write, a flipped bit or a stale block is caught,
//! and a record is never interpreted from bytes it was not written with. The length itself is
//! checked against [`RECORD_BYTES_MIN`] and [`RECORD_BYTES_MAX`] before it is trusted.

use super::record::Record;

/// Bytes before the value: len, crc, offset, leader_epoch, producer_id, sequence.
pub const RECORD_HEADER_BYTES: u64 = 32;

/// The fixed part of a frame that the length field counts (everything after `len`).
const LEN_FIELD_MIN: u64 = RECORD_HEADER_BYTES - 4;

/// Bytes of the prefix that is read first: `len` and `crc32c`.
pub const RECORD_PREFIX_BYTES: usize = 8;

/// The smallest frame: a record with an empty value.
pub const RECORD_BYTES_MIN: u64 = RECORD_HEADER_BYTES;

/// The largest frame, header included; larger values are refused at append.
pub const RECORD_BYTES_MAX: u64 = 1024 * 1024;

/// The largest value a record may carry.
pub const VALUE_BYTES_MAX: u64 = RECORD_BYTES_MAX - RECORD_HEADER_BYTES;

/// What is wrong with a frame read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameDefect {
    /// The length field is zero, below the header size, or above [`RECORD_BYTES_MAX`].
    BadLength { len: u32 },
    /// The stored CRC does not match the bytes.
    CrcMismatch { stored: u32, computed: u32 },
}

impl std::fmt::Display for FrameDefect {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameDefect::BadLength { len } => write!(formatter, "bad length field {len}"),
            FrameDefect::CrcMismatch { stored, computed } => write!(
                formatter,
                "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// The size of `record`'s frame, in bytes.
pub fn frame_bytes(record: &Record) -> u64 {
    RECORD_HEADER_BYTES + record.value.len() as u64
}

/// Appends `record`'s frame to `target`. The caller has checked the size bound.
pub fn encode_record(record: &Record, target: &mut Vec<u8>) {
    let frame = frame_bytes(record);
    assert!(
        frame <= RECORD_BYTES_MAX,
        "record of {frame} bytes exceeds the bound"
    );
    let start = target.len();
    let len = u32::try_from(frame - 4).expect("bounded by RECORD_BYTES_MAX");
    target.extend_from_slice(&len.to_le_bytes());
    target.extend_from_slice(&[0; 4]); // CRC placeholder, filled in below.
    target.extend_from_slice(&record.offset.to_le_bytes());
    target.extend_from_slice(&record.leader_epoch.to_le_bytes());
    target.extend_from_slice(&record.producer_id.to_le_bytes());
    target.extend_from_slice(&record.sequence.to_le_bytes());
    target.extend_from_slice(&record.value);
    let crc = crc32c::crc32c(&target[start + RECORD_PREFIX_BYTES..]);
    target[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    assert_eq!((target.len() - start) as u64, frame);
}

/// Reads the `len` and `crc32c` fields and checks the length. Returns the frame size (prefix
/// included) and the stored CRC.
pub fn decode_prefix(prefix: [u8; RECORD_PREFIX_BYTES]) -> Result<(u64, u32), FrameDefect> {
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    let frame = u64::from(len) + 4;
    if u64::from(len) < LEN_FIELD_MIN || frame > RECORD_BYTES_MAX {
        return Err(FrameDefect::BadLength { len });
    }
    Ok((frame, crc))
}

/// Decodes the bytes after the prefix (`frame - 8` of them), checking them against `crc`.
pub fn decode_body(stored_crc: u32, body: &[u8]) -> Result<Record, FrameDefect> {
    assert!(body.len() as u64 >= RECORD_HEADER_BYTES - RECORD_PREFIX_BYTES as u64);
    let computed = crc32c::crc32c(body);
    if computed != stored_crc {
        return Err(FrameDefect::CrcMismatch {
            stored: stored_crc,
            computed,
        });
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    Ok(Record {
        offset: u64_at(0),
        leader_epoch: u32_at(8),
        producer_id: u64_at(12),
        sequence: u32_at(20),
        value: body[24..].to_vec(),
    })
}

/// Decodes one whole frame from `frame`, which must be exactly one frame long.
pub fn decode_frame(frame: &[u8]) -> Result<Record, FrameDefect> {
    assert!(
        frame.len() >= RECORD_PREFIX_BYTES,
        "caller passes whole frames"
    );
    let prefix: [u8; RECORD_PREFIX_BYTES] = frame[..RECORD_PREFIX_BYTES]
        .try_into()
        .expect("length checked");
    let (size, crc) = decode_prefix(prefix)?;
    if size != frame.len() as u64 {
        let len = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes"));
        return Err(FrameDefect::BadLength { len });
    }
    decode_body(crc, &frame[RECORD_PREFIX_BYTES..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            offset: 42,
            leader_epoch: 3,
            producer_id: 0xDEAD_BEEF,
            sequence: 9,
            value: b"hello".to_vec(),
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let mut bytes = Vec::new();
        encode_record(&sample(), &mut bytes);
        assert_eq!(bytes.len() as u64, RECORD_HEADER_BYTES + 5);
        assert_eq!(&bytes[0..4], &(28u32 + 5).to_le_bytes());
        assert_eq!(&bytes[8..16], &42u64.to_le_bytes());
        assert_eq!(decode_frame(&bytes), Ok(sample()));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut bytes = Vec::new();
        encode_record(&sample(), &mut bytes);
        for bit in 0..bytes.len() * 8 {
            let mut corrupt = bytes.clone();
            corrupt[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_frame(&corrupt).is_err(),
                "bit {bit} flip went unnoticed"
            );
        }
    }

    #[test]
    fn bad_lengths_are_rejected() {
        for len in [0u32, 27, u32::MAX, RECORD_BYTES_MAX as u32] {
            let mut prefix = [0u8; RECORD_PREFIX_BYTES];
            prefix[..4].copy_from_slice(&len.to_le_bytes());
            assert_eq!(decode_prefix(prefix), Err(FrameDefect::BadLength { len }));
        }
    }
}
