//! [`FrameCodec`]: splits a byte stream into frames, knowing nothing of what frames mean.
//!
//! A frame is a 4-byte big-endian (network order) length followed by that many payload bytes.
//! The length counts the payload only. This wraps tokio-util's `LengthDelimitedCodec` to turn
//! its untyped I/O errors into [`WireError`]s the caller can tell apart:
//!
//! - too few bytes buffered is normal: `Ok(None)`, wait for more;
//! - a length prefix above [`FRAME_BYTES_MAX`] is [`WireError::FrameTooLarge`], raised from the
//!   4-byte header alone, before any buffer for the payload is reserved;
//! - end of stream with a partial frame buffered is [`WireError::UnexpectedEof`], while end of
//!   stream on a frame boundary is a clean close.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use super::codec::ENCODED_BYTES_MAX;
use super::error::WireError;

/// The largest frame payload, in bytes, either direction.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Size of the length prefix, in bytes.
pub const FRAME_HEADER_BYTES: usize = 4;

const _: () = assert!(FRAME_BYTES_MAX <= ENCODED_BYTES_MAX);
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);

/// Length-prefixed framing with typed errors. See the module doc.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    /// The inner codec has consumed a frame's header and waits for its payload: the buffer
    /// then starts with payload bytes, which must not be read as a length.
    mid_frame: bool,
}

impl FrameCodec {
    pub fn new() -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .big_endian()
            .max_frame_length(FRAME_BYTES_MAX)
            .new_codec();
        FrameCodec {
            inner,
            mid_frame: false,
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = WireError;

    fn decode(&mut self, source: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        let header_present = !self.mid_frame && source.len() >= FRAME_HEADER_BYTES;
        if header_present {
            let len = u64::from((&source[..FRAME_HEADER_BYTES]).get_u32());
            if len > FRAME_BYTES_MAX as u64 {
                return Err(WireError::FrameTooLarge {
                    len,
                    max: FRAME_BYTES_MAX as u64,
                });
            }
        }
        match self.inner.decode(source)? {
            Some(frame) => {
                self.mid_frame = false;
                Ok(Some(frame))
            }
            None => {
                self.mid_frame |= header_present;
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, source: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        match self.decode(source)? {
            Some(frame) => Ok(Some(frame)),
            None if source.is_empty() && !self.mid_frame => Ok(None),
            None => {
                let header = if self.mid_frame {
                    FRAME_HEADER_BYTES
                } else {
                    0
                };
                Err(WireError::UnexpectedEof {
                    buffered: (source.len() + header) as u64,
                })
            }
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, payload: Bytes, target: &mut BytesMut) -> Result<(), WireError> {
        if payload.len() > FRAME_BYTES_MAX {
            return Err(WireError::FrameTooLarge {
                len: payload.len() as u64,
                max: FRAME_BYTES_MAX as u64,
            });
        }
        Ok(self.inner.encode(payload, target)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_header_and_partial_payload_wait_for_more() {
        let mut codec = FrameCodec::new();
        let mut buffer = BytesMut::from(&[0u8, 0, 0][..]);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(&[3, b'a', b'b']);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(b"c");
        assert_eq!(&codec.decode(&mut buffer).unwrap().unwrap()[..], b"abc");
        assert!(buffer.is_empty());
    }

    #[test]
    fn payload_bytes_are_never_read_as_a_length() {
        // A 10-byte payload of 0xFF arriving in pieces: once the header is consumed, the
        // buffered 0xFF bytes must not be mistaken for a huge length prefix.
        let mut codec = FrameCodec::new();
        let mut buffer = BytesMut::from(&[0u8, 0, 0, 10, 0xFF][..]);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(&[0xFF; 5]);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(&[0xFF; 4]);
        assert_eq!(
            &codec.decode(&mut buffer).unwrap().unwrap()[..],
            &[0xFF; 10]
        );
        buffer.extend_from_slice(&[0, 0, 0, 1, 7]);
        assert_eq!(&codec.decode(&mut buffer).unwrap().unwrap()[..], &[7]);
    }

    #[test]
    fn oversized_prefix_is_rejected_from_the_header_alone() {
        let mut codec = FrameCodec::new();
        let mut buffer = BytesMut::from(&[0xFFu8, 0xFF, 0xFF, 0xFF][..]);
        let error = codec.decode(&mut buffer).unwrap_err();
        assert!(
            matches!(error, WireError::FrameTooLarge { len, .. } if len == u64::from(u32::MAX)),
            "{error:?}"
        );
        assert!(
            buffer.capacity() < 1024,
            "no payload buffer may be reserved"
        );
    }

    #[test]
    fn eof_between_frames_is_clean_and_mid_frame_is_an_error() {
        let mut codec = FrameCodec::new();
        assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
        let mut partial = BytesMut::from(&[0u8, 0, 0, 9, 1][..]);
        let error = codec.decode_eof(&mut partial).unwrap_err();
        assert!(
            matches!(error, WireError::UnexpectedEof { buffered: 5 }),
            "{error:?}"
        );
    }
}
