//! The value codec: how a Rust value becomes bytes and back, for frames on the wire and for
//! the payload of checkpoint files on disk.
//!
//! This file is the only place in the workspace that names the serialization crate (bincode
//! 2.x, `standard()` configuration: little-endian, variable-length integers). Everything else
//! calls [`encode`] and [`decode`] and sees only [`CodecError`], whose variants carry a
//! rendered message rather than a bincode type. Swapping to postcard (or anything serde-based)
//! is therefore a one-file change: rewrite the two function bodies below.
//!
//! Why bounds here: a length field inside a hostile or corrupt buffer must not make the
//! decoder allocate more than the buffer could ever describe, so decoding carries a byte limit
//! ([`ENCODED_BYTES_MAX`]) and encoding refuses to produce more than the same limit.
//!
//! Decoding is strict: the whole input must be one value. Trailing bytes mean the sender and
//! receiver disagree about a type, which is a protocol error, not padding to ignore.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest encoded value, in bytes, that [`encode`] produces and [`decode`] accepts.
/// Equal to the largest wire frame; checkpoints are far smaller.
pub const ENCODED_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value cannot be represented (a serde error, or it exceeds the size limit).
    #[error("cannot encode value: {reason}")]
    Encode { reason: String },
    /// The encoded value would exceed [`ENCODED_BYTES_MAX`].
    #[error("encoded value is {len} bytes, more than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The bytes are not an encoding of the expected type (wrong type, corrupt, truncated).
    #[error("bytes do not decode as the expected message: {reason}")]
    Decode { reason: String },
    /// The bytes start with a valid value but carry extra bytes after it.
    #[error("{trailing} unexpected trailing bytes after a {used}-byte message")]
    TrailingBytes { used: usize, trailing: usize },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<ENCODED_BYTES_MAX>()
}

/// Encodes `value` into a fresh buffer of at most [`ENCODED_BYTES_MAX`] bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes =
        bincode::serde::encode_to_vec(value, config()).map_err(|error| CodecError::Encode {
            reason: error.to_string(),
        })?;
    if bytes.len() > ENCODED_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: ENCODED_BYTES_MAX,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one `T` from `bytes`; rejects trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > ENCODED_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: ENCODED_BYTES_MAX,
        });
    }
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|error| CodecError::Decode {
            reason: error.to_string(),
        })?;
    assert!(
        used <= bytes.len(),
        "decoder consumed more bytes than it was given"
    );
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            used,
            trailing: bytes.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        id: u64,
        name: String,
        payload: Vec<u8>,
    }

    #[test]
    fn round_trip() {
        let sample = Sample {
            id: 7,
            name: "seven".into(),
            payload: vec![1, 2, 3],
        };
        let bytes = encode(&sample).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&5u32).unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<u32>(&bytes),
            Err(CodecError::TrailingBytes {
                used: 1,
                trailing: 1
            })
        );
    }

    #[test]
    fn truncated_input_is_a_decode_error() {
        let bytes = encode(&"a string of some length").unwrap();
        let result = decode::<String>(&bytes[..bytes.len() - 3]);
        assert!(
            matches!(result, Err(CodecError::Decode { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn huge_length_field_does_not_allocate() {
        // A Vec<u8> whose varint length (tag 253: a u64 follows) claims u64::MAX bytes: the
        // limit, not the allocator, must stop it.
        let bytes = [253, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let result = decode::<Vec<u8>>(&bytes);
        assert!(
            matches!(result, Err(CodecError::Decode { .. })),
            "{result:?}"
        );
    }
}
