//! KIP-966's eligible leader replicas are emptied once the ISR has `min_insync_replicas`
//! members again (docs/protocol.md §4.10, Kafka's `PartitionChangeBuilder`).
//!
//! Goal: show the record the rule saves. Without it, a follower dropped into the ELR while
//! the ISR was small stays there after the ISR regrows; records are then committed without
//! it, and when the ISR members are fenced it is elected and the acknowledged record is gone
//! (the implementation's core proptest found this). The path needs 3 brokers, 2 ISR shrinks
//! and 2 expiries: an exhaustive check of those bounds exceeds 33 million unique states
//! (5 minutes, unfinished), so the test steers the model instead.
//!
//! Method: from the initial state, reach each milestone of that path by a breadth-first search
//! of the model's own transitions (`Model::actions`, `Model::next_state`), then assert what the
//! controller does at the end: with the rule the partition goes offline (no leader holds the
//! acknowledged record, and none lacking it is elected); without it broker 2 is elected.

use std::collections::{HashSet, VecDeque};

use insync_model::controller::ControllerState;
use insync_model::model::SystemState;
use insync_model::types::{BrokerId, BrokerSet};
use insync_model::{Config, Fsync, InsyncModel};
use stateright::Model;

/// The first state reachable from `from` in at most `depth_max` steps that satisfies `goal`.
fn reach(
    model: &InsyncModel,
    from: SystemState,
    depth_max: usize,
    goal: impl Fn(&SystemState) -> bool,
) -> Option<SystemState> {
    let mut seen = HashSet::from([from.clone()]);
    let mut queue = VecDeque::from([(from, 0)]);
    let mut actions = Vec::new();
    while let Some((state, depth)) = queue.pop_front() {
        if goal(&state) {
            return Some(state);
        }
        if depth == depth_max {
            continue;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&state, action) else {
                continue;
            };
            if model.within_boundary(&next) && seen.insert(next.clone()) {
                queue.push_back((next, depth + 1));
            }
        }
    }
    None
}

fn controller(state: &SystemState) -> &ControllerState {
    state.actor_states[0].as_controller().expect("controller")
}

fn set(ids: &[u8]) -> BrokerSet {
    ids.iter()
        .fold(BrokerSet::empty(), |s, b| s.with(BrokerId(*b)))
}

fn holds_record(state: &SystemState, broker: usize, record_id: u32) -> bool {
    let log = &state.actor_states[broker].as_broker().expect("broker").log;
    log.iter().any(|r| r.record_id == record_id)
}

#[test]
fn elr_is_emptied_when_the_isr_regains_min_isr() {
    let mut cfg = Config::new(3);
    cfg.crashes = 0;
    cfg.reads = 0;
    cfg.isr_shrinks = 2;
    cfg.expiries = 2;
    cfg.fsync = Fsync::Always;
    assert_eq!(cfg.min_insync_replicas, 2);
    let model = InsyncModel::new(cfg);
    let init = model.init_states().remove(0);

    // Leader 1 shrinks the ISR to itself; broker 2 (removed last) joins the ELR.
    let small = reach(&model, init, 12, |s| {
        let c = controller(s);
        c.view.isr == set(&[1]) && c.elr == set(&[2]) && c.fenced.is_empty()
    })
    .expect("the ISR shrinks to the leader");
    // Broker 3 catches up and is re-added: the ISR has min ISR members again.
    let regrown = reach(&model, small, 8, |s| controller(s).view.isr == set(&[1, 3]))
        .expect("broker 3 rejoins the ISR");
    assert!(
        controller(&regrown).elr.is_empty(),
        "the ELR must be emptied when the ISR has min_insync_replicas members again: {:?}",
        controller(&regrown).elr
    );
    // A record is committed by {1, 3} and acknowledged; broker 2 never fetched it.
    let acked = reach(&model, regrown, 10, |s| {
        let client = s.actor_states[model.cfg.client_index()]
            .as_client()
            .unwrap();
        client.acked == [1] && !holds_record(s, 2, 1) && controller(s).view.isr == set(&[1, 3])
    })
    .expect("a record is acknowledged without broker 2");
    // Both ISR members' sessions expire.
    let fenced = reach(&model, acked, 4, |s| controller(s).fenced == set(&[1, 3]))
        .expect("brokers 1 and 3 are fenced");
    let c = controller(&fenced);
    assert_eq!(
        c.view.leader, None,
        "no broker that lacks acknowledged record 1 may be elected (view {:?}, ELR {:?})",
        c.view, c.elr
    );
    assert!(!holds_record(&fenced, 2, 1), "broker 2 lacks the record");
}
