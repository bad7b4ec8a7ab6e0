//! Fencing of a stale leader (issue #4): a leader that is paused (SIGSTOP) while the
//! controller elects another never acknowledges a produce once a new view exists: when it
//! resumes it installs the new view and answers NotLeader, and the record never appears in
//! the new leader's log.
//!
//! Method: SIGSTOP the leader, wait (polling Inspect) until the controller and the new leader
//! hold the new view, send an acks=all produce straight to the old leader (the connection is
//! accepted by the kernel; the handshake completes once it runs), then SIGCONT it.

mod support;

use std::time::Duration;

use insync_impl::client::{Consumer, ProduceAcks, Producer};
use insync_impl::protocol::{Acks, ClientReply, ClientRequest, ProduceResult};
use insync_impl::wire::{handshake_client, Connection, Hello, PeerName};
use support::{signal, values, TestCluster};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_never_acknowledges_after_a_new_view() {
    let test = TestCluster::start(3, &[]).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(values("before", 0..20))
        .await
        .expect("produce");
    let before = test.controller().await.view;
    let old_leader = before.leader.expect("a leader");
    let pid = test.cluster.broker_pid(old_leader).expect("running");
    signal(pid, "-STOP");
    let after = test.wait_new_leader(old_leader).await.view;
    let new_leader = after.leader.unwrap();
    test.wait_broker(new_leader, "the new leader installed the view", |broker| {
        broker
            .view
            .as_ref()
            .is_some_and(|view| view.leader_epoch == after.leader_epoch)
    })
    .await;

    let address = test.cluster.broker_address(old_leader).to_owned();
    let cluster_id = test.cluster.cluster_id().to_owned();
    let stale = tokio::spawn(async move {
        let stream = TcpStream::connect(&address).await.expect("connect");
        let hello = Hello::new(cluster_id, PeerName::Client(99));
        let (mut connection, _) = handshake_client(Connection::new(stream), &hello)
            .await
            .expect("handshake");
        let request = ClientRequest::Produce {
            producer_id: 99,
            first_sequence: 0,
            values: vec![b"stale".to_vec()],
            acks: Acks::All,
        };
        connection.write(&request).await.expect("send");
        connection.read::<ClientReply>().await
    });
    // Let the client's connection reach the paused process's accept queue first.
    tokio::task::yield_now().await;
    signal(pid, "-CONT");
    let answer = tokio::time::timeout(Duration::from_secs(20), stale)
        .await
        .expect("the old leader answers")
        .expect("task")
        .expect("a readable answer");
    match answer {
        Some(ClientReply::ProduceResponse { result, .. }) => {
            assert_eq!(result, ProduceResult::NotLeader, "never acknowledged")
        }
        other => panic!("unexpected answer {other:?}"),
    }

    producer
        .send(values("after", 0..20))
        .await
        .expect("produce to the new leader");
    let mut consumer = Consumer::new(test.client_config(), 0);
    let records = consumer.read_to_end(1000).await.expect("consume");
    assert!(
        records.iter().all(|record| record.value != b"stale"),
        "the stale record is gone"
    );
    assert_eq!(records.len(), 40);
}
