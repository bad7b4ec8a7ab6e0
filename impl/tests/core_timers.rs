//! The broker core's timers (docs/protocol.md §4.8 "caught up", §4.12): when each is armed,
//! when its clock restarts (`Effects::arm` of an already armed timer), and what firing it does.
//! Method: cores over in-memory logs, driven through the in-memory network of `core_support`;
//! timers fire by name, as the runtime's clock or the harness would fire them.

mod core_support;

use core_support::{rid, Sim};
use insync_impl::core::{Effects, Variant};
use insync_impl::protocol::{
    Acks, FetchResult, FetchState, NodeId, Outgoing, PeerId, PeerMessage, Timer,
};

fn fetch(fetch_offset: u64, last_fetched_epoch: u32) -> PeerMessage {
    PeerMessage::Fetch {
        leader_epoch: 1,
        fetch_offset,
        last_fetched_epoch,
        broker_epoch: 0,
    }
}

fn armed(sim: &Sim, broker: u32, timer: &Timer) -> bool {
    sim.broker(broker).armed_timers().contains(timer)
}

/// §4.8: a fetch at or past the LEO of the leader's last answer means the follower caught up,
/// and restarts `Lag(f)`'s clock although f is still behind the (moving) LEO; a fetch below it
/// does not. Method: broker 2's fetches are stepped by hand while the leader keeps appending.
#[test]
fn lag_clock_restarts_only_when_the_follower_catches_up() {
    let mut sim = Sim::new(Variant::Kip966, 2, 2);
    sim.run();
    sim.produce(1, rid(1, 0), Acks::One);
    let sent = sim.step_broker(1, PeerId::Broker(2), fetch(0, 0));
    assert!(
        sent.send
            .iter()
            .any(|out| out.target() == NodeId::Broker(2)),
        "records"
    );
    assert!(armed(&sim, 1, &Timer::Lag(2)), "behind the LEO 1");
    sim.produce(1, rid(1, 1), Acks::One);
    // At the LEO (1) the leader had when it answered, though the LEO is now 2: caught up.
    let caught_up: Effects = sim.step_broker(1, PeerId::Broker(2), fetch(1, 1));
    assert!(armed(&sim, 1, &Timer::Lag(2)), "still behind the LEO 2");
    assert!(caught_up.arm.contains(&Timer::Lag(2)), "the clock restarts");
    // The same fetch again (a re-send) is below the LEO of the last answer (2): no restart.
    let behind = sim.step_broker(1, PeerId::Broker(2), fetch(1, 1));
    assert!(armed(&sim, 1, &Timer::Lag(2)));
    assert!(
        !behind.arm.contains(&Timer::Lag(2)),
        "not caught up: the clock runs on"
    );
}

/// §4.12 `FetchRetry`: armed while a request is in flight, restarted by every request sent;
/// firing re-sends the same fetch, and the twin answer the leader then sends is ignored by the
/// echo rule (§4.3), so one fetch stream continues. Method: broker 2's first fetch is held at
/// the leader (parked); the retry fires; both answers are delivered.
#[test]
fn fetch_retry_resends_the_same_fetch_and_the_twin_answer_is_ignored() {
    let mut sim = Sim::new(Variant::Kip966, 2, 2);
    sim.run();
    assert!(armed(&sim, 2, &Timer::FetchRetry));
    assert!(
        armed(&sim, 1, &Timer::ParkedRelease(2)),
        "its fetch is parked"
    );
    let retry = sim.broker_mut(2).fire(&Timer::FetchRetry).unwrap();
    assert_eq!(
        retry.send,
        vec![Outgoing::Peer(PeerId::Broker(1), fetch(0, 0))]
    );
    assert_eq!(retry.arm, vec![Timer::FetchRetry], "a new period");
    sim.produce(1, rid(1, 0), Acks::All);
    sim.run();
    assert_eq!(sim.log_end_offset(2), 1);
    assert_eq!(sim.snapshot(1).hw, 1, "the record is committed once");
    assert_eq!(
        sim.next_produce_result().map(|(_, result)| result),
        Some(insync_impl::protocol::ProduceResult::Ok { offset: 0 })
    );
    assert_eq!(sim.snapshot(2).fetch_state, FetchState::Fetching);
}

/// §4.12 `ParkedRelease(f)`: firing answers the parked fetch with no records and the HW, and
/// disarms; the follower applies it and fetches again (parked anew, the timer re-armed).
#[test]
fn parked_release_answers_empty_and_the_follower_fetches_again() {
    let mut sim = Sim::new(Variant::Kip966, 2, 2);
    sim.run();
    let released = sim.broker_mut(1).fire(&Timer::ParkedRelease(2)).unwrap();
    let empty = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 0,
        result: FetchResult::Records {
            records: Vec::new(),
            high_watermark: 0,
        },
    };
    assert_eq!(
        released.send,
        vec![Outgoing::Peer(PeerId::Broker(2), empty.clone())]
    );
    assert_eq!(released.cancel, vec![Timer::ParkedRelease(2)]);
    assert!(!sim.snapshot(1).replicas[&2].parked);
    // Delivered by hand (the fire bypassed the network): the follower fetches again.
    let next = sim.step_broker(2, PeerId::Broker(1), empty);
    assert_eq!(
        next.send,
        vec![Outgoing::Peer(PeerId::Broker(1), fetch(0, 0))]
    );
    let parked = sim.step_broker(1, PeerId::Broker(2), fetch(0, 0));
    assert!(parked.send.is_empty(), "nothing new: parked");
    assert!(parked.arm.contains(&Timer::ParkedRelease(2)));
    assert!(sim.snapshot(1).replicas[&2].parked);
}

/// §4.12 `FetchBackoff`: a follower stopped by a fencing answer has it armed (and no
/// `FetchRetry`); in `kip-279` with a non-empty log firing it looks the epoch up again rather
/// than fetching on an unchecked suffix; in `kip-966` it fetches.
#[test]
fn fetch_backoff_resumes_by_the_variants_rule() {
    for (variant, looks_up) in [(Variant::Kip966, false), (Variant::Kip279, true)] {
        let mut sim = Sim::new(variant, 2, 2);
        sim.run();
        sim.produce(1, rid(1, 0), Acks::All);
        sim.run();
        assert_eq!(sim.log_end_offset(2), 1);
        let stop = PeerMessage::FetchResponse {
            leader_epoch: 1,
            fetch_offset: 1,
            result: FetchResult::NotLeader,
        };
        sim.step_broker(2, PeerId::Broker(1), stop);
        assert_eq!(sim.snapshot(2).fetch_state, FetchState::Idle);
        assert!(armed(&sim, 2, &Timer::FetchBackoff));
        assert!(!armed(&sim, 2, &Timer::FetchRetry));
        let resumed = sim.broker_mut(2).fire(&Timer::FetchBackoff).unwrap();
        let expected = match looks_up {
            true => PeerMessage::OffsetsForLeaderEpoch { requested_epoch: 1 },
            false => fetch(1, 1),
        };
        assert_eq!(
            resumed.send,
            vec![Outgoing::Peer(PeerId::Broker(1), expected)],
            "{variant:?}"
        );
        assert!(resumed.cancel.contains(&Timer::FetchBackoff));
        assert!(resumed.arm.contains(&Timer::FetchRetry));
    }
}

/// §4.12 `BrokerHeartbeat`: always armed; each firing sends one heartbeat and starts a new
/// period; firing an unarmed timer is refused.
#[test]
fn broker_heartbeat_is_always_armed_and_periodic() {
    let mut sim = Sim::new(Variant::Kip966, 2, 2);
    sim.run();
    for broker in [1, 2] {
        assert!(armed(&sim, broker, &Timer::BrokerHeartbeat));
        let first = sim.heartbeat(broker);
        assert!(matches!(
            first,
            PeerMessage::Heartbeat {
                broker_epoch: 0,
                ..
            }
        ));
        assert!(armed(&sim, broker, &Timer::BrokerHeartbeat));
    }
    assert!(
        sim.broker_mut(1).fire(&Timer::FetchRetry).is_err(),
        "a leader has none"
    );
    let fired = &sim.snapshot(1).timers_fired;
    assert_eq!(fired.get("BrokerHeartbeat"), Some(&1));
}
