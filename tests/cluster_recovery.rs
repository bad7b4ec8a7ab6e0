//! Log recovery on a real broker (issue #4): a log whose last record is torn, and a log with a
//! flipped byte inside a record. Recovery keeps exactly the records before the first bad one,
//! the broker says so in its log, then rejoins: it catches up from the leader, its log equals
//! the leader's, and the controller puts it back in the ISR.
//!
//! Method: records of a fixed size, so record i starts at byte i * FRAME; a follower is killed
//! (SIGKILL), its `partition.log` damaged, more records are produced meanwhile, and it is
//! restarted on the same directory.

mod support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use insync_impl::client::{ProduceAcks, Producer};
use insync_impl::protocol::BrokerId;
use insync_impl::storage::log::LOG_FILE_NAME;
use insync_impl::storage::log_format::RECORD_HEADER_BYTES;
use support::TestCluster;

/// Every value is exactly this long, so every frame is RECORD_HEADER_BYTES + VALUE bytes.
const VALUE: usize = 16;
const FRAME: u64 = RECORD_HEADER_BYTES + VALUE as u64;
const FOLLOWER: BrokerId = 3;

fn fixed_values(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range
        .map(|index| format!("{index:0>width$}", width = VALUE).into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_corrupt_records_are_cut_and_the_broker_rejoins() {
    let mut test = TestCluster::start(3, &["--fsync", "always"]).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    producer
        .send(fixed_values(0..100))
        .await
        .expect("first 100 acknowledged");
    test.wait_broker(FOLLOWER, "the follower holds 100 records", |broker| {
        broker.log_end_offset == 100
    })
    .await;

    // A torn last record: the file ends 5 bytes into record 99's frame.
    damage_and_restart(&mut test, &mut producer, 100..150, |log| {
        let length = log.metadata().unwrap().len();
        assert_eq!(length, 100 * FRAME, "fixed-size frames");
        log.set_len(length - 5).unwrap();
    })
    .await;
    assert_eq!(
        kept_counts(&test),
        vec![99],
        "the torn record 99 and nothing else dropped"
    );

    // A flipped byte inside record 40's value: records 40.. are cut, 0..40 kept.
    damage_and_restart(&mut test, &mut producer, 150..200, |log| {
        let position = 40 * FRAME + RECORD_HEADER_BYTES + 3;
        let mut byte = [0u8; 1];
        log.read_exact_at(&mut byte, position).unwrap();
        log.write_all_at(&[byte[0] ^ 0x20], position).unwrap();
    })
    .await;
    assert_eq!(
        kept_counts(&test),
        vec![99, 40],
        "records from the corrupt one on are cut"
    );
    test.cluster.stop(std::time::Duration::from_secs(5)).await;
}

/// Kills the follower, damages its log with `damage`, produces `more` meanwhile, restarts it
/// and waits until it is back in the ISR with the leader's log.
async fn damage_and_restart(
    test: &mut TestCluster,
    producer: &mut Producer,
    more: std::ops::Range<u32>,
    damage: impl FnOnce(&std::fs::File),
) {
    let before = test.controller().await;
    test.cluster.kill_broker(FOLLOWER).await.expect("kill");
    let path = test.cluster.data_dir(FOLLOWER).join(LOG_FILE_NAME);
    let log = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    damage(&log);
    drop(log);
    let end = u64::from(more.end);
    producer
        .send(fixed_values(more))
        .await
        .expect("produce while the follower is down");
    test.cluster
        .restart_broker(FOLLOWER, &[])
        .await
        .expect("restart");
    let rejoined = test
        .wait_controller("the follower back in the ISR", |controller| {
            controller.view.isr.contains(&FOLLOWER)
                && controller.view.partition_epoch >= before.view.partition_epoch + 2
        })
        .await;
    let leader = test.broker(rejoined.view.leader.expect("a leader")).await;
    assert_eq!(leader.log_end_offset, end);
    let follower = test
        .wait_broker(FOLLOWER, "the follower caught up", |broker| {
            broker.log_end_offset == end
        })
        .await;
    assert_eq!(
        follower.log, leader.log,
        "the repaired replica matches the leader"
    );
}

/// `records_kept` of every recovery the follower logged, in order.
fn kept_counts(test: &TestCluster) -> Vec<u64> {
    let text = test.log_text(&format!("broker-{FOLLOWER}"));
    text.lines()
        .filter(|line| line.contains("data directory opened"))
        .filter_map(|line| {
            let tail = &line[line.find("records_kept: ")? + "records_kept: ".len()..];
            tail.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .filter(|kept| *kept != 0)
        .collect()
}
