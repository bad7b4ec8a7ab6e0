//! The controller's state survives its own crash (issue #4): after SIGKILL and a restart on
//! the same directory it resumes the same view, fenced set and ELR, brokers keep serving, and
//! it still detects a broker failure and elects a new leader afterwards.

mod support;

use insync_impl::client::{Consumer, ProduceAcks, Producer};
use support::{values, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_its_view_and_still_elects() {
    let mut test = TestCluster::start(3, &[]).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(values("first", 0..50))
        .await
        .expect("produce");
    // Move the view past the initial one, so resuming it is not the same as starting fresh.
    let before = test.controller().await;
    let follower = (1..=3).find(|id| Some(*id) != before.view.leader).unwrap();
    test.cluster.kill_broker(follower).await.expect("kill");
    let shrunk = test
        .wait_controller("the follower fenced", |controller| {
            controller.fenced.contains(&follower)
        })
        .await;

    test.cluster.kill_controller().await.expect("kill");
    test.cluster
        .restart_controller()
        .await
        .expect("restart the controller");
    let resumed = test.wait_controller("the controller back", |_| true).await;
    assert_eq!(resumed.view, shrunk.view, "same view after the restart");
    assert_eq!(resumed.fenced, shrunk.fenced);
    assert_eq!(resumed.elr, shrunk.elr);

    // It still runs the cluster: the follower rejoins, a leader failure elects another.
    test.cluster
        .restart_broker(follower, &[])
        .await
        .expect("restart the follower");
    test.wait_controller("the follower back in the ISR", |controller| {
        controller.view.isr.contains(&follower) && controller.fenced.is_empty()
    })
    .await;
    let leader = resumed.view.leader.expect("a leader");
    test.cluster.kill_broker(leader).await.expect("kill");
    test.wait_controller("a new leader", |controller| {
        controller
            .view
            .leader
            .is_some_and(|elected| elected != leader)
    })
    .await;
    producer
        .send(values("second", 0..50))
        .await
        .expect("produce after failover");
    let mut consumer = Consumer::new(test.client_config(), 0);
    let records = consumer.read_to_end(1000).await.expect("consume");
    let read: Vec<Vec<u8>> = records.into_iter().map(|record| record.value).collect();
    let mut expected = values("first", 0..50);
    expected.extend(values("second", 0..50));
    assert!(read == expected, "every record once, in order");
}
