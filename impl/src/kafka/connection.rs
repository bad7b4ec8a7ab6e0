//! Kafka frames on a socket: a 4-byte big-endian size, then that many bytes. The connection
//! owns bytes only: it reads whole frames (clean EOF between frames is the end, EOF inside
//! one is an error), refuses a size above [`FRAME_BYTES_MAX`] before reading the body, and
//! writes frames. What a frame means is `dispatch`'s business.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

/// Largest request frame read (librdkafka's default `message.max.bytes` is 1,000,000; a
/// produce request carries one batch of at most that, plus headers).
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative or above {FRAME_BYTES_MAX} bytes")]
    Size(i64),
    #[error("connection closed inside a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The read half: whole frames or nothing.
pub struct FrameReader<R> {
    reader: BufReader<R>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader: BufReader::new(reader),
        }
    }

    /// The next frame's body; `None` at a clean end of stream.
    pub async fn read(&mut self) -> Result<Option<Bytes>, FrameError> {
        let mut size = [0u8; 4];
        match self.reader.read(&mut size[..1]).await? {
            0 => return Ok(None),
            _ => read_exact(&mut self.reader, &mut size[1..]).await?,
        }
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|size| *size <= FRAME_BYTES_MAX)
            .ok_or(FrameError::Size(i64::from(size)))?;
        let mut body = BytesMut::zeroed(size);
        read_exact(&mut self.reader, &mut body).await?;
        Ok(Some(body.freeze()))
    }
}

async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut [u8],
) -> Result<(), FrameError> {
    match reader.read_exact(buffer).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(FrameError::Truncated)
        }
        Err(error) => Err(error.into()),
    }
}

/// The write half.
pub struct FrameWriter<W> {
    writer: BufWriter<W>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(writer: W) -> Self {
        FrameWriter {
            writer: BufWriter::new(writer),
        }
    }

    /// Writes one frame and flushes it.
    pub async fn write(&mut self, body: &[u8]) -> Result<(), FrameError> {
        let size = i32::try_from(body.len()).map_err(|_| FrameError::Size(body.len() as i64))?;
        self.writer.write_all(&size.to_be_bytes()).await?;
        self.writer.write_all(body).await?;
        self.writer.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: whole frames come out; an oversized size and a cut frame end the connection;
    /// a clean end between frames is `None`.
    #[tokio::test]
    async fn frames_are_whole_or_refused() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&3i32.to_be_bytes());
        bytes.extend_from_slice(b"abc");
        let mut reader = FrameReader::new(&bytes[..]);
        assert_eq!(
            reader.read().await.unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert!(reader.read().await.unwrap().is_none());

        let oversized = ((FRAME_BYTES_MAX + 1) as i32).to_be_bytes();
        let refused = FrameReader::new(&oversized[..]).read().await;
        assert!(matches!(refused, Err(FrameError::Size(_))));
        let negative = (-1i32).to_be_bytes();
        assert!(matches!(
            FrameReader::new(&negative[..]).read().await,
            Err(FrameError::Size(-1))
        ));
        let cut = [0, 0, 0, 9, b'x'];
        assert!(matches!(
            FrameReader::new(&cut[..]).read().await,
            Err(FrameError::Truncated)
        ));
        let cut_size = [0, 0];
        assert!(matches!(
            FrameReader::new(&cut_size[..]).read().await,
            Err(FrameError::Truncated)
        ));
    }
}
