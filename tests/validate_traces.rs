//! Trace validation of real runs (issue 10, docs/validation.md): a real cluster records its
//! trace logs, and `validate_dir` checks them against the model. A validator nobody has seen
//! reject anything proves nothing, so each run is also shown rejected: against the model of
//! another variant, with one event edited, with one event dropped.
//!
//! Method: a 3-broker cluster with test-speed clocks and `--trace-log`; single-record acks=all
//! produces (the model's produce is one record); a follower is killed (SIGKILL) and restarted
//! mid-run; the cluster is stopped cleanly so every log ends with its `Stop`. Waits poll
//! `Inspect`; nothing sleeps.

mod support;

use std::path::Path;

use insync_conformance::validate::{validate_dir, ValidateOptions, Verdict};
use insync_impl::client::{ProduceAcks, Producer};
use insync_impl::protocol::{ClientRequest, NodeId, PeerMessage};
use insync_impl::trace_log::{self, file, Event, Input, TracedMessage};
use insync_model::config::Variant;
use support::{values, TestCluster};
use tempfile::TempDir;

/// Which broker the scenario kills and restarts.
#[derive(Clone, Copy)]
enum Victim {
    Follower,
    Leader,
}

/// Runs the scenario on `variant` and returns its trace directory.
async fn traced_run(variant: &str) -> TempDir {
    traced_run_killing(variant, Victim::Follower).await
}

async fn traced_run_killing(variant: &str, victim: Victim) -> TempDir {
    traced_run_with(variant, victim, |_| {}).await
}

/// The scenario, with `while_down` done to the victim's data directory while it is down.
async fn traced_run_with(variant: &str, victim: Victim, while_down: fn(&Path)) -> TempDir {
    let trace = tempfile::tempdir().unwrap();
    let trace_flag = trace.path().display().to_string();
    let flags = ["--variant", variant, "--trace-log", trace_flag.as_str()];
    let mut test = TestCluster::start(3, &flags).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    for value in values("before", 0..5) {
        producer.send(vec![value]).await.expect("produce");
    }
    let leader = test.controller().await.view.leader.expect("a leader");
    let follower = match victim {
        Victim::Follower => (1..=3).find(|b| *b != leader).unwrap(),
        Victim::Leader => leader,
    };
    test.cluster.kill_broker(follower).await.expect("kill");
    test.wait_controller("the killed broker out of the ISR", |c| {
        !c.view.isr.contains(&follower) && c.view.leader.is_some_and(|l| l != follower)
    })
    .await;
    for value in values("during", 0..3) {
        producer.send(vec![value]).await.expect("produce");
    }
    while_down(&test.cluster.data_dir(follower));
    test.cluster
        .restart_broker(follower, &[])
        .await
        .expect("restart");
    test.wait_controller("the follower back in the ISR", |c| {
        c.view.isr.contains(&follower)
    })
    .await;
    for value in values("after", 0..3) {
        producer.send(vec![value]).await.expect("produce");
    }
    test.cluster.stop(std::time::Duration::from_secs(5)).await;
    trace
}

fn validate(dir: &Path, variant: Option<Variant>) -> Verdict {
    let verdict = validate_dir(dir, &ValidateOptions { variant }).expect("logs readable");
    eprintln!("{verdict}");
    if let Verdict::Accepted(accepted) = &verdict {
        accepted
            .notes
            .iter()
            .for_each(|note| eprintln!("  note: {note}"));
    }
    verdict
}

/// Rewrites `node`'s log through `edit` (which may change or drop events), re-framed.
fn rewrite(dir: &Path, node: NodeId, edit: impl FnOnce(&mut Vec<Event>)) -> TempDir {
    let target = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, target.path().join(path.file_name().unwrap())).unwrap();
    }
    let path = target.path().join(trace_log::file_name(node));
    let mut events = trace_log::read_log(&path).unwrap().events;
    edit(&mut events);
    let mut bytes = file::MAGIC.to_vec();
    for event in &events {
        file::encode_frame(event, &mut bytes).unwrap();
    }
    std::fs::write(&path, bytes).unwrap();
    target
}

fn rejected_at(verdict: &Verdict) -> (&str, u64) {
    match verdict {
        Verdict::Rejected(r) => (r.node.as_str(), r.node_index),
        other => panic!("expected a rejection, got {other}"),
    }
}

/// Drops the first event of `node` that `pick` selects, renumbering the rest so that only
/// the model (not the index check) can tell; returns the directory and the dropped index.
fn drop_event(dir: &Path, node: NodeId, pick: impl Fn(&Event) -> bool) -> (TempDir, u64) {
    let mut dropped = None;
    let target = rewrite(dir, node, |events| {
        let position = events.iter().position(&pick).expect("an event to drop");
        dropped = Some(events.remove(position).index);
        for (index, event) in events.iter_mut().enumerate() {
            event.index = index as u64;
        }
    });
    (target, dropped.unwrap())
}

/// Edits `leader`'s HW after its last produce (whose log end offset must be past
/// `log_end_offset_past`) one too high, and asserts that validation rejects that log at the
/// leader, on its HW.
fn the_leaders_hw_edited_is_rejected(trace: &Path, leader: u32, log_end_offset_past: u64) {
    let edited = rewrite(trace, NodeId::Broker(leader), |events| {
        let event = events
            .iter_mut()
            .rev()
            .find(|e| {
                is_receive_of(e, |m| {
                    matches!(m, TracedMessage::Request(ClientRequest::Produce { .. }))
                })
            })
            .expect("the leader handled a produce");
        let Some(trace_log::NodeState::Broker(snapshot)) = &mut event.state else {
            panic!("a broker's state")
        };
        assert!(
            snapshot.log_end_offset > log_end_offset_past,
            "{}",
            snapshot.log_end_offset
        );
        snapshot.hw += 1;
    });
    let verdict = validate(edited.path(), None);
    let Verdict::Rejected(rejection) = &verdict else {
        panic!("expected a rejection, got {verdict}")
    };
    let leader_name = format!("broker {leader}");
    assert_eq!(rejection.node, leader_name);
    let hw = format!("{leader_name}.hw");
    assert!(
        rejection.differences.iter().any(|d| d.contains(&hw)),
        "{verdict}"
    );
}

fn is_receive_of(event: &Event, wanted: fn(&TracedMessage) -> bool) -> bool {
    matches!(&event.input, Input::Message { message, .. } if wanted(message))
}

/// Goal: a clean run of the default variant is a behaviour of its model; the same logs with
/// one event's state edited, or one event dropped (indices renumbered, so only the model or
/// the channels can tell), are not.
///
/// Broker 1 leads throughout; broker 2 is the follower killed and restarted; broker 3 never
/// stops until the end, so its log has no unrecorded tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kip966_run_is_accepted_and_edits_of_it_are_rejected() {
    let trace = traced_run("kip-966").await;
    let trace = trace.path();
    let verdict = validate(trace, None);
    assert!(verdict.is_accepted(), "{verdict}");

    // Edit: the leader's HW after its last produce, one too high.
    the_leaders_hw_edited_is_rejected(trace, 1, 0);

    // Drop a flush of broker 3: its later states are more durable than the model's.
    let (dropped, index) = drop_event(trace, NodeId::Broker(3), |e| {
        e.input == Input::Timer(insync_impl::protocol::Timer::Flush)
    });
    let verdict = validate(dropped.path(), None);
    let (node, at) = rejected_at(&verdict);
    assert_eq!(node, "broker 3");
    assert!(at >= index, "rejected at {at}, dropped {index}");

    // Drop a fetch answer broker 3 handled: the fetch it sent next is gone with it, and the
    // leader received that fetch from nobody.
    let (dropped, _) = drop_event(trace, NodeId::Broker(3), |e| {
        is_receive_of(e, |m| {
            matches!(m, TracedMessage::Peer(PeerMessage::FetchResponse { .. }))
        }) && !e.sent.is_empty()
    });
    let verdict = validate(dropped.path(), None);
    let (node, _) = rejected_at(&verdict);
    assert_eq!(node, "broker 1");
}

/// Goal: an incarnation killed after it took its broker epoch and before its start was
/// recorded (D9: the long chaos run's Model FAIL) is explained, not refused: the next
/// recorded start skips an epoch, and validation takes the gap as a start that crashed at
/// once and says so. The skip is made as such an incarnation makes it: the broker-epoch
/// checkpoint moved one up while the broker is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incarnation_killed_before_its_start_was_recorded_is_explained() {
    fn take_an_epoch(data_dir: &Path) {
        use insync_impl::storage::checkpoint::{read_checkpoint, write_checkpoint};
        let path = data_dir.join(insync_impl::node::broker::BROKER_EPOCH_FILE_NAME);
        let taken: u32 = read_checkpoint(&path).unwrap().expect("a broker epoch");
        write_checkpoint(&path, &(taken + 1)).unwrap();
    }
    let trace = traced_run_with("kip-966", Victim::Follower, take_an_epoch).await;
    let verdict = validate(trace.path(), None);
    let Verdict::Accepted(accepted) = &verdict else {
        panic!("expected acceptance, got {verdict}")
    };
    assert!(
        accepted
            .notes
            .iter()
            .any(|n| n.contains("1 incarnation(s) before broker epoch 2 left no record")),
        "{:?}",
        accepted.notes
    );
}

/// Goal: the logs of nodes running `hw-truncation` are a behaviour of the `hw-truncation`
/// model, and the `kip-966` model rejects them at the first event where the two rule sets
/// differ: the session expiry of the killed follower, after which the ZooKeeper-era
/// controller bumps the leader epoch and KRaft's does not (KAFKA-15021).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hw_truncation_run_is_rejected_by_the_kip966_model() {
    let trace = traced_run("hw-truncation").await;
    let own = validate(trace.path(), None);
    assert!(own.is_accepted(), "{own}");
    let other = validate(trace.path(), Some(Variant::Kip966));
    let Verdict::Rejected(rejection) = &other else {
        panic!("expected a rejection, got {other}")
    };
    assert_eq!(rejection.node, "controller");
    assert!(rejection.event.contains("Expire(2)"), "{other}");
    assert!(
        rejection
            .differences
            .iter()
            .any(|d| d.contains("controller.view.leader_epoch")),
        "{other}"
    );
    assert!(rejection.command.contains("--variant kip-966"));

    // The command line says the same, with exit codes 0 and 1.
    let dir = trace.path().display().to_string();
    let (code, stdout, _) = support::cli::insync(&["validate", &dir, "--json"]);
    assert_eq!(code, 0, "{stdout}");
    let verdict: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(verdict["verdict"], "accepted");
    let (code, stdout, _) = support::cli::insync(&["validate", &dir, "--variant", "kip-966"]);
    assert_eq!(code, 1);
    assert!(stdout.starts_with("REJECTED against kip-966"), "{stdout}");
    let (code, _, stderr) = support::cli::insync(&["validate", "/nonexistent-trace-dir"]);
    assert_eq!(code, 2, "{stderr}");
}

/// Goal: a failover is a behaviour of the model too: the leader is killed mid-run, another
/// broker is elected, the old leader restarts as a follower and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kip966_run_with_a_leader_killed_is_accepted() {
    let trace = traced_run_killing("kip-966", Victim::Leader).await;
    let verdict = validate(trace.path(), None);
    assert!(verdict.is_accepted(), "{verdict}");
}

/// Goal: validation is not bounded by the model's old `u8` numbers, and takes batches: a run
/// of more than 255 records (batches of ten and single records, two producers) and more than
/// 255 events at the leader is accepted, and the same logs with one of the leader's late
/// states edited are still rejected at that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_the_old_u8_bounds_is_accepted_and_an_edit_of_it_rejected() {
    let trace = tempfile::tempdir().unwrap();
    let trace_flag = trace.path().display().to_string();
    let mut test = TestCluster::start(3, &["--trace-log", trace_flag.as_str()]).await;
    let mut batches = Producer::new(test.client_config(), ProduceAcks::All);
    let mut singles = Producer::new(test.client_config(), ProduceAcks::All);
    for round in 0..30u32 {
        let batch = values(&format!("batch-{round}"), 0..10);
        batches.send_batch(batch).await.expect("a batch");
        let single = values(&format!("single-{round}"), 0..1);
        singles.send_batch(single).await.expect("a record");
    }
    let leader = test.controller().await.view.leader.expect("a leader");
    test.cluster.stop(std::time::Duration::from_secs(5)).await;

    let verdict = validate(trace.path(), None);
    let Verdict::Accepted(accepted) = &verdict else {
        panic!("expected acceptance, got {verdict}")
    };
    let leader_name = format!("broker {leader}");
    let (_, leader_events) = accepted
        .nodes
        .iter()
        .find(|(name, _)| *name == leader_name)
        .expect("the leader's log");
    assert!(*leader_events > 255, "{accepted:?}");

    // Edit: the leader's HW after its last produce (past record 255), one too high.
    the_leaders_hw_edited_is_rejected(trace.path(), leader, 255);
}

/// Goal: a controller restart (which the model's controller never does) is validated as the
/// controller coming back in its durable state: a run whose controller is killed and
/// restarted, and then handles a follower's crash, is accepted; the same logs with the
/// restarted controller's first later state edited are rejected at that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restart_is_accepted_and_its_later_steps_still_checked() {
    let trace = tempfile::tempdir().unwrap();
    let trace_flag = trace.path().display().to_string();
    let mut test = TestCluster::start(3, &["--trace-log", trace_flag.as_str()]).await;
    let mut producer = Producer::new(test.client_config(), ProduceAcks::All);
    for value in values("before", 0..5) {
        producer.send(vec![value]).await.expect("produce");
    }
    test.cluster
        .kill_controller()
        .await
        .expect("kill the controller");
    test.cluster
        .restart_controller()
        .await
        .expect("restart the controller");
    let leader = test.controller().await.view.leader.expect("a leader");
    let follower = (1..=3).find(|b| *b != leader).unwrap();
    test.cluster.kill_broker(follower).await.expect("kill");
    test.wait_controller("the killed follower out of the ISR", |c| {
        !c.view.isr.contains(&follower)
    })
    .await;
    for value in values("after", 0..3) {
        producer.send(vec![value]).await.expect("produce");
    }
    test.cluster.stop(std::time::Duration::from_secs(5)).await;

    let verdict = validate(trace.path(), None);
    assert!(verdict.is_accepted(), "{verdict}");

    // Edit: the partition epoch of the controller's first state after its restart that
    // follows an input (its expiry of the follower, at the latest), one too high.
    let mut edited_index = None;
    let edited = rewrite(trace.path(), NodeId::Controller, |events| {
        let restart = events
            .iter()
            .rposition(|e| matches!(e.input, Input::Start(_)))
            .expect("a restart");
        assert!(restart > 0, "the controller's log holds both incarnations");
        let event = events[restart + 1..]
            .iter_mut()
            .find(|e| matches!(e.state, Some(trace_log::NodeState::Controller(_))))
            .expect("a state after the restart");
        let Some(trace_log::NodeState::Controller(snapshot)) = &mut event.state else {
            unreachable!("found above")
        };
        snapshot.view.partition_epoch += 1;
        edited_index = Some(event.index);
    });
    let verdict = validate(edited.path(), None);
    let (node, at) = rejected_at(&verdict);
    assert_eq!((node, Some(at)), ("controller", edited_index), "{verdict}");
}
