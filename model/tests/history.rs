//! The invariants judge against history (model/src/ghost.rs), so they cannot forget.
//!
//! Method: drive the model to a state where `r1` is committed on both brokers and acknowledged,
//! then hand-build a mutation of it in which every copy of `r1` has been truncated. A judgement
//! of the current state alone ("committed" = below some live broker's HW now) finds nothing
//! committed and nothing to miss; the history-based invariants fail. A second test checks the
//! structural claim that no actor reads the ghost: erasing it changes no step.

use insync_model::actor::State;
use insync_model::model::{Action, SystemState};
use insync_model::msg::Timer;
use insync_model::types::{BrokerId, Offset, Record};
use insync_model::{Config, Fsync, InsyncModel};
use stateright::actor::ActorModelAction;
use stateright::Model;
use std::sync::Arc;

fn model() -> InsyncModel {
    let mut cfg = Config::new(2);
    cfg.fsync = Fsync::Always;
    InsyncModel::new(cfg)
}

/// Runs, from the initial state, the first enabled action matching each predicate in turn.
fn drive(model: &InsyncModel, steps: &[fn(&Action) -> bool]) -> SystemState {
    let mut state = model.init_states().remove(0);
    for step in steps {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let action = actions.into_iter().find(step).expect("the step is enabled");
        state = model.next_state(&state, action).expect("a next state");
    }
    state
}

/// `r1` produced to broker 1, fetched by broker 2, committed and acknowledged.
fn committed_and_acknowledged(model: &InsyncModel) -> SystemState {
    let steps: [fn(&Action) -> bool; 6] = [
        |a| deliver(a, "Fetch"),
        |a| matches!(a, ActorModelAction::Timeout(_, Timer::Produce(BrokerId(1)))),
        |a| deliver(a, "Produce"),
        |a| deliver(a, "FetchResponse"),
        |a| deliver(a, "Fetch"),
        |a| deliver(a, "ProduceResponse"),
    ];
    drive(model, &steps)
}

fn deliver(action: &Action, kind: &str) -> bool {
    matches!(action, ActorModelAction::Deliver { msg, .. } if msg.type_name() == kind)
}

fn violated(model: &InsyncModel, state: &SystemState) -> Vec<&'static str> {
    model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Always)
        .filter(|p| !(p.condition)(model, state))
        .map(|p| p.name)
        .collect()
}

/// What a current-state judgement calls committed: below some live broker's HW now.
fn committed_now(model: &InsyncModel, state: &SystemState) -> Vec<(Offset, Record)> {
    (1..=model.cfg.brokers as usize)
        .filter(|b| !state.crashed[*b])
        .flat_map(|b| {
            let s = state.actor_states[b].as_broker().unwrap();
            (0..s.hw).map(move |o| (o, s.log[o as usize]))
        })
        .collect()
}

#[test]
fn truncating_every_copy_of_a_committed_record_is_caught() {
    let model = model();
    let state = committed_and_acknowledged(&model);
    let ghost = &state.history.ghost;
    assert_eq!(ghost.committed.len(), 1, "r1 is committed: {ghost:?}");
    assert_eq!(ghost.acked_all, [(1, 0)], "r1 is acknowledged at offset 0");
    assert!(
        violated(&model, &state).is_empty(),
        "the real state is fine"
    );

    // Every copy of r1 truncated, in memory and on disk; the history stays what it was.
    let mut mutated = state.clone();
    for b in 1..=model.cfg.brokers as usize {
        let mut broker = mutated.actor_states[b].as_broker().unwrap().clone();
        broker.log.clear();
        broker.hw = 0;
        mutated.actor_states[b] = Arc::new(State::Broker(broker));
        mutated.actor_storages[b] = None;
    }
    assert!(
        committed_now(&model, &mutated).is_empty(),
        "judged on the current state alone, nothing is committed, so nothing is missing"
    );
    let violated = violated(&model, &mutated);
    for name in [
        "no_acked_record_lost",
        "leader_completeness",
        "view_agreement",
        "acked_record_durable",
    ] {
        assert!(violated.contains(&name), "{name} must fail: {violated:?}");
    }
}

#[test]
fn no_actor_reads_the_ghost() {
    let model = model();
    let state = committed_and_acknowledged(&model);
    let mut erased = state.clone();
    erased.history.ghost = Default::default();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    model.actions(&state, &mut with);
    model.actions(&erased, &mut without);
    assert_eq!(with, without, "the same steps are enabled");
    assert!(!with.is_empty());
    for action in with {
        let a = model.next_state(&state, action.clone()).unwrap();
        let b = model.next_state(&erased, action).unwrap();
        assert_eq!(a.actor_states, b.actor_states, "the same actor states");
        assert_eq!(a.network, b.network, "the same messages");
        assert_eq!(a.timers_set, b.timers_set, "the same timers");
    }
}
