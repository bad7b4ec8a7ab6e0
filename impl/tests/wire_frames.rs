//! Wire framing and handshake, on bytes: frames through an in-memory duplex stream, split
//! across arbitrary chunk boundaries, cut short, oversized or garbage; the handshake's happy
//! path, refusals and timeouts (on paused tokio time, so nothing really sleeps).

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use insync_impl::storage::Record;
use insync_impl::wire::codec::{encode, CodecError};
use insync_impl::wire::handshake::{HelloReply, RejectReason};
use insync_impl::wire::{
    handshake_client, handshake_server, Connection, Hello, PeerName, WireError, FRAME_BYTES_MAX,
    HANDSHAKE_TIMEOUT, PROTOCOL_VERSION,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Message {
    Ping(u64),
    Records {
        records: Vec<Record>,
        high_watermark: u64,
    },
    Bye,
}

fn sample_messages() -> Vec<Message> {
    let record = Record {
        offset: 3,
        leader_epoch: 2,
        producer_id: 77,
        sequence: 5,
        value: b"payload".to_vec(),
    };
    vec![
        Message::Ping(1),
        Message::Records {
            records: vec![record.clone(), record],
            high_watermark: 9,
        },
        Message::Bye,
    ]
}

/// The bytes a `Connection` puts on the wire for `message`: a u32 big-endian length, then the
/// encoded message.
fn frame_bytes(message: &impl Serialize) -> Vec<u8> {
    let payload = encode(message).unwrap();
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend(payload);
    bytes
}

fn pair() -> (Connection<DuplexStream>, Connection<DuplexStream>) {
    let (left, right) = tokio::io::duplex(64 * 1024);
    (Connection::new(left), Connection::new(right))
}

#[tokio::test]
async fn frames_round_trip_through_a_duplex() {
    let (mut sender, mut receiver) = pair();
    for message in sample_messages() {
        sender.write(&message).await.unwrap();
    }
    for message in sample_messages() {
        assert_eq!(receiver.read::<Message>().await.unwrap(), Some(message));
    }
}

#[tokio::test]
async fn split_halves_read_and_write_concurrently() {
    let (left, right) = pair();
    let (mut left_reader, mut left_writer) = left.into_split();
    let (mut right_reader, mut right_writer) = right.into_split();
    let echo = tokio::spawn(async move {
        while let Some(message) = right_reader.read::<Message>().await.unwrap() {
            right_writer.write(&message).await.unwrap();
        }
        right_writer.close().await.unwrap();
    });
    for message in sample_messages() {
        left_writer.write(&message).await.unwrap();
    }
    left_writer.close().await.unwrap();
    for message in sample_messages() {
        assert_eq!(left_reader.read::<Message>().await.unwrap(), Some(message));
    }
    assert_eq!(left_reader.read::<Message>().await.unwrap(), None);
    echo.await.unwrap();
}

#[tokio::test]
async fn frames_arriving_byte_by_byte_are_reassembled() {
    let (mut raw, other) = tokio::io::duplex(64);
    let mut receiver = Connection::new(other);
    let bytes: Vec<u8> = sample_messages().iter().flat_map(frame_bytes).collect();
    let writer = tokio::spawn(async move {
        for byte in bytes {
            raw.write_all(&[byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    for message in sample_messages() {
        assert_eq!(receiver.read::<Message>().await.unwrap(), Some(message));
    }
    writer.await.unwrap();
    assert_eq!(
        receiver.read::<Message>().await.unwrap(),
        None,
        "clean EOF after the writer"
    );
}

#[tokio::test]
async fn eof_between_frames_is_none_and_eof_mid_frame_is_an_error() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut receiver = Connection::new(other);
    raw.write_all(&frame_bytes(&Message::Ping(5)))
        .await
        .unwrap();
    drop(raw);
    assert_eq!(
        receiver.read::<Message>().await.unwrap(),
        Some(Message::Ping(5))
    );
    assert_eq!(receiver.read::<Message>().await.unwrap(), None);

    let (mut raw, other) = tokio::io::duplex(1024);
    let mut receiver = Connection::new(other);
    let bytes = frame_bytes(&Message::Ping(5));
    raw.write_all(&bytes[..bytes.len() - 1]).await.unwrap();
    drop(raw);
    let error = receiver.read::<Message>().await.unwrap_err();
    let expected = (bytes.len() - 1) as u64;
    assert!(
        matches!(error, WireError::UnexpectedEof { buffered } if buffered == expected),
        "{error:?}"
    );

    let (mut raw, other) = tokio::io::duplex(1024);
    let mut receiver = Connection::new(other);
    raw.write_all(&[0, 0]).await.unwrap(); // Half a length prefix.
    drop(raw);
    let error = receiver.read::<Message>().await.unwrap_err();
    assert!(
        matches!(error, WireError::UnexpectedEof { buffered: 2 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn garbage_payload_is_malformed() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut receiver = Connection::new(other);
    // A well-formed frame whose payload names enum variant 200 of a three-variant enum.
    raw.write_all(&[0, 0, 0, 3, 200, 1, 2]).await.unwrap();
    let error = receiver.read::<Message>().await.unwrap_err();
    assert!(
        matches!(error, WireError::Malformed(CodecError::Decode { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn trailing_bytes_in_a_frame_are_rejected() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut receiver = Connection::new(other);
    let mut payload = encode(&Message::Bye).unwrap();
    payload.push(0);
    raw.write_all(&(payload.len() as u32).to_be_bytes())
        .await
        .unwrap();
    raw.write_all(&payload).await.unwrap();
    let error = receiver.read::<Message>().await.unwrap_err();
    assert!(
        matches!(
            error,
            WireError::Malformed(CodecError::TrailingBytes { trailing: 1, .. })
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn four_gib_length_prefix_is_too_large_without_allocating() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut receiver = Connection::new(other);
    // u32::MAX: a frame of 4 GiB minus one byte. Only the prefix is sent; the error must come
    // from it alone, so the reader neither waits for the payload nor reserves room for it.
    raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let error = receiver.read::<Message>().await.unwrap_err();
    assert!(
        matches!(error, WireError::FrameTooLarge { len, max }
            if len == u64::from(u32::MAX) && max == FRAME_BYTES_MAX as u64),
        "{error:?}"
    );
}

#[tokio::test]
async fn oversized_outgoing_message_is_refused_before_sending() {
    let (mut sender, _receiver) = pair();
    let huge = vec![0u8; FRAME_BYTES_MAX + 1];
    let error = sender.write(&huge).await.unwrap_err();
    assert!(
        matches!(error, WireError::Encode(CodecError::TooLarge { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn handshake_names_both_ends() {
    let (client, server) = tokio::io::duplex(1024);
    let hello = Hello::new("cluster-a", PeerName::Broker(2));
    let dial = tokio::spawn(async move { handshake_client(Connection::new(client), &hello).await });
    let (mut server, peer) =
        handshake_server(Connection::new(server), "cluster-a", PeerName::Controller)
            .await
            .unwrap();
    assert_eq!(peer, PeerName::Broker(2));
    let (mut client, responder) = dial.await.unwrap().unwrap();
    assert_eq!(responder, PeerName::Controller);
    // Protocol frames flow after the handshake.
    client.write(&Message::Ping(1)).await.unwrap();
    assert_eq!(
        server.read::<Message>().await.unwrap(),
        Some(Message::Ping(1))
    );
}

#[tokio::test]
async fn wrong_cluster_is_refused_on_both_sides() {
    let (client, server) = tokio::io::duplex(1024);
    let hello = Hello::new("cluster-b", PeerName::Client(7));
    let dial = tokio::spawn(async move { handshake_client(Connection::new(client), &hello).await });
    let served = handshake_server(Connection::new(server), "cluster-a", PeerName::Broker(1)).await;
    assert!(
        matches!(&served, Err(WireError::WrongCluster { expected, got })
            if expected == "cluster-a" && got == "cluster-b"),
        "{served:?}"
    );
    let dialled = dial.await.unwrap();
    assert!(
        matches!(dialled, Err(WireError::WrongCluster { .. })),
        "{dialled:?}"
    );
}

#[tokio::test]
async fn wrong_version_is_refused_and_the_connection_closed() {
    let (client, server) = tokio::io::duplex(1024);
    let mut client = Connection::new(client);
    let mut hello = Hello::new("cluster-a", PeerName::Harness);
    hello.protocol_version = PROTOCOL_VERSION + 1;
    client.write(&hello).await.unwrap();
    let served = handshake_server(Connection::new(server), "cluster-a", PeerName::Broker(1)).await;
    assert!(
        matches!(served, Err(WireError::VersionMismatch { ours, theirs })
            if ours == PROTOCOL_VERSION && theirs == PROTOCOL_VERSION + 1),
        "{served:?}"
    );
    let reply = client.read::<HelloReply>().await.unwrap();
    assert_eq!(
        reply,
        Some(HelloReply::HelloRejected {
            reason: RejectReason::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: PROTOCOL_VERSION + 1
            }
        })
    );
    assert_eq!(
        client.read::<HelloReply>().await.unwrap(),
        None,
        "closed after rejecting"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_client_times_out_the_server() {
    let (_silent, server) = tokio::io::duplex(1024);
    let started = tokio::time::Instant::now();
    let served = handshake_server(Connection::new(server), "cluster-a", PeerName::Broker(1)).await;
    assert!(
        matches!(served, Err(WireError::HandshakeTimeout { .. })),
        "{served:?}"
    );
    assert_eq!(started.elapsed(), HANDSHAKE_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn silent_server_times_out_the_client() {
    let (client, mut silent) = tokio::io::duplex(1024);
    let hello = Hello::new("cluster-a", PeerName::Broker(3));
    let dialled = handshake_client(Connection::new(client), &hello).await;
    assert!(
        matches!(dialled, Err(WireError::HandshakeTimeout { .. })),
        "{dialled:?}"
    );
    let mut received = [0u8; 4];
    silent.read_exact(&mut received).await.unwrap();
    assert_ne!(received, [0; 4], "the hello was sent before the wait");
}

#[tokio::test]
async fn client_hanging_up_during_handshake_is_reported() {
    let (client, server) = tokio::io::duplex(1024);
    drop(client);
    let served = handshake_server(Connection::new(server), "cluster-a", PeerName::Broker(1)).await;
    assert!(
        matches!(served, Err(WireError::ClosedDuringHandshake)),
        "{served:?}"
    );
}

/// Feeds `bytes` to a connection and reads until it ends; must never panic or hang.
fn read_everything(bytes: Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (mut raw, other) = tokio::io::duplex(bytes.len().max(1));
        raw.write_all(&bytes).await.unwrap();
        drop(raw);
        let mut receiver = Connection::new(other);
        // Each successful read consumes at least a 4-byte prefix, bounding the loop.
        for _ in 0..=bytes.len() / 4 {
            match receiver.read::<Message>().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
        panic!("more frames than the input could hold");
    });
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_everything(bytes);
    }

    #[test]
    fn arbitrary_payloads_in_valid_frames_never_panic(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)
    ) {
        let mut bytes = Vec::new();
        for payload in payloads {
            bytes.extend((payload.len() as u32).to_be_bytes());
            bytes.extend(payload);
        }
        read_everything(bytes);
    }
}
