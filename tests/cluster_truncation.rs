//! A killed leader's unreplicated suffix is truncated when it comes back (KIP-101/320 via
//! KIP-966's divergence check): the old leader holds an `acks=1` record its followers never
//! fetched; a new leader is elected without it; on restart the old leader fetches with its
//! last epoch, is told where that epoch ends, truncates, catches up and rejoins the ISR.
//!
//! Method: the followers are paused (SIGSTOP) until the leader holds no parked fetch (so no
//! answer can carry the record to them even through a socket buffer); then the record is
//! produced with acks=1, the leader is killed (SIGKILL), the followers resumed.

mod support;

use insync_impl::client::{Consumer, ProduceAcks, Producer};
use support::{signal, values, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_truncates_what_it_alone_held() {
    let mut test = TestCluster::start(3, &[]).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(values("committed", 0..10))
        .await
        .expect("produce");
    let old_leader = test.controller().await.view.leader.expect("a leader");
    let followers: Vec<u32> = (1..=3).filter(|id| *id != old_leader).collect();
    let pids: Vec<u32> = followers
        .iter()
        .map(|id| test.cluster.broker_pid(*id).unwrap())
        .collect();
    for pid in &pids {
        signal(*pid, "-STOP");
    }
    test.wait_broker(old_leader, "no fetch parked at the leader", |broker| {
        broker.replicas.len() == 2 && broker.replicas.values().all(|replica| !replica.parked)
    })
    .await;
    let mut orphan = Producer::new(test.client_config(), ProduceAcks::One);
    orphan
        .send(vec![b"orphan".to_vec()])
        .await
        .expect("acks=1 append");
    test.wait_broker(old_leader, "the orphan appended", |broker| {
        broker.log_end_offset == 11
    })
    .await;
    test.cluster.kill_broker(old_leader).await.expect("kill");
    for pid in &pids {
        signal(*pid, "-CONT");
    }

    let elected = test.wait_new_leader(old_leader).await;
    producer
        .send(values("later", 0..10))
        .await
        .expect("produce to the new leader");
    test.cluster
        .restart_broker(old_leader, &[])
        .await
        .expect("restart");
    test.wait_controller("the old leader back in the ISR", |controller| {
        controller.view.isr.contains(&old_leader)
    })
    .await;
    let leader = test.broker(elected.view.leader.unwrap()).await;
    let restarted = test
        .wait_broker(old_leader, "caught up", |broker| {
            broker.log_end_offset == leader.log_end_offset
        })
        .await;
    assert_eq!(
        restarted.log, leader.log,
        "the divergent suffix was replaced"
    );
    let log = test.log_text(&format!("broker-{old_leader}"));
    assert!(
        log.contains("log truncated") && log.contains("log_end_offset=11 truncated_to=10"),
        "the restarted broker truncated the orphan at offset 10"
    );

    let mut consumer = Consumer::new(test.client_config(), 0);
    let records = consumer.read_to_end(1000).await.expect("consume");
    let read: Vec<Vec<u8>> = records.into_iter().map(|record| record.value).collect();
    let mut expected = values("committed", 0..10);
    expected.extend(values("later", 0..10));
    assert!(
        read == expected,
        "the orphan was never committed, everything else once"
    );
}
