//! The rules that tell the historical variants apart beyond their truncation rule
//! (docs/protocol.md §5, second table), through the in-memory network of `core_support`:
//! fast restarts before KIP-380, the ZooKeeper controller's leader-epoch bump on an ISR change
//! it makes itself, and KAFKA-7128's ISR-join rule. Each test names the section it checks.

mod core_support;

use core_support::{isr, rid, Sim};
use insync_impl::core::Variant;
use insync_impl::protocol::{Acks, FetchState, PeerId, ProduceResult, Timer};

const CONTROLLER: PeerId = PeerId::Controller;
const fn broker(id: u32) -> PeerId {
    PeerId::Broker(id)
}

/// KIP-101's first scenario up to the restart: broker 2 holds `r1`, its fetch moved the
/// leader's HW past it (the client has its acknowledgement), and it crashes before it learns
/// the new HW; then it restarts and its registration is processed.
fn follower_restarts_before_learning_the_hw(variant: Variant) -> Sim {
    let mut sim = Sim::new(variant, 2, 2);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    assert!(sim.deliver(broker(1), broker(2)), "records to broker 2");
    assert!(sim.deliver(broker(2), broker(1)), "its next fetch");
    let acked = sim.next_produce_result();
    assert!(
        matches!(acked, Some((_, ProduceResult::Ok { .. }))),
        "{acked:?}"
    );
    assert_eq!(sim.snapshot(2).hw, 0, "broker 2 has not learned the HW");
    sim.crash(2);
    sim.restart(2);
    assert!(sim.deliver(broker(2), CONTROLLER), "RegisterBroker");
    sim
}

/// §4.10 `RegisterBroker`, §4.1 step 3. Goal: before KIP-380 a restart is fast: the
/// controller keeps broker 2 in the ISR, broker 2 truncates to its stale HW on its first view,
/// and when broker 1's session expires broker 2 is elected without the acknowledged record.
#[test]
fn hw_truncation_fast_restart_loses_an_acknowledged_record() {
    let mut sim = follower_restarts_before_learning_the_hw(Variant::HwTruncation);
    assert_eq!(sim.controller.snapshot().view.isr, isr(&[1, 2]));
    assert!(sim.deliver(CONTROLLER, broker(2)), "RegisterBrokerResponse");
    assert!(sim.deliver(CONTROLLER, broker(2)), "the unchanged view");
    assert!(sim.records(2).is_empty(), "truncated to its HW, 0");
    sim.fire_controller(Timer::Expire(1));
    assert!(
        sim.deliver(CONTROLLER, broker(2)),
        "the view electing broker 2"
    );
    let view = sim.snapshot(2).view.expect("a view");
    assert_eq!((view.leader, view.isr), (Some(2), isr(&[2])));
    assert!(sim.records(2).is_empty(), "the new leader lacks r1");
}

/// §4.1 step 3, §4.4. Goal: the same restart in `kip-101` keeps the record: the follower asks
/// the leader where its epoch ends instead of truncating to its HW.
#[test]
fn kip101_fast_restart_keeps_the_record() {
    let mut sim = follower_restarts_before_learning_the_hw(Variant::Kip101);
    assert_eq!(sim.controller.snapshot().view.isr, isr(&[1, 2]));
    assert!(sim.deliver(CONTROLLER, broker(2)), "RegisterBrokerResponse");
    assert!(sim.deliver(CONTROLLER, broker(2)), "the unchanged view");
    assert_eq!(sim.snapshot(2).fetch_state, FetchState::Truncating);
    assert_eq!(sim.records(2).len(), 1, "nothing truncated yet");
    sim.run();
    assert_eq!(
        sim.records(2).len(),
        1,
        "the leader has r1: nothing to truncate"
    );
}

/// §4.10 `RegisterBroker` (KIP-380). Goal: from `kip-320` on the controller notices the
/// restart: broker 2 leaves the ISR, with a new leader epoch (a ZooKeeper controller's ISR
/// change).
#[test]
fn kip320_restart_leaves_the_isr_with_a_new_leader_epoch() {
    let sim = follower_restarts_before_learning_the_hw(Variant::Kip320);
    let view = sim.controller.snapshot().view;
    assert_eq!((view.leader, view.isr.clone()), (Some(1), isr(&[1])));
    assert_eq!((view.leader_epoch, view.partition_epoch), (2, 2));
}

/// §4.10 publishing a view. Goal: the ZooKeeper-era controller bumps the leader epoch when a
/// follower's session expires and it leaves the ISR; KRaft (`kip-966`) does not.
#[test]
fn only_the_zookeeper_controller_bumps_the_epoch_on_its_own_isr_change() {
    for (variant, leader_epoch) in [(Variant::Kip320, 2), (Variant::Kip966, 1)] {
        let mut sim = Sim::new(variant, 3, 1);
        sim.run();
        sim.fire_controller(Timer::Expire(3));
        let view = sim.controller.snapshot().view;
        assert_eq!(view.isr, isr(&[1, 2]), "{variant:?}");
        assert_eq!(view.leader, Some(1), "{variant:?}");
        assert_eq!(view.leader_epoch, leader_epoch, "{variant:?}");
        sim.run();
        assert_eq!(sim.snapshot(2).view, Some(view), "{variant:?}: installed");
    }
}

/// §4.2 step 5 (KAFKA-7128). Goal: a new leader whose HW lags what its predecessor committed
/// adds a follower that reached only that HW to the ISR in `kip-279` (Kafka 2.0.0), and waits
/// until the follower reaches its epoch start offset in `kip-320`. Method: broker 4 leaves
/// the ISR and is cut off; `r1` is committed on brokers 1, 2 and 3 before they learn the HW;
/// broker 3 is cut off, broker 1 expires and broker 2 leads (its HW waits for broker 3);
/// broker 4 comes back with an empty log and fetches from broker 2.
#[test]
fn isr_join_waits_for_the_epoch_start_offset_from_kip320_on() {
    for (variant, joins_early) in [(Variant::Kip279, true), (Variant::Kip320, false)] {
        let mut sim = Sim::new(variant, 4, 1);
        sim.run();
        sim.block(4);
        sim.fire_controller(Timer::Expire(4));
        sim.run();
        sim.produce(1, rid(1, 0), Acks::All);
        for follower in [2, 3] {
            assert!(
                sim.deliver(broker(1), broker(follower)),
                "{variant:?}: records"
            );
            assert!(
                sim.deliver(broker(follower), broker(1)),
                "{variant:?}: next fetch"
            );
        }
        let acked = sim.next_produce_result();
        assert!(
            matches!(acked, Some((_, ProduceResult::Ok { .. }))),
            "{acked:?}"
        );
        sim.block(3);
        sim.fire_controller(Timer::Expire(1));
        while sim.deliver(CONTROLLER, broker(2)) {}
        let leader = sim.snapshot(2);
        assert_eq!(leader.view.as_ref().and_then(|v| v.leader), Some(2));
        assert_eq!((leader.hw, leader.leader_epoch_start_offset), (0, Some(1)));
        sim.unblock(4);
        while sim.deliver(CONTROLLER, broker(4)) {}
        assert!(
            sim.deliver(broker(4), broker(2)),
            "{variant:?}: broker 4's fetch at 0"
        );
        let pending = sim.snapshot(2).pending_isr;
        let expected = joins_early.then(|| isr(&[2, 3, 4]));
        assert_eq!(
            pending, expected,
            "{variant:?}: ISR proposal on a fetch at offset 0"
        );
    }
}
