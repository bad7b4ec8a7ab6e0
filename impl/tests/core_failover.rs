//! The broker and controller cores across failures, through the in-memory network of
//! `core_support`: elections, truncation of divergent suffixes by each variant's mechanism,
//! the LESO rule, eligible leader replicas, and unclean election.

mod core_support;

use core_support::{isr, rid, step_applied, Sim};
use insync_impl::core::memlog::MemLog;
use insync_impl::core::{BrokerCore, BrokerStart, ProtocolConfig, Variant};
use insync_impl::protocol::{
    Acks, FetchResult, OffsetsForLeaderEpochResult, Outgoing, PeerId, PeerMessage, ProduceResult,
    Record, Timer, View,
};
use insync_impl::storage::FsyncPolicy;

/// Builds the classic divergence: r1 committed everywhere, r2 on brokers 1 and 2 only, r3 on
/// the old leader 1 only; then leader 1's session expires, broker 2 is elected (clean: it is
/// in the ISR), and the new leader appends r4 in epoch 2. Delivers the new view to every
/// broker before anything else, so no stale epoch-1 answer is taken for the new leader's.
fn diverge_and_fail_over(variant: Variant) -> Sim {
    let mut sim = Sim::new(variant, 3, 1);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    sim.block(3);
    sim.produce(1, rid(2, 0), Acks::One);
    sim.run();
    sim.block(2);
    sim.produce(1, rid(3, 0), Acks::One);
    sim.run();
    assert_eq!(sim.record_ids(1), vec![rid(1, 0), rid(2, 0), rid(3, 0)]);
    assert_eq!(sim.record_ids(2), vec![rid(1, 0), rid(2, 0)]);
    assert_eq!(sim.record_ids(3), vec![rid(1, 0)]);
    sim.fire_controller(Timer::Expire(1));
    let view = View {
        leader: Some(2),
        leader_epoch: 2,
        isr: isr(&[2, 3]),
        partition_epoch: 2,
    };
    assert_eq!(
        sim.view(),
        view,
        "clean election of the lowest unfenced ISR member"
    );
    for broker in [2, 3, 1] {
        sim.deliver(PeerId::Controller, PeerId::Broker(broker));
    }
    sim.unblock(2);
    sim.unblock(3);
    sim.run();
    sim.produce(2, rid(4, 0), Acks::One);
    sim.run();
    sim
}

fn assert_converged_without_r3(sim: &Sim) {
    let expected = vec![rid(1, 0), rid(2, 0), rid(4, 0)];
    for broker in 1..=3 {
        assert_eq!(sim.record_ids(broker), expected, "broker {broker}");
    }
    let epochs: Vec<u32> = sim
        .records(1)
        .iter()
        .map(|record| record.leader_epoch)
        .collect();
    assert_eq!(epochs, vec![1, 1, 2]);
}

/// `kip-966` / `kip-320` (§4.2 step 2, §4.3 `DivergingEpoch`): the old leader's fetch carries
/// `last_fetched_epoch = 1` at offset 3; epoch 1 ends at offset 2 on the new leader, which
/// answers `DivergingEpoch { 1, 2 }`; the follower truncates r3 and fetches r4.
#[test]
fn kip966_follower_truncates_through_diverging_epoch() {
    for variant in [Variant::Kip966, Variant::Kip320] {
        let sim = diverge_and_fail_over(variant);
        assert_converged_without_r3(&sim);
        let diverging = sim.count_delivered(|message| {
            matches!(
                message,
                PeerMessage::FetchResponse {
                    result: FetchResult::DivergingEpoch {
                        epoch: 1,
                        end_offset: 2
                    },
                    ..
                }
            )
        });
        assert_eq!(diverging, 1, "{variant:?}");
        assert_eq!(
            sim.count_delivered(|m| matches!(m, PeerMessage::OffsetsForLeaderEpoch { .. })),
            0
        );
    }
}

/// `kip-279` / `kip-101` (§4.1, §4.4): becoming follower with a non-empty log, the old leader
/// asks where its last epoch (1) ends on the new leader: offset 2 in both variants here, so
/// it truncates r3 before fetching.
#[test]
fn kip279_and_kip101_followers_truncate_through_the_epoch_lookup() {
    for variant in [Variant::Kip279, Variant::Kip101] {
        let sim = diverge_and_fail_over(variant);
        assert_converged_without_r3(&sim);
        let lookups = sim.count_delivered(|message| {
            matches!(
                message,
                PeerMessage::OffsetsForLeaderEpochResponse {
                    result: OffsetsForLeaderEpochResult::Ok {
                        epoch: 1,
                        end_offset: 2
                    }
                }
            )
        });
        assert_eq!(
            lookups, 2,
            "{variant:?}: brokers 1 and 3 both looked up epoch 1"
        );
        assert_eq!(
            sim.count_delivered(|m| matches!(
                m,
                PeerMessage::FetchResponse {
                    result: FetchResult::DivergingEpoch { .. },
                    ..
                }
            )),
            0
        );
    }
}

/// `hw-truncation` (§4.1): becoming follower, the old leader truncates to its own HW (1),
/// dropping r2 and r3, and fetches r2 and r4 back from the new leader.
#[test]
fn hw_truncation_follower_truncates_to_its_high_watermark() {
    let sim = diverge_and_fail_over(Variant::HwTruncation);
    assert_converged_without_r3(&sim);
    let refetched = sim.count_delivered(|message| {
        matches!(message, PeerMessage::FetchResponse { result: FetchResult::Records { records, .. }, .. }
            if records.first().is_some_and(|record| record.offset == 1 && record.producer_id == 2 && record.leader_epoch == 1))
    });
    assert!(
        refetched >= 2,
        "brokers 1 and 3 fetched r2 from the new leader"
    );
}

/// docs/kafka-notes.md "LESO rule", §4.2 step 5: a new leader adds a follower back to the
/// ISR only once its fetch offset reaches both the HW and the start offset of the leader's
/// own epoch.
#[test]
fn leso_rule_blocks_expansion_below_the_epoch_start() {
    let config = ProtocolConfig {
        variant: Variant::Kip966,
        unclean_leader_election: false,
        min_insync_replicas: 1,
        brokers: vec![1, 2, 3],
    };
    let first = View {
        leader: Some(1),
        leader_epoch: 1,
        isr: isr(&[1, 2, 3]),
        partition_epoch: 1,
    };
    let start = BrokerStart::Initial(first);
    let (mut broker, _) =
        BrokerCore::new(2, config, MemLog::new(FsyncPolicy::Always), start).unwrap();
    let record = |offset| Record {
        offset,
        leader_epoch: 1,
        producer_id: 9,
        sequence: offset as u32,
        value: vec![],
    };
    let records = vec![record(0), record(1)];
    let response = FetchResult::Records {
        records,
        high_watermark: 0,
    };
    step_applied(
        &mut broker,
        PeerId::Broker(1),
        PeerMessage::FetchResponse {
            leader_epoch: 1,
            fetch_offset: 0,
            result: response,
        },
    );
    let second = View {
        leader: Some(2),
        leader_epoch: 2,
        isr: isr(&[1, 2]),
        partition_epoch: 2,
    };
    step_applied(
        &mut broker,
        PeerId::Controller,
        PeerMessage::LeaderAndIsr(second),
    );
    let snapshot = broker.snapshot().unwrap();
    assert_eq!(
        (snapshot.hw, snapshot.leader_epoch_start_offset),
        (0, Some(2))
    );
    let fetch = |fetch_offset| PeerMessage::Fetch {
        leader_epoch: 2,
        fetch_offset,
        last_fetched_epoch: 1,
        broker_epoch: 0,
    };
    let effects = step_applied(&mut broker, PeerId::Broker(3), fetch(1));
    assert!(
        !proposes(&effects),
        "offset 1 >= HW 0 but below the epoch start 2"
    );
    let effects = step_applied(&mut broker, PeerId::Broker(3), fetch(2));
    assert!(proposes(&effects), "offset 2 reaches the epoch start");
}

/// Whether a broker's step proposes an ISR to the controller.
fn proposes(effects: &insync_impl::core::Effects) -> bool {
    effects
        .send
        .iter()
        .any(|out| matches!(out, Outgoing::Peer(_, PeerMessage::AlterPartition { .. })))
}

/// `kip-966` (§4.10 ELR, election): a follower shrunk out while the remaining ISR was below
/// `min_insync_replicas` joins the ELR; when the last ISR member's session expires, the ELR
/// member is elected, holds every committed record, and becomes the ISR.
#[test]
fn kip966_elects_an_eligible_leader_replica() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    sim.block(3);
    sim.produce(1, rid(2, 0), Acks::One);
    sim.run();
    sim.fire_broker(1, Timer::Lag(3));
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1, 2]));
    assert!(
        sim.controller.state().elr.is_empty(),
        "the remaining ISR {{1, 2}} is large enough"
    );
    sim.block(2);
    sim.produce(1, rid(3, 0), Acks::One);
    sim.fire_broker(1, Timer::Lag(2));
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1]));
    assert_eq!(sim.controller.state().elr, isr(&[2]));
    sim.fire_controller(Timer::Expire(1));
    let view = sim.view();
    assert_eq!(
        (view.leader, view.leader_epoch, view.isr),
        (Some(2), 2, isr(&[2]))
    );
    // Broker 2 left the ELR as it was elected; broker 1, the fenced ISR member it replaced,
    // lost nothing and joins it (§4.10, as in the model).
    assert_eq!(sim.controller.state().elr, isr(&[1]));
    assert!(
        sim.record_ids(2).contains(&rid(1, 0)),
        "the ELR leader holds the committed record"
    );
}

/// §4.10 unclean election, §2: with `unclean_leader_election`, a broker outside the ISR is
/// elected when no ISR member is alive, and a record acknowledged with acks=all is lost.
/// Without it (`kip-966`), the partition stays leaderless instead.
#[test]
fn unclean_election_loses_a_committed_record() {
    for unclean in [true, false] {
        let mut sim = Sim::with(Variant::Kip966, 2, 1, unclean, FsyncPolicy::Always);
        sim.run();
        sim.block(2);
        sim.produce(1, rid(1, 0), Acks::One);
        sim.fire_broker(1, Timer::Lag(2));
        sim.run();
        assert_eq!(sim.view().isr, isr(&[1]));
        sim.produce(1, rid(2, 0), Acks::All);
        sim.client_inbox.clear();
        sim.produce(1, rid(2, 0), Acks::All);
        assert_eq!(
            sim.next_produce_result(),
            Some((rid(2, 0), ProduceResult::Ok { offset: 1 }))
        );
        sim.fire_controller(Timer::Expire(1));
        if unclean {
            assert_eq!(sim.view().leader, Some(2), "broker 2 was elected uncleanly");
            assert!(
                !sim.record_ids(2).contains(&rid(2, 0)),
                "the acked record is not on it"
            );
            sim.unblock(2);
            sim.run();
            assert!(
                !sim.record_ids(1).contains(&rid(2, 0)),
                "and the old leader truncated it"
            );
        } else {
            assert_eq!(sim.view().leader, None);
        }
    }
}

/// `kip-966` ELR safety (§4.10 ELR, and the rule docs/protocol.md omits): a broker that left
/// the ISR while it was small must leave the ELR once the ISR regains `min_insync_replicas`
/// members, because the HW advances again without it. Here broker 2 leaves the ISR (joining
/// the ELR), broker 3 rejoins and a record is committed without broker 2; when the ISR then
/// collapses, broker 2 must not be elected.
#[test]
fn kip966_elr_is_cleared_when_the_isr_regains_min_isr() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.block(3);
    sim.produce(1, rid(1, 0), Acks::One);
    sim.run();
    sim.fire_broker(1, Timer::Lag(3));
    sim.run();
    sim.block(2);
    sim.produce(1, rid(2, 0), Acks::One);
    sim.fire_broker(1, Timer::Lag(2));
    sim.run();
    assert_eq!(
        (sim.view().isr, sim.controller.state().elr.clone()),
        (isr(&[1]), isr(&[2]))
    );
    sim.unblock(3);
    sim.run();
    assert_eq!(sim.view().isr, isr(&[1, 3]));
    assert!(
        sim.controller.state().elr.is_empty(),
        "ISR is back at min_insync_replicas"
    );
    sim.client_inbox.clear();
    sim.produce(1, rid(3, 0), Acks::All);
    sim.run();
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(3, 0), ProduceResult::Ok { offset: 2 }))
    );
    sim.fire_controller(Timer::Expire(3));
    sim.fire_controller(Timer::Expire(1));
    assert_eq!(sim.controller.state().elr, isr(&[3]));
    assert_eq!(
        sim.view().leader,
        None,
        "broker 2 lacks the committed record: not electable"
    );
}
