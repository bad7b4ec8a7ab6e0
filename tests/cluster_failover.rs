//! Failover end to end (issue #4): 10 000 records with acks=all to three brokers; the leader
//! is killed with SIGKILL mid-stream; a new leader is elected and producing continues; the
//! killed broker restarts, truncates what it should, catches up and rejoins the ISR; every
//! acknowledged record is read back exactly once, in order.
//!
//! Method: one idempotent producer in a task sends the records in batches. Once a third is
//! acknowledged it tells the test and waits until the leader has been killed (a gate, not a
//! race with the producer's speed), so the other two thirds go through the failover: the
//! first batch after the kill meets a dead leader and is retried against the new one.
//! Everything else is awaited by polling `Inspect`.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use insync_impl::client::{Consumer, ProduceAcks, Producer};
use insync_impl::protocol::BrokerId;
use support::{values, TestCluster};

const RECORDS: u32 = 10_000;
const BATCH: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_stream_loses_and_duplicates_nothing() {
    let mut test = TestCluster::start(3, &[]).await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let produced = values("record", 0..RECORDS);
    let third = u64::from(RECORDS / 3);
    let (third_acknowledged, at_third) = tokio::sync::oneshot::channel::<()>();
    let (leader_killed, killed) = tokio::sync::oneshot::channel::<()>();
    let producer_task = {
        let config = test.client_config();
        let produced = produced.clone();
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            let mut producer = Producer::new(config, ProduceAcks::All);
            let mut gate = Some((third_acknowledged, killed));
            for batch in produced.chunks(BATCH) {
                producer
                    .send_batch(batch.to_vec())
                    .await
                    .expect("batch acknowledged");
                let total = acknowledged.fetch_add(batch.len() as u64, Ordering::SeqCst)
                    + batch.len() as u64;
                if total >= third {
                    if let Some((tell, wait)) = gate.take() {
                        tell.send(()).expect("the test listens");
                        wait.await.expect("the test kills the leader");
                    }
                }
            }
        })
    };

    // Kill the leader once a third of the records is acknowledged.
    let before = test
        .wait_controller("a leader", |controller| controller.view.leader.is_some())
        .await;
    let old_leader: BrokerId = before.view.leader.unwrap();
    at_third.await.expect("a third acknowledged");
    test.cluster.kill_broker(old_leader).await.expect("kill");
    leader_killed.send(()).expect("the producer waits");
    let at_kill = acknowledged.load(Ordering::SeqCst);

    let after = test.wait_new_leader(old_leader).await;
    assert!(after.view.leader_epoch > before.view.leader_epoch);
    assert!(
        !after.view.isr.contains(&old_leader),
        "the dead broker left the ISR"
    );
    let at_election = acknowledged.load(Ordering::SeqCst);
    eprintln!("acknowledged: {at_kill} at the kill, {at_election} at the election");
    assert!(
        at_election < u64::from(RECORDS),
        "the kill happened mid-stream"
    );

    // Producing continues through the new leader; then the old leader comes back.
    test.cluster
        .restart_broker(old_leader, &[])
        .await
        .expect("restart");
    producer_task.await.expect("producer finished");
    assert_eq!(acknowledged.load(Ordering::SeqCst), u64::from(RECORDS));

    let rejoined = test
        .wait_controller("the restarted broker back in the ISR", |controller| {
            controller.view.isr.contains(&old_leader)
        })
        .await;
    let new_leader = rejoined.view.leader.expect("a leader");
    let leader = test.broker(new_leader).await;
    let restarted = test
        .wait_broker(old_leader, "the restarted broker caught up", |broker| {
            broker.log_end_offset == leader.log_end_offset
        })
        .await;
    assert_eq!(
        restarted.log, leader.log,
        "the rejoined replica matches the leader"
    );

    // Every acknowledged record exactly once, in order.
    let mut consumer = Consumer::new(test.client_config(), 0);
    let records = consumer
        .read_to_end(2 * RECORDS as usize)
        .await
        .expect("consume");
    let read: Vec<Vec<u8>> = records.iter().map(|record| record.value.clone()).collect();
    assert_eq!(read.len(), produced.len(), "no record lost or duplicated");
    assert!(read == produced, "records read back in production order");
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.offset, index as u64);
    }
    test.cluster.stop(std::time::Duration::from_secs(5)).await;
}
