//! The checker's controller may elect any eligible replica, not only the lowest id.
//!
//! Kafka's controller elects the first eligible broker in the partition's replica assignment,
//! and an assignment can list the brokers in any order; the model's controller (like the
//! implementation's) elects the lowest id, which is one of those orders. With
//! [`InsyncModel::electing_any`] the model covers every order: right after a step whose
//! election had other eligible brokers (the controller records them, `ElectionChoice`), an
//! `Elect(b)` step may replace the elected leader by any of them. Any other step keeps the
//! lowest-id choice. This makes renaming brokers a symmetry of the model's steps, which the
//! symmetry reduction (`symmetry.rs`) needs (docs/reductions.md, "Broker symmetry").
//!
//! The choice step is a `SelectRandom` of the controller whose key names the broker
//! (`elect 3`); the controller actor never asks Stateright for random choices, so no other
//! `SelectRandom` exists. The plain model, which the conformance harness replays, never
//! offers it: the implementation elects the lowest id, and so do the harness's traces.

use crate::actor::State;
use crate::controller::{Controller, ElectionChoice};
use crate::model::{Action, InsyncModel, SystemState};
use crate::msg::{Msg, PeerMsg};
use crate::types::BrokerId;
use stateright::actor::{ActorModelAction, Id, Network};
use std::sync::Arc;

/// The key of the choice step that elects broker `b` instead.
fn key(b: BrokerId) -> String {
    format!("elect {b}")
}

/// The broker a choice step elects, if `action` is one.
pub fn elected_by(action: &Action) -> Option<BrokerId> {
    let ActorModelAction::SelectRandom { key, .. } = action else {
        return None;
    };
    let id = key.strip_prefix("elect ")?.parse().ok()?;
    Some(BrokerId(id))
}

/// The choice step electing `b`.
pub fn elect_step(b: BrokerId) -> Action {
    ActorModelAction::SelectRandom {
        actor: Id::from(0),
        key: key(b),
        random: (),
    }
}

/// Right after an election that had a choice: a step for each other eligible broker.
pub fn add_choices(state: &SystemState, actions: &mut Vec<Action>) {
    if let Some(choice) = state.history.electing {
        actions.extend(choice.others.iter().map(elect_step));
    }
}

/// After a step's handler ran: takes the record of an election's choice out of the
/// controller's state (no stored state keeps it) and returns it when the model offers the
/// choice.
pub fn take_choice(model: &InsyncModel, next: &mut SystemState) -> Option<ElectionChoice> {
    let controller = next.actor_states[0].as_controller()?;
    let choice = controller.choice?;
    let mut controller = controller.clone();
    controller.choice = None;
    next.actor_states[0] = Arc::new(State::Controller(controller));
    model.any_eligible_leader.then_some(choice)
}

/// The state after a choice step (`add_choices`), or `None` for any other step: the
/// controller elects `b` instead, and the view it has just sent to each broker (the last
/// message of each channel from the controller) names `b`.
pub fn choice_step(
    model: &InsyncModel,
    last: &SystemState,
    action: &Action,
) -> Option<SystemState> {
    let b = elected_by(action)?;
    let choice = last
        .history
        .electing
        .expect("a choice step is offered only right after an election");
    let controller = last.actor_states[0].as_controller().expect("a controller");
    let mut changed = controller.clone();
    Controller { cfg: model.cfg }.elect_instead(&mut changed, choice, b);
    let (old, new) = (controller.view, changed.view);
    let mut next = last.clone();
    next.actor_states[0] = Arc::new(State::Controller(changed));
    if let Network::Ordered(channels) = &mut next.network {
        for ((src, _), queue) in channels.iter_mut() {
            if usize::from(*src) != 0 {
                continue;
            }
            if let Some(last_sent) = queue.back_mut() {
                if *last_sent == Msg::Peer(PeerMsg::LeaderAndIsr(old)) {
                    *last_sent = Msg::Peer(PeerMsg::LeaderAndIsr(new));
                }
            }
        }
    }
    next.history.electing = None;
    Some(next)
}
