//! The revised contract (docs/protocol.md after the model's KIP-903 revision) through the
//! in-memory network of `core_support`: broker epochs and the registration answer (D1), the
//! `FetchResponse` fetch-offset echo (D3), the controller's `Heartbeat(b)` timer (D5), a new
//! leader epoch on re-election after a restart (D2), and the HW after any
//! `AlterPartitionResponse` (D4). Each test names the section (and the DIVERGENCES.md entry)
//! it checks.

mod core_support;

use std::collections::BTreeMap;

use core_support::{broker, isr, rid, Sim, CONTROLLER};
use insync_impl::core::{ControllerCore, ProtocolConfig, Variant};
use insync_impl::protocol::{
    Acks, AlterPartitionError, FetchResult, FetchState, Outgoing, PeerId, PeerMessage,
    ProduceResult, Record, Timer, View,
};

fn controller(variant: Variant, brokers: u32) -> ControllerCore {
    let config = ProtocolConfig {
        variant,
        unclean_leader_election: false,
        min_insync_replicas: 1,
        brokers: (1..=brokers).collect(),
    };
    ControllerCore::new(config, None).0
}

/// §2, §4.1 step 0, §4.10 `RegisterBroker` (KIP-903). Goal: a restarted broker carries broker
/// epoch 1 (its first restart), ignores views until the controller answers its registration,
/// and the controller answers before it sends the view. Method: crash and restart broker 2,
/// hand it the current view before its registration is processed, then deliver in order.
#[test]
fn restarted_broker_ignores_views_until_its_registration_is_answered() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    let first = sim.snapshot(2);
    assert_eq!((first.broker_epoch, first.registered), (0, true));
    sim.crash(2);
    sim.restart(2);
    let restarted = sim.snapshot(2);
    assert_eq!((restarted.broker_epoch, restarted.registered), (1, false));
    // A view elected before the controller heard of the restart: ignored.
    let stale = sim.view();
    let effects = sim.step_broker(2, CONTROLLER, PeerMessage::LeaderAndIsr(stale));
    assert!(effects.send.is_empty());
    assert_eq!(sim.snapshot(2).view, None);

    assert!(sim.deliver(broker(2), CONTROLLER));
    assert_eq!(
        sim.delivered.last().map(|(_, _, m)| m.clone()),
        Some(PeerMessage::RegisterBroker { broker_epoch: 1 })
    );
    let state = sim.controller.snapshot();
    assert_eq!(state.broker_epochs, BTreeMap::from([(2, 1)]));
    assert_eq!(
        state.view.isr,
        isr(&[1, 3]),
        "a restarted broker leaves the ISR"
    );
    // The answer first, then the view (to everyone: it changed).
    assert!(sim.deliver(CONTROLLER, broker(2)));
    assert!(sim.snapshot(2).registered);
    assert_eq!(
        sim.snapshot(2).view,
        None,
        "the answer alone installs nothing"
    );
    assert!(sim.deliver(CONTROLLER, broker(2)));
    assert_eq!(sim.snapshot(2).view, Some(sim.view()));
    sim.run();
    // It fetches with its broker epoch (a record makes it fetch again after the leader has
    // installed the view without it), the leader records the epoch, the expansion names it.
    sim.produce(1, rid(1, 0), Acks::One);
    sim.run();
    let expansion = sim.delivered.iter().find_map(|(_, _, m)| match m {
        PeerMessage::AlterPartition { broker_epochs, .. } if !broker_epochs.is_empty() => {
            Some(broker_epochs.clone())
        }
        _ => None,
    });
    assert_eq!(expansion, Some(vec![(2, 1)]));
    assert_eq!(sim.snapshot(1).replicas[&2].broker_epoch, 1);
    assert_eq!(sim.view().isr, isr(&[1, 2, 3]));
}

/// §4.10 `AlterPartition` (KIP-903, `kip-966`). Goal: an expansion qualified by a fetch of an
/// earlier incarnation is refused with `IneligibleReplica` (the model's counterexample: a stale
/// fetch put a restarted, emptied broker back in the ISR); the same proposal at the registered
/// broker epoch is accepted; `kip-320` has no such check. Method: drive the controller alone.
#[test]
fn kip903_expansion_with_a_stale_broker_epoch_is_ineligible() {
    for (variant, stale_answer) in [
        (Variant::Kip966, Err(AlterPartitionError::IneligibleReplica)),
        (Variant::Kip320, Ok(())),
    ] {
        let mut core = controller(variant, 3);
        core.step_peer(broker(3), PeerMessage::RegisterBroker { broker_epoch: 1 })
            .unwrap();
        let view = core.state().view.clone();
        assert_eq!(view.isr, isr(&[1, 2]));
        let propose = |core: &mut ControllerCore, epoch| {
            let message = PeerMessage::AlterPartition {
                isr: isr(&[1, 2, 3]),
                leader_epoch: view.leader_epoch,
                partition_epoch: view.partition_epoch,
                broker_epochs: vec![(3, epoch)],
            };
            let effects = core.step_peer(broker(1), message).unwrap();
            match effects.send.as_slice() {
                [Outgoing::Peer(
                    PeerId::Broker(1),
                    PeerMessage::AlterPartitionResponse { result },
                )] => result.clone().map(|_| ()),
                other => panic!("one answer to the leader expected: {other:?}"),
            }
        };
        assert_eq!(propose(&mut core, 0), stale_answer, "{variant:?}");
        if stale_answer.is_err() {
            assert_eq!(propose(&mut core, 1), Ok(()));
        }
        assert_eq!(core.state().view.isr, isr(&[1, 2, 3]));
    }
}

/// §4.3 (D3). Goal: a follower applies only the answer to the fetch it would send now: a
/// `FetchResponse` whose echoed `fetch_offset` is not its LEO (the answer to a fetch its
/// previous incarnation sent, held parked by the leader) is ignored, and so is any
/// `FetchResponse` while it is not `Fetching`. Method: step broker 2 directly.
#[test]
fn follower_ignores_a_fetch_response_for_another_fetch() {
    let mut sim = Sim::new(Variant::Kip966, 2, 1);
    sim.run();
    let record = Record {
        offset: 0,
        leader_epoch: 1,
        producer_id: 1,
        sequence: 0,
        value: b"v".to_vec(),
    };
    let answer = |fetch_offset| PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset,
        result: FetchResult::Records {
            records: vec![record.clone()],
            high_watermark: 0,
        },
    };
    let effects = sim.step_broker(2, broker(1), answer(0));
    assert_eq!(effects.send.len(), 1, "the next fetch");
    assert_eq!(sim.log_end_offset(2), 1);
    // The same answer again (to a fetch at offset 0): the LEO is 1 now, so it is stale.
    let effects = sim.step_broker(2, broker(1), answer(0));
    assert!(effects.send.is_empty());
    assert_eq!(sim.log_end_offset(2), 1, "no duplicate record");
    // A fencing answer stops the follower; a later answer finds it `Idle` and is ignored.
    let fenced = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 1,
        result: FetchResult::NotLeader,
    };
    sim.step_broker(2, broker(1), fenced);
    assert_eq!(sim.snapshot(2).fetch_state, FetchState::Idle);
    let late = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 1,
        result: FetchResult::Records {
            records: Vec::new(),
            high_watermark: 1,
        },
    };
    assert!(sim.step_broker(2, broker(1), late).send.is_empty());
    assert_eq!(sim.snapshot(2).hw, 0);
}

/// §4.10 `Heartbeat(b)` (D5). Goal: the timer is armed exactly for fenced brokers; firing it
/// lets b back in like a registration at its registered broker epoch (answer first, then the
/// view); in real time the `Heartbeat` message of the registered incarnation fires it and one
/// of another incarnation is ignored. Method: expire broker 3, then bring it back both ways.
#[test]
fn heartbeat_timer_lets_a_falsely_suspected_broker_back_in() {
    let mut core = controller(Variant::Kip966, 3);
    core.fire(&Timer::Expire(3)).unwrap();
    let armed = [Timer::Expire(1), Timer::Expire(2), Timer::Heartbeat(3)];
    assert_eq!(core.armed_timers(), &armed.into_iter().collect());
    let effects = core.fire(&Timer::Heartbeat(3)).unwrap();
    let view = core.state().view.clone();
    assert_eq!(
        effects.send,
        vec![
            Outgoing::Peer(broker(3), PeerMessage::RegisterBrokerResponse),
            Outgoing::Peer(broker(3), PeerMessage::LeaderAndIsr(view)),
        ],
        "unchanged view (3 had already left the ISR): to 3 only"
    );
    assert!(core.state().fenced.is_empty());
    assert_eq!(core.state().broker_epochs, BTreeMap::from([(3, 0)]));
    assert!(core.fire(&Timer::Heartbeat(3)).is_err(), "no longer armed");

    core.fire(&Timer::Expire(3)).unwrap();
    let stale = PeerMessage::Heartbeat {
        partition_epoch: 1,
        broker_epoch: 7,
    };
    assert!(core.step_peer(broker(3), stale).unwrap().send.is_empty());
    assert!(core.state().fenced.contains(&3));
    let current = PeerMessage::Heartbeat {
        partition_epoch: 1,
        broker_epoch: 0,
    };
    let effects = core.step_peer(broker(3), current).unwrap();
    assert_eq!(
        effects.send[0],
        Outgoing::Peer(broker(3), PeerMessage::RegisterBrokerResponse)
    );
    assert!(core.state().fenced.is_empty());
}

/// §4.10 election (D2). Goal: re-electing the same broker after its restart starts a new
/// leader epoch (its log may have lost records of the old one) and the view goes to every
/// broker. Method: `kip-320`, 2 brokers; broker 1's session expires (broker 2 leads alone),
/// then broker 2 restarts and registers.
#[test]
fn reelection_after_restart_bumps_the_leader_epoch() {
    let mut core = controller(Variant::Kip320, 2);
    core.fire(&Timer::Expire(1)).unwrap();
    let led = core.state().view.clone();
    assert_eq!(
        (led.leader, led.leader_epoch, led.isr.clone()),
        (Some(2), 2, isr(&[2]))
    );
    let effects = core
        .step_peer(broker(2), PeerMessage::RegisterBroker { broker_epoch: 1 })
        .unwrap();
    let view = View {
        leader: Some(2),
        leader_epoch: 3,
        isr: isr(&[2]),
        partition_epoch: 3,
    };
    assert_eq!(core.state().view, view);
    assert_eq!(
        effects.send,
        vec![
            Outgoing::Peer(broker(2), PeerMessage::RegisterBrokerResponse),
            Outgoing::Peer(broker(1), PeerMessage::LeaderAndIsr(view.clone())),
            Outgoing::Peer(broker(2), PeerMessage::LeaderAndIsr(view)),
        ]
    );
}

/// §4.7, §4.9 (D4). Goal: a refused ISR expansion's `pending_isr` is cleared and the HW is
/// re-evaluated at once, answering the acks=all produce it held back. Method: `kip-966`, 2
/// brokers; broker 2 is fenced and leaves the ISR but keeps fetching; its fetch at the HW makes
/// the leader propose it back (HW now counts it); the controller refuses (fenced).
#[test]
fn refused_expansion_clears_pending_isr_and_advances_the_hw() {
    let mut sim = Sim::new(Variant::Kip966, 2, 1);
    sim.run();
    sim.fire_controller(Timer::Expire(2));
    sim.run();
    sim.produce(1, rid(1, 0), Acks::All);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    // The parked fetch's answer, then broker 2's next fetch at the HW: expansion proposed.
    assert!(sim.deliver(broker(1), broker(2)));
    assert!(sim.deliver(broker(2), broker(1)));
    assert_eq!(sim.snapshot(1).pending_isr, Some(isr(&[1, 2])));
    sim.produce(1, rid(1, 1), Acks::All);
    assert_eq!(
        sim.snapshot(1).hw,
        1,
        "the proposed member holds the HW back"
    );
    assert_eq!(sim.next_produce_result(), None);
    assert!(sim.deliver(broker(1), CONTROLLER));
    assert!(sim.deliver(CONTROLLER, broker(1)));
    assert!(matches!(
        sim.delivered.last(),
        Some((
            _,
            _,
            PeerMessage::AlterPartitionResponse {
                result: Err(AlterPartitionError::IneligibleReplica)
            }
        ))
    ));
    let leader = sim.snapshot(1);
    assert_eq!((leader.pending_isr, leader.hw), (None, 2));
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 1), ProduceResult::Ok { offset: 1 }))
    );
}

/// §6 (real time): a restarted broker's heartbeat repeats its registration until it is
/// answered (a broken connection may have lost it); afterwards it is a `Heartbeat` at its
/// broker epoch. Method: crash and restart broker 3, read its heartbeat before and after.
#[test]
fn unregistered_broker_heartbeats_its_registration() {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.crash(3);
    sim.restart(3);
    assert_eq!(
        sim.heartbeat(3),
        PeerMessage::RegisterBroker { broker_epoch: 1 }
    );
    sim.run();
    assert!(matches!(
        sim.heartbeat(3),
        PeerMessage::Heartbeat {
            broker_epoch: 1,
            ..
        }
    ));
}

/// §4.10 `Heartbeat(b)` is not a restart. Goal: a falsely suspected broker that heartbeats
/// back keeps its ELR place and, as the last ISR member, its ISR place, so the partition gets
/// a leader again (before, both were taken away as for a restart and the partition stayed
/// offline; docs/counterexamples.md, "Liveness"). Method: `kip-966`, 2 brokers; with min ISR
/// 2, expire broker 2 (it joins the ELR), bring it back, expire the leader: broker 2 is
/// elected from the ELR. With min ISR 1, expire both (broker 1 stays the last ISR member, no
/// leader), bring broker 1 back: it leads again.
#[test]
fn heartbeat_keeps_isr_and_elr_places() {
    let core = |min_insync_replicas| {
        let config = ProtocolConfig {
            variant: Variant::Kip966,
            unclean_leader_election: false,
            min_insync_replicas,
            brokers: vec![1, 2],
        };
        ControllerCore::new(config, None).0
    };
    let mut elr = core(2);
    elr.fire(&Timer::Expire(2)).unwrap();
    assert!(elr.state().elr.contains(&2));
    elr.fire(&Timer::Heartbeat(2)).unwrap();
    assert!(
        elr.state().elr.contains(&2),
        "a heartbeat keeps the ELR place"
    );
    elr.fire(&Timer::Expire(1)).unwrap();
    let view = &elr.state().view;
    assert_eq!((view.leader, view.isr.clone()), (Some(2), isr(&[2])));

    let mut last = core(1);
    last.fire(&Timer::Expire(2)).unwrap();
    last.fire(&Timer::Expire(1)).unwrap();
    assert_eq!(last.state().view.leader, None);
    assert_eq!(last.state().view.isr, isr(&[1]), "the last member stays");
    last.fire(&Timer::Heartbeat(1)).unwrap();
    let view = &last.state().view;
    assert_eq!((view.leader, view.isr.clone()), (Some(1), isr(&[1])));
}
