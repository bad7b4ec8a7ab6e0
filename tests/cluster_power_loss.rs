//! Power loss on a real-time broker (issue 9): the supervisor's power-loss restart keeps
//! exactly what the broker's fsyncs covered (storage's file layer), and the broker recovers and
//! rejoins from that alone.
//!
//! Method: three brokers under `--fsync always`, with durability tracked
//! (`--simulate-power-loss-on-start`); 50 records acknowledged with `acks=all`; a follower is
//! SIGKILLed and restarted after a simulated power loss while 50 more are produced. Every
//! record it had appended was fsynced before it answered, so the power loss drops none; it then
//! catches up and is back in the ISR with the leader's log.

mod support;

use insync_impl::client::{ProduceAcks, Producer};
use insync_impl::protocol::BrokerId;
use support::{values, TestCluster};

const FOLLOWER: BrokerId = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_under_fsync_always_drops_nothing_the_broker_appended() {
    let tracked = ["--simulate-power-loss-on-start"];
    let mut test = TestCluster::start_with_broker_flags(3, &["--fsync", "always"], &tracked).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(values("before", 0..50))
        .await
        .expect("50 acknowledged");
    test.wait_broker(FOLLOWER, "the follower holds 50 records", |broker| {
        broker.log_end_offset == 50
    })
    .await;
    test.cluster.kill_broker(FOLLOWER).await.expect("kill");
    producer
        .send(values("during", 50..100))
        .await
        .expect("produce while the follower is down");
    let loss = test
        .cluster
        .restart_broker_after_power_loss(FOLLOWER)
        .await
        .expect("power-loss restart");
    assert_eq!(loss.log_end_offset_before, 50, "{loss:?}");
    assert_eq!(
        loss.records_dropped, 0,
        "every append was fsynced: {loss:?}"
    );
    let rejoined = test
        .wait_controller("the follower back in the ISR", |controller| {
            controller.view.isr.contains(&FOLLOWER)
        })
        .await;
    let leader = test.broker(rejoined.view.leader.expect("a leader")).await;
    let follower = test
        .wait_broker(FOLLOWER, "the follower caught up", |broker| {
            broker.log_end_offset == 100
        })
        .await;
    assert_eq!(
        follower.log, leader.log,
        "the recovered replica matches the leader"
    );
    test.cluster.stop(std::time::Duration::from_secs(5)).await;
}
