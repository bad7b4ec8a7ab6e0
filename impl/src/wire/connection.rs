//! [`Connection`]: typed messages over one byte stream, in whole frames.
//!
//! A connection moves bytes only: it frames with [`FrameCodec`] and turns each frame into a
//! value with the [`codec`](super::codec); it knows nothing of which messages exist or what
//! they mean. It is generic over the stream so that tests run it over `tokio::io::duplex` and
//! nodes run it over `TcpStream`.
//!
//! Nodes read and write a connection concurrently (a reader task feeding the core, a writer
//! task draining an outbound queue), so a connection splits into a [`FrameReader`] and a
//! [`FrameWriter`]. Splitting after the handshake keeps any bytes already buffered: a peer may
//! send its first messages right behind its hello, in the same TCP segment.
//!
//! Cancellation: `read` is cancel-safe (partial frames stay buffered in the reader), so it may
//! sit in a `tokio::select!`. `write` is not: cancelling it may leave a frame half-flushed.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{Framed, FramedParts};

use super::codec::{decode, encode};
use super::error::WireError;
use super::frame::FrameCodec;

/// A framed, typed, bidirectional connection. See the module doc.
#[derive(Debug)]
pub struct Connection<S> {
    framed: Framed<S, FrameCodec>,
}

/// The receiving half of a split [`Connection`].
///
/// Both halves wrap a `Framed` (which needs only `AsyncRead` to read and only `AsyncWrite` to
/// write) rather than `FramedRead`/`FramedWrite`: only `Framed::from_parts` marks carried-over
/// bytes as ready to decode, where a `FramedRead` would wait for new bytes before looking at
/// them.
#[derive(Debug)]
pub struct FrameReader<R> {
    framed: Framed<R, FrameCodec>,
}

/// The sending half of a split [`Connection`].
#[derive(Debug)]
pub struct FrameWriter<W> {
    framed: Framed<W, FrameCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Connection {
            framed: Framed::new(stream, FrameCodec::new()),
        }
    }

    /// Reads the next message. `Ok(None)` means the peer closed cleanly between frames.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        read_frame(self.framed.next().await)
    }

    /// Writes one message and flushes it to the stream.
    pub async fn write<T: Serialize + ?Sized>(&mut self, message: &T) -> Result<(), WireError> {
        self.framed.send(encode_frame(message)?).await
    }

    /// Flushes and shuts down the sending direction; the peer's next read sees a clean EOF.
    pub async fn close(&mut self) -> Result<(), WireError> {
        SinkExt::<Bytes>::close(&mut self.framed).await
    }

    /// The underlying stream, e.g. for its peer address.
    pub fn stream(&self) -> &S {
        self.framed.get_ref()
    }

    /// Splits with `tokio::io::split`, which works for any stream.
    pub fn into_split(self) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
        self.into_split_with(tokio::io::split)
    }

    /// Splits with a stream-specific function, e.g. `TcpStream::into_split` (lock-free halves).
    /// Bytes already read or queued are carried over to the halves.
    pub fn into_split_with<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (FrameReader<R>, FrameWriter<W>)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let parts = self.framed.into_parts();
        let (read_half, write_half) = split(parts.io);
        let mut reader = FramedParts::new::<Bytes>(read_half, FrameCodec::new());
        reader.read_buf = parts.read_buf;
        let mut writer = FramedParts::new::<Bytes>(write_half, FrameCodec::new());
        writer.write_buf = parts.write_buf;
        let reader = FrameReader {
            framed: Framed::from_parts(reader),
        };
        let writer = FrameWriter {
            framed: Framed::from_parts(writer),
        };
        (reader, writer)
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(stream: R) -> Self {
        FrameReader {
            framed: Framed::new(stream, FrameCodec::new()),
        }
    }

    /// Reads the next message. `Ok(None)` means the peer closed cleanly between frames.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        read_frame(self.framed.next().await)
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(stream: W) -> Self {
        FrameWriter {
            framed: Framed::new(stream, FrameCodec::new()),
        }
    }

    /// Writes one message and flushes it to the stream.
    pub async fn write<T: Serialize + ?Sized>(&mut self, message: &T) -> Result<(), WireError> {
        self.framed.send(encode_frame(message)?).await
    }

    /// Flushes and shuts down the sending direction; the peer's next read sees a clean EOF.
    pub async fn close(&mut self) -> Result<(), WireError> {
        SinkExt::<Bytes>::close(&mut self.framed).await
    }
}

fn read_frame<T: DeserializeOwned>(
    next: Option<Result<bytes::BytesMut, WireError>>,
) -> Result<Option<T>, WireError> {
    match next {
        None => Ok(None),
        Some(Err(error)) => Err(error),
        Some(Ok(frame)) => Ok(Some(decode(&frame)?)),
    }
}

fn encode_frame<T: Serialize + ?Sized>(message: &T) -> Result<Bytes, WireError> {
    let bytes = encode(message).map_err(WireError::Encode)?;
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn split_keeps_bytes_buffered_before_the_split() {
        let (client, server) = tokio::io::duplex(1024);
        let mut client = Connection::new(client);
        client.write(&1u32).await.unwrap();
        client.write(&2u32).await.unwrap();
        let mut server = Connection::new(server);
        // The first read pulls both frames into the buffer; the second must survive the split.
        assert_eq!(server.read::<u32>().await.unwrap(), Some(1));
        let (mut reader, mut writer) = server.into_split();
        assert_eq!(reader.read::<u32>().await.unwrap(), Some(2));
        writer.write(&3u32).await.unwrap();
        assert_eq!(client.read::<u32>().await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn close_gives_the_peer_a_clean_eof() {
        let (client, server) = tokio::io::duplex(64);
        let mut client = Connection::new(client);
        let mut server = Connection::new(server);
        client.write("bye").await.unwrap();
        client.close().await.unwrap();
        assert_eq!(
            server.read::<String>().await.unwrap().as_deref(),
            Some("bye")
        );
        assert_eq!(server.read::<String>().await.unwrap(), None);
    }
}
