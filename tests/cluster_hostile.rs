//! Hostile bytes on a broker's port (issue #4): garbage instead of a handshake, an oversized
//! length prefix, a wrong cluster id, and a well-framed but undecodable frame after a valid
//! handshake. Each connection is closed (the test sees EOF or a reset), the broker logs why,
//! and it keeps replicating and serving produce and consume.

mod support;

use std::time::Duration;

use insync_impl::client::{Consumer, ProduceAcks, Producer};
use insync_impl::wire::{
    decode, encode, handshake_client, Connection, Hello, HelloReply, PeerName, WireError,
};
use support::{values, TestCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` and waits until the broker closes the connection.
async fn assert_closed_after(address: &str, bytes: &[u8]) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut buffer = vec![0u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the broker closes a hostile connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_closed_and_the_broker_keeps_serving() {
    let test = TestCluster::start(3, &[]).await;
    let cluster_id = test.cluster.cluster_id().to_owned();
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(values("before", 0..100))
        .await
        .expect("produce");
    let leader = test.controller().await.view.leader.expect("a leader");
    let follower = if leader == 1 { 2 } else { 1 };

    for target in [leader, follower] {
        let address = test.cluster.broker_address(target).to_owned();
        // Garbage where the hello should be (its "length" is "GET " = 0x47455420, too large).
        assert_closed_after(&address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        // A length prefix far above the frame limit, with a little payload behind it.
        assert_closed_after(&address, &[0xFF, 0xFF, 0xFF, 0xF0, 1, 2, 3, 4]).await;
        // A small frame that is not a hello.
        assert_closed_after(&address, &[0, 0, 0, 3, 0xDE, 0xAD, 0xBE]).await;

        // A wrong cluster id: refused with a reason, then closed.
        let stream = TcpStream::connect(&address).await.expect("connect");
        let hello = Hello::new("another-cluster", PeerName::Client(7));
        let refused = handshake_client(Connection::new(stream), &hello).await;
        assert!(
            matches!(refused, Err(WireError::WrongCluster { .. })),
            "{refused:?}"
        );

        // A valid handshake, then a frame that does not decode as a message.
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        let hello = encode(&Hello::new(cluster_id.clone(), PeerName::Client(8))).unwrap();
        stream
            .write_all(&(hello.len() as u32).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&hello).await.unwrap();
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await.expect("hello reply");
        let mut reply = vec![0u8; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut reply).await.expect("hello reply");
        let reply: HelloReply = decode(&reply).expect("a hello reply");
        assert!(matches!(reply, HelloReply::HelloOk { .. }), "{reply:?}");
        stream
            .write_all(&[0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])
            .await
            .unwrap();
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed after a bad frame: {read:?}"
        );
    }

    // The broker still replicates and serves.
    producer
        .send(values("after", 0..100))
        .await
        .expect("produce after the attacks");
    for broker in 1..=3 {
        test.wait_broker(broker, "every replica holds all 200 records", |snapshot| {
            snapshot.log_end_offset == 200 && snapshot.hw == 200
        })
        .await;
    }
    let mut consumer = Consumer::new(test.client_config(), 0);
    let records = consumer.read_to_end(1000).await.expect("consume");
    let mut expected = values("before", 0..100);
    expected.extend(values("after", 0..100));
    let read: Vec<Vec<u8>> = records.into_iter().map(|record| record.value).collect();
    assert!(read == expected, "every record, once, in order");
    let log = test.log_text(&format!("broker-{leader}"));
    assert!(
        log.contains("handshake failed"),
        "the broker logs why it closed"
    );
    assert!(
        log.contains("connection closed"),
        "the broker logs the bad frame"
    );
}
