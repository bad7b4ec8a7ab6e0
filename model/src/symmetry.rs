//! Symmetry reduction over brokers.
//!
//! Stateright's built-in `Representative` for `ActorModelState` moves timer sets between actors
//! but does not rewrite the broker ids *inside* timers (`Lag(f)`, `Expire(b)`, `Produce(b)`),
//! which would merge states that are not symmetric. This representative sorts the broker
//! states (the controller and client stay at 0 and N+1), then rewrites every id in actor
//! states, messages, timers and storage with the same permutation.
//!
//! Caveat: the protocol's elections pick the *lowest* eligible broker id, which is not
//! invariant under renaming brokers, so the reduction is an under-approximation in general.
//! It is therefore off by default (`--symmetry` turns it on); see docs/performance.md.

use crate::model::{History, SystemState};
use stateright::actor::{Id, Timers};
use stateright::{Rewrite, RewritePlan};

/// The permutation that sorts brokers `1..=N` by state: `plan[old] = new`.
pub fn broker_permutation(state: &SystemState) -> Vec<Id> {
    let count = state.actor_states.len();
    let mut brokers: Vec<usize> = (1..count - 1).collect();
    brokers.sort_by(|a, b| state.actor_states[*a].cmp(&state.actor_states[*b]));
    let mut plan: Vec<Id> = (0..count).map(Id::from).collect();
    for (position, old) in brokers.into_iter().enumerate() {
        plan[old] = Id::from(position + 1);
    }
    plan
}

/// Applies a permutation `plan[old] = new` to a whole system state.
pub fn permute(state: &SystemState, plan: Vec<Id>) -> SystemState {
    let rewrite_plan = RewritePlan::new(plan.clone(), |id: &Id, s: &Vec<Id>| s[usize::from(*id)]);
    let count = plan.len();
    let mut inverse = vec![0usize; count];
    for (old, new) in plan.iter().enumerate() {
        inverse[usize::from(*new)] = old;
    }
    let reindex = |new: usize| inverse[new];
    SystemState {
        actor_states: (0..count)
            .map(|i| state.actor_states[reindex(i)].rewrite(&rewrite_plan))
            .collect(),
        network: state.network.rewrite(&rewrite_plan),
        timers_set: (0..count)
            .map(|i| {
                let mut timers = Timers::new();
                for t in state.timers_set[reindex(i)].iter() {
                    timers.set(t.rewrite(&rewrite_plan));
                }
                timers
            })
            .collect(),
        random_choices: (0..count)
            .map(|i| state.random_choices[reindex(i)].clone())
            .collect(),
        crashed: (0..count).map(|i| state.crashed[reindex(i)]).collect(),
        history: History {
            saveable: (0..state.history.saveable.len())
                .map(|i| state.history.saveable[reindex(i)])
                .collect(),
            crashing: state.history.crashing.map(|b| b.rewrite(&rewrite_plan)),
            ..state.history.clone()
        },
        actor_storages: (0..count)
            .map(|i| state.actor_storages[reindex(i)].clone())
            .collect(),
    }
}

/// The canonical representative of `state`'s broker-symmetry class.
pub fn representative(state: &SystemState) -> SystemState {
    permute(state, broker_permutation(state))
}
