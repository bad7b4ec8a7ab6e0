//! min.insync.replicas (issue #4, KIP-966): with `--min-isr 2` and two of three brokers down,
//! an acks=all produce is refused with NotEnoughReplicas and nothing is acknowledged that is
//! not committed; once a broker returns, producing resumes and the refused records never
//! appear.

mod support;

use std::time::Duration;

use insync_impl::client::{ClientError, Consumer, ProduceAcks, Producer};
use support::{values, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_below_min_isr_and_nothing_uncommitted_is_acknowledged() {
    let mut test = TestCluster::start(3, &["--min-isr", "2"]).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(values("committed", 0..50))
        .await
        .expect("produce with a full ISR");
    let leader = test.controller().await.view.leader.expect("a leader");
    let followers: Vec<u32> = (1..=3).filter(|id| *id != leader).collect();
    for follower in &followers {
        test.cluster.kill_broker(*follower).await.expect("kill");
    }
    test.wait_controller("the ISR shrunk to the leader", |controller| {
        controller.view.isr.len() == 1 && controller.view.leader == Some(leader)
    })
    .await;

    let mut config = test.client_config();
    config.delivery_timeout = Duration::from_millis(1500);
    let mut refused = Producer::new(config, ProduceAcks::All);
    let outcome = refused.send_batch(values("refused", 0..10)).await;
    match outcome {
        Err(ClientError::Rejected { reason }) => assert_eq!(reason, "NotEnoughReplicas"),
        other => panic!("expected NotEnoughReplicas, got {other:?}"),
    }
    let snapshot = test.broker(leader).await;
    assert_eq!(snapshot.hw, 50, "the HW did not move");
    assert_eq!(snapshot.log_end_offset, 50, "nothing was appended");
    assert!(
        snapshot.waiting.is_empty(),
        "nothing waits for an acknowledgement"
    );

    // One follower back: the ISR regains two members and producing resumes.
    test.cluster
        .restart_broker(followers[0], &[])
        .await
        .expect("restart");
    test.wait_controller("the ISR back at two", |controller| {
        controller.view.isr.len() >= 2
    })
    .await;
    producer
        .send(values("later", 0..50))
        .await
        .expect("produce after recovery");
    let mut consumer = Consumer::new(test.client_config(), 0);
    let records = consumer.read_to_end(1000).await.expect("consume");
    let read: Vec<Vec<u8>> = records.into_iter().map(|record| record.value).collect();
    let mut expected = values("committed", 0..50);
    expected.extend(values("later", 0..50));
    assert!(read == expected, "the refused records never appear");
}
