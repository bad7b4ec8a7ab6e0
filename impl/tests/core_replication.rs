//! The broker core in steady state, through the in-memory network of `core_support`:
//! replication, the HW, acks, ISR shrink and expansion, idempotent produce, fencing.

mod core_support;

use core_support::{isr, rid, Sim};
use insync_impl::core::Variant;
use insync_impl::protocol::{
    Acks, ClientReply, ClientRequest, ConsumeResult, FetchResult, FetchState, Outgoing, PeerId,
    PeerMessage, ProduceResult, Timer, View,
};
use insync_impl::storage::FsyncPolicy;

/// docs/protocol.md §4.2, §4.3, §4.7: records produced at the leader reach every follower in
/// batches, the HW moves to the smallest LEO of the ISR, and followers learn it from the
/// parked fetch answered when the HW moves.
#[test]
fn happy_path_replicates_and_advances_the_high_watermark() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    for follower in [2, 3] {
        assert!(
            sim.snapshot(1).replicas[&follower].parked,
            "caught-up followers are parked"
        );
    }
    let batch = ClientRequest::Produce {
        producer_id: 7,
        first_sequence: 0,
        values: vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
        acks: Acks::All,
    };
    sim.client_send(1, batch);
    assert_eq!(sim.snapshot(1).waiting, vec![(rid(7, 0), 2)]);
    sim.run();
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(7, 0), ProduceResult::Ok { offset: 0 }))
    );
    for broker in 1..=3 {
        let snapshot = sim.snapshot(broker);
        assert_eq!(snapshot.log_end_offset, 3, "broker {broker}");
        assert_eq!(snapshot.hw, 3, "broker {broker} learned the HW");
        assert_eq!(
            sim.record_ids(broker),
            vec![rid(7, 0), rid(7, 1), rid(7, 2)]
        );
    }
    // One fetch per follower carried the whole batch.
    let batches = sim.count_delivered(|message| {
        matches!(message, PeerMessage::FetchResponse { result: FetchResult::Records { records, .. }, .. } if records.len() == 3)
    });
    assert_eq!(batches, 2);
    // Consumers see committed records only, from the leader only.
    sim.client_send(2, consume(0));
    sim.client_send(1, consume(1));
    let answers: Vec<ClientReply> = sim
        .client_inbox
        .drain(..)
        .map(|(_, message)| message)
        .collect();
    assert_eq!(
        answers[0],
        ClientReply::ConsumeResponse {
            result: ConsumeResult::NotLeader
        }
    );
    let ClientReply::ConsumeResponse {
        result: ConsumeResult::Ok {
            records,
            high_watermark,
        },
    } = &answers[1]
    else {
        panic!("leader answers a consume: {:?}", answers[1]);
    };
    assert_eq!((records.len(), *high_watermark), (2, 3));
}

fn consume(fetch_offset: u64) -> ClientRequest {
    ClientRequest::Consume {
        fetch_offset,
        max_records: 10,
    }
}

/// §4.5 step 4, §4.7: an acks=all produce waits until every ISR member has the record; an
/// acks=1 produce is answered on append.
#[test]
fn acks_all_waits_for_the_isr() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.block(3);
    sim.produce(1, rid(1, 0), Acks::One);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    sim.produce(1, rid(2, 0), Acks::All);
    sim.run();
    assert_eq!(sim.next_produce_result(), None, "broker 3 has not fetched");
    assert_eq!(sim.snapshot(1).hw, 0);
    assert_eq!(sim.snapshot(1).waiting, vec![(rid(2, 0), 1)]);
    sim.unblock(3);
    sim.run();
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(2, 0), ProduceResult::Ok { offset: 1 }))
    );
    assert_eq!(sim.snapshot(1).hw, 2);
}

/// §4.5 step 2: with `min_insync_replicas = 2` and an ISR of one, acks=all is refused and
/// acks=1 is not; §4.7 (`kip-966`): the HW does not move while the ISR is that small.
#[test]
fn not_enough_replicas_with_an_isr_of_one() {
    let mut sim = Sim::new(Variant::Kip966, 2, 2);
    sim.run();
    sim.fire_controller(Timer::Expire(2));
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1]));
    sim.produce(1, rid(1, 0), Acks::All);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::NotEnoughReplicas))
    );
    sim.produce(1, rid(1, 0), Acks::One);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    sim.run();
    assert_eq!(
        sim.snapshot(1).hw,
        0,
        "kip-966: no HW advance below min_insync_replicas"
    );
}

/// §4.8 and §4.2 step 5: a follower that falls behind is shrunk out of the ISR by `Lag(f)`;
/// once it catches up to the HW and the leader's epoch start it is proposed back.
#[test]
fn isr_shrinks_on_lag_and_expands_after_catch_up() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    assert!(
        lag_timers(&sim, 1).is_empty(),
        "caught-up followers are not lagging"
    );
    sim.block(3);
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    assert!(sim.broker(1).armed_timers().contains(&Timer::Lag(3)));
    assert_eq!(sim.next_produce_result(), None);
    sim.fire_broker(1, Timer::Lag(3));
    assert_eq!(sim.snapshot(1).pending_isr, Some(isr(&[1, 2])));
    assert!(
        lag_timers(&sim, 1).is_empty(),
        "no Lag while a proposal is pending"
    );
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1, 2]));
    assert_eq!(
        sim.snapshot(1).view.map(|view| view.isr),
        Some(isr(&[1, 2]))
    );
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    sim.unblock(3);
    sim.run();
    assert_eq!(
        sim.view().isr,
        isr(&[1, 2, 3]),
        "broker 3 caught up and rejoined"
    );
    assert_eq!(sim.view().partition_epoch, 3);
    assert_eq!(sim.record_ids(3), vec![rid(1, 0)]);
}

/// §4.7: when a shrink lets the HW pass a waiting acks=all batch with fewer than
/// `min_insync_replicas` members left, the batch is refused with
/// `NotEnoughReplicasAfterAppend`, not acknowledged (`kip-320`, where the HW is not held back by
/// min ISR); the retry is a duplicate, refused while the ISR is small and acknowledged at its
/// original offset once the follower is back.
#[test]
fn shrink_below_min_isr_after_append_is_not_acknowledged() {
    let mut sim = Sim::new(Variant::Kip320, 2, 2);
    sim.run();
    sim.block(2);
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    sim.fire_broker(1, Timer::Lag(2));
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1]));
    assert_eq!(
        sim.snapshot(1).hw,
        1,
        "kip-320: the HW passes the batch on the leader alone"
    );
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::NotEnoughReplicasAfterAppend))
    );
    sim.produce(1, rid(1, 0), Acks::All);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::NotEnoughReplicas))
    );
    sim.unblock(2);
    sim.run();
    assert_eq!(
        sim.view().isr,
        isr(&[1, 2]),
        "broker 2 caught up and rejoined"
    );
    sim.produce(1, rid(1, 0), Acks::All);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    assert_eq!(sim.record_ids(1), vec![rid(1, 0)], "appended once");
}

/// §4.5 step 3 and docs/kafka-notes.md "Producer": a retried batch is answered with its
/// original offset (acks=1 at once, acks=all once committed), also by a new leader that
/// rebuilt its producer table from its own log; a gap in sequences is refused.
#[test]
fn idempotent_retry_returns_the_original_offset() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.produce(1, rid(5, 0), Acks::All);
    sim.produce(1, rid(5, 1), Acks::One);
    sim.run();
    sim.client_inbox.clear();
    sim.produce(1, rid(5, 0), Acks::One);
    sim.produce(1, rid(5, 0), Acks::All);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(5, 0), ProduceResult::Ok { offset: 0 }))
    );
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(5, 0), ProduceResult::Ok { offset: 0 }))
    );
    sim.produce(1, rid(5, 3), Acks::One);
    let gap = ProduceResult::OutOfOrderSequence { expected: 2 };
    assert_eq!(sim.next_produce_result(), Some((rid(5, 3), gap)));
    assert_eq!(
        sim.log_end_offset(1),
        2,
        "neither the retry nor the gap appended"
    );
    // Leader change: broker 2 becomes leader and knows producer 5 from its own log.
    sim.fire_controller(Timer::Expire(1));
    sim.run();
    assert_eq!(sim.view().leader, Some(2));
    sim.produce(2, rid(5, 1), Acks::One);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(5, 1), ProduceResult::Ok { offset: 1 }))
    );
    sim.produce(2, rid(5, 2), Acks::One);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(5, 2), ProduceResult::Ok { offset: 2 }))
    );
}

/// §4.2 step 1 (`kip-320`, `kip-966`): a fetch from an older leader epoch is fenced, from a
/// newer one is unknown, to a non-leader is `NotLeader`; §4.3: each stops the follower until
/// a new view. The older variants ignore the request epoch.
#[test]
fn fetch_fencing_by_leader_epoch() {
    let fetch = |leader_epoch| PeerMessage::Fetch {
        leader_epoch,
        fetch_offset: 0,
        last_fetched_epoch: 0,
        broker_epoch: 0,
    };
    let answer = |sim: &mut Sim, broker, message| {
        let effects = sim.step_broker(broker, PeerId::Broker(2), message);
        match effects.send.as_slice() {
            [Outgoing::Peer(_, PeerMessage::FetchResponse { result, .. })] => result.clone(),
            other => panic!("one fetch response expected: {other:?}"),
        }
    };
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    assert_eq!(
        answer(&mut sim, 1, fetch(0)),
        FetchResult::FencedLeaderEpoch
    );
    assert_eq!(
        answer(&mut sim, 1, fetch(2)),
        FetchResult::UnknownLeaderEpoch
    );
    assert_eq!(answer(&mut sim, 3, fetch(1)), FetchResult::NotLeader);
    // The follower stops on any of them.
    let response = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 0,
        result: FetchResult::UnknownLeaderEpoch,
    };
    sim.step_broker(2, PeerId::Broker(1), response);
    assert_eq!(sim.snapshot(2).fetch_state, FetchState::Idle);
    // A newer view with a new leader epoch starts it again.
    let view = View {
        leader: Some(1),
        leader_epoch: 2,
        isr: isr(&[1, 2, 3]),
        partition_epoch: 2,
    };
    let effects = sim.step_broker(2, PeerId::Controller, PeerMessage::LeaderAndIsr(view));
    assert!(matches!(
        effects.send.as_slice(),
        [Outgoing::Peer(
            PeerId::Broker(1),
            PeerMessage::Fetch {
                leader_epoch: 2,
                ..
            }
        )]
    ));
    assert_eq!(sim.snapshot(2).fetch_state, FetchState::Fetching);

    let mut old = Sim::new(Variant::Kip279, 3, 2);
    old.run();
    old.produce(1, rid(1, 0), Acks::One);
    assert!(matches!(
        answer(&mut old, 1, fetch(0)),
        FetchResult::Records { .. }
    ));
}

/// §2 durable state: the HW checkpoint lags the HW until `HwCheckpoint` fires, and a restart
/// starts from the checkpoint, not from the HW the broker had in memory.
#[test]
fn hw_checkpoint_lags_until_its_timer_fires() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    let follower = sim.snapshot(3);
    assert_eq!((follower.hw, follower.hw_checkpoint), (1, 0));
    assert!(follower.armed_timers.contains(&Timer::HwCheckpoint));
    sim.crash(3);
    sim.restart(3);
    let restarted = sim.snapshot(3);
    assert_eq!(
        restarted.hw, 0,
        "the HW in memory was lost with the process"
    );
    assert!(!restarted.armed_timers.contains(&Timer::HwCheckpoint));
}

/// §4.10 `RegisterBroker`, §2 "Initial state": a restarted follower registers, leaves the
/// ISR, catches up from the leader, and is proposed back into the ISR.
#[test]
fn restarted_follower_registers_catches_up_and_rejoins() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    sim.fire_broker(3, Timer::HwCheckpoint);
    assert!(!sim.snapshot(3).armed_timers.contains(&Timer::HwCheckpoint));
    sim.crash(3);
    sim.produce(1, rid(2, 0), Acks::All);
    sim.restart(3);
    assert_eq!(
        sim.snapshot(3).view,
        None,
        "a restarted broker holds no view"
    );
    assert_eq!(sim.snapshot(3).hw, 1, "HW checkpoint survived");
    sim.deliver(PeerId::Broker(3), PeerId::Controller);
    assert_eq!(
        sim.view().isr,
        isr(&[1, 2]),
        "a registering broker leaves the ISR"
    );
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1, 2, 3]));
    assert_eq!(sim.record_ids(3), vec![rid(1, 0), rid(2, 0)]);
    assert!(sim.client_inbox.iter().all(|(_, message)| matches!(
        message,
        ClientReply::ProduceResponse {
            result: ProduceResult::Ok { .. },
            ..
        }
    )));
}

/// §2 durable state under `fsync = lazy`: an append arms `Flush` and stays volatile until the
/// timer fires; a crash keeps the flushed prefix, not nothing and not everything.
#[test]
fn lazy_appends_wait_for_the_flush_timer() {
    let mut sim = Sim::with(Variant::Kip966, 3, 2, false, FsyncPolicy::Lazy);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::One);
    let leader = sim.snapshot(1);
    assert_eq!((leader.log_end_offset, leader.durable_end_offset), (1, 0));
    assert!(leader.armed_timers.contains(&Timer::Flush));
    sim.fire_broker(1, Timer::Flush);
    let leader = sim.snapshot(1);
    assert_eq!(leader.durable_end_offset, 1);
    assert!(!leader.armed_timers.contains(&Timer::Flush));
    sim.produce(1, rid(2, 0), Acks::One);
    assert!(sim.snapshot(1).armed_timers.contains(&Timer::Flush));
    sim.crash(1);
    sim.restart(1);
    assert_eq!(
        sim.record_ids(1),
        vec![rid(1, 0)],
        "the flushed prefix survives, the unflushed record does not"
    );
    assert_eq!(sim.snapshot(1).durable_end_offset, 1);
}

/// §2: under `fsync = always` every append is durable before anything is sent, so `Flush` is
/// never armed.
#[test]
fn always_appends_never_arm_flush() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    for broker in 1..=3 {
        let snapshot = sim.snapshot(broker);
        assert_eq!(snapshot.durable_end_offset, snapshot.log_end_offset);
        assert!(!snapshot.armed_timers.contains(&Timer::Flush));
    }
}

/// The `Lag(f)` timers armed on `broker`.
fn lag_timers(sim: &Sim, broker: u32) -> Vec<Timer> {
    let armed = sim.broker(broker).armed_timers().iter();
    armed
        .filter(|t| matches!(t, Timer::Lag(_)))
        .cloned()
        .collect()
}
