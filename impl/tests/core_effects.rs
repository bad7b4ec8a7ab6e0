//! Persistence is an effect (docs/protocol.md §2 "Persist before send", docs/architecture.md
//! "The write path"): what each step asks to write, in which order, and whether its messages
//! must wait for the writes to be durable (`Effects::must_sync`).
//!
//! Method: cores over in-memory logs in the `core_support` network, one setting of `fsync` at
//! a time; the step under test is driven by hand and its `Effects` inspected. The simulator
//! applies every write, as the runtime does, and the core asserts that at the next input.

mod core_support;

use core_support::{broker, fire_applied, isr, rid, Sim, CLIENT, CONTROLLER};
use insync_impl::core::{Effects, Variant, Write};
use insync_impl::protocol::{
    Acks, ClientReply, ClientRequest, FetchResult, Outgoing, PeerMessage, Timer, View,
};
use insync_impl::storage::FsyncPolicy;

fn sim(brokers: u32, min_insync_replicas: u32, fsync: FsyncPolicy) -> Sim {
    let mut sim = Sim::with(Variant::Kip966, brokers, min_insync_replicas, false, fsync);
    sim.run();
    sim
}

fn produce(sequence: u32, acks: Acks) -> ClientRequest {
    ClientRequest::Produce {
        producer_id: 1,
        first_sequence: sequence,
        values: vec![b"value".to_vec()],
        acks,
    }
}

fn write_kinds(effects: &Effects) -> Vec<&'static str> {
    let kind = |write: &Write| match write {
        Write::Append(_) => "Append",
        Write::TruncateTo(_) => "TruncateTo",
        Write::Flush => "Flush",
        Write::CheckpointHighWatermark(_) => "CheckpointHighWatermark",
    };
    effects.writes.iter().map(kind).collect()
}

fn sends_produce_response(effects: &Effects) -> bool {
    let answer = |outgoing: &Outgoing| matches!(outgoing, Outgoing::Client(to, ClientReply::ProduceResponse { .. }) if *to == CLIENT);
    effects.send.iter().any(answer)
}

/// `fsync = always`: the acks=1 answer leaves only after the append is fsynced; the core says
/// so with a `Flush` after the `Append` and `must_sync`. Under `lazy` the same step appends
/// only, and its answer need not wait (a crash may lose the record, as the model allows).
#[test]
fn an_acks_1_answer_waits_for_the_fsync_only_under_always() {
    for (fsync, kinds, must_sync) in [
        (FsyncPolicy::Always, vec!["Append", "Flush"], true),
        (FsyncPolicy::Lazy, vec!["Append"], false),
    ] {
        let mut sim = sim(2, 1, fsync);
        let effects = sim.step_client(1, produce(0, Acks::One));
        assert_eq!(write_kinds(&effects), kinds, "{fsync}");
        assert_eq!(effects.must_sync(), must_sync, "{fsync}");
        assert!(sends_produce_response(&effects), "acks=1 answers at once");
        let snapshot = sim.snapshot(1);
        let durable = if must_sync { 1 } else { 0 };
        assert_eq!(snapshot.durable_end_offset, durable, "{fsync}");
    }
}

/// A follower's next `Fetch` after it appended fetched records carries its LEO, which the
/// leader counts as a copy when it advances the HW: under `always` that `Fetch` waits for the
/// follower's fsync. The leader's acks=all answer, sent when that fetch moves the HW, waits for
/// nothing: the leader's step writes nothing, and the record was fsynced when appended.
/// Method: the follower's fetch is parked at the leader; each step is then driven by hand.
#[test]
fn a_followers_fetch_after_an_append_waits_under_always_and_the_later_ack_does_not() {
    let mut sim = sim(2, 2, FsyncPolicy::Always);
    let appended = sim.step_client(1, produce(0, Acks::All));
    assert_eq!(write_kinds(&appended), ["Append", "Flush"]);
    assert!(
        appended.must_sync(),
        "the parked fetch's answer waits for the fsync"
    );
    assert!(
        !sends_produce_response(&appended),
        "acks=all waits for the HW"
    );
    let fetched = sim.step_broker(2, broker(1), parked_answer(&appended));
    assert_eq!(write_kinds(&fetched), ["Append", "Flush"]);
    assert!(fetched.must_sync(), "the next Fetch waits for the fsync");
    let [Outgoing::Peer(to, next_fetch)] = fetched.send.as_slice() else {
        panic!("one next fetch to the leader: {:?}", fetched.send);
    };
    assert_eq!(*to, broker(1), "the next fetch goes to the leader");
    let acked = sim.step_broker(1, broker(2), next_fetch.clone());
    assert!(acked.writes.is_empty() && !acked.must_sync());
    assert!(sends_produce_response(&acked), "the HW passed the record");
    assert_eq!(sim.snapshot(2).durable_end_offset, 1);
}

fn is_records(message: &PeerMessage) -> bool {
    matches!(
        message,
        PeerMessage::FetchResponse {
            result: FetchResult::Records { records, .. },
            ..
        } if !records.is_empty()
    )
}

/// The answer to broker 2's parked fetch among a leader step's messages.
fn parked_answer(effects: &Effects) -> PeerMessage {
    let answer = effects.send.iter().find_map(|outgoing| match outgoing {
        Outgoing::Peer(to, message) if *to == broker(2) && is_records(message) => Some(message),
        _ => None,
    });
    answer.expect("the parked fetch is answered").clone()
}

/// A truncation is durable under both settings, so the follower's `Fetch` after it waits for
/// it. Method: broker 2 holds two records of epoch 1; a new view of epoch 2 (same leader)
/// makes it fetch again, and a `DivergingEpoch` answer cuts one record.
#[test]
fn a_fetch_after_a_truncation_waits_for_it_under_both_settings() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Lazy] {
        let mut sim = sim(2, 2, fsync);
        for sequence in 0..2 {
            sim.produce(1, rid(1, sequence), Acks::All);
            sim.run();
        }
        let view = View {
            leader: Some(1),
            leader_epoch: 2,
            isr: isr(&[1, 2]),
            partition_epoch: 2,
        };
        let refollow = sim.step_broker(2, CONTROLLER, PeerMessage::LeaderAndIsr(view));
        assert!(refollow.writes.is_empty(), "{fsync}");
        let diverging = PeerMessage::FetchResponse {
            leader_epoch: 2,
            fetch_offset: 2,
            result: FetchResult::DivergingEpoch {
                epoch: 1,
                end_offset: 1,
            },
        };
        let effects = sim.step_broker(2, broker(1), diverging);
        assert_eq!(effects.writes, [Write::TruncateTo(1)], "{fsync}");
        assert!(effects.must_sync(), "{fsync}");
        assert!(
            matches!(
                effects.send.as_slice(),
                [Outgoing::Peer(
                    to,
                    PeerMessage::Fetch {
                        fetch_offset: 1,
                        ..
                    }
                )] if *to == broker(1)
            ),
            "{fsync}: the next fetch, from the truncation point: {:?}",
            effects.send
        );
        let snapshot = sim.snapshot(2);
        assert_eq!(
            (snapshot.log_end_offset, snapshot.durable_end_offset),
            (1, 1)
        );
    }
}

/// Under `lazy` the `Flush` timer's step is one `Flush`, and the `HwCheckpoint` timer's one
/// checkpoint write of the HW as it is then; each leaves its timer disarmed.
#[test]
fn the_durability_timers_write_one_flush_and_one_checkpoint() {
    let mut sim = sim(1, 1, FsyncPolicy::Lazy);
    sim.produce(1, rid(1, 0), Acks::All);
    let core = sim.broker(1);
    assert!(core.armed_timers().contains(&Timer::Flush));
    assert!(core.armed_timers().contains(&Timer::HwCheckpoint));
    let flushed = fire_applied(sim.broker_mut(1), &Timer::Flush);
    assert_eq!(flushed.writes, [Write::Flush]);
    assert!(flushed.cancel.contains(&Timer::Flush));
    let checkpointed = fire_applied(sim.broker_mut(1), &Timer::HwCheckpoint);
    assert_eq!(checkpointed.writes, [Write::CheckpointHighWatermark(1)]);
    assert!(checkpointed.cancel.contains(&Timer::HwCheckpoint));
    let snapshot = sim.snapshot(1);
    assert_eq!(
        (snapshot.durable_end_offset, snapshot.hw_checkpoint),
        (1, 1)
    );
}
