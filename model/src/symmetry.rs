//! Symmetry reduction over brokers.
//!
//! Stateright's built-in `Representative` for `ActorModelState` moves timer sets between actors
//! but does not rewrite the broker ids *inside* timers (`Lag(f)`, `Expire(b)`, `Produce(b)`),
//! which would merge states that are not symmetric. This representative sorts the broker
//! states (the controller and client stay at 0 and N+1), then rewrites every id in actor
//! states, messages, timers and storage with the same permutation.
//!
//! Renaming brokers is a symmetry of the checker's model only: its controller may elect any
//! eligible replica (`any_leader.rs`). Under the plain model's lowest-id election it is not,
//! and the representative would be an under-approximation (docs/reductions.md).

use crate::model::{History, SystemState};
use stateright::actor::{Id, Timers};
use stateright::{Rewrite, RewritePlan};
use std::hash::{Hash, Hasher};

/// What a broker looks like without naming any broker: its own fields that hold no id, its
/// place in the controller's view, its timers and the messages it has in flight. Renaming
/// brokers moves these keys with the brokers, so sorting by them is canonical up to ties.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Anonymous<'a> {
    crashed: bool,
    controller: (bool, bool, bool, bool, u8),
    own: (
        u8,
        bool,
        &'a [crate::types::Record],
        crate::types::Offset,
        bool,
    ),
    timers: usize,
    messages: (usize, usize),
}

fn anonymous(state: &SystemState, index: usize, messages: (usize, usize)) -> Anonymous<'_> {
    let b = crate::types::BrokerId(index as u8);
    let c = state.actor_states[0]
        .as_controller()
        .expect("actor 0 is the controller");
    let s = state.actor_states[index]
        .as_broker()
        .expect("brokers are 1..=N");
    let controller = (
        c.view.leader == Some(b),
        c.view.isr.contains(b),
        c.elr.contains(b),
        c.fenced.contains(b),
        c.broker_epochs.get(&b).copied().unwrap_or(0),
    );
    Anonymous {
        crashed: state.crashed[index],
        controller,
        own: (s.broker_epoch, s.registered, &s.log, s.hw, s.is_leader()),
        timers: state.timers_set[index].iter().count(),
        messages,
    }
}

/// Per actor index: how many messages it has in flight as sender and as receiver.
fn message_counts(state: &SystemState) -> Vec<(usize, usize)> {
    let mut counts = vec![(0, 0); state.actor_states.len()];
    for (src, dst, _) in crate::model::messages(state) {
        counts[usize::from(src)].0 += 1;
        counts[usize::from(dst)].1 += 1;
    }
    counts
}

/// The broker orders to try: brokers sorted by [`Anonymous`], every order within each group
/// of equal keys (at most `LIMIT` orders; beyond, ties keep their order, which is still
/// sound, only less reducing).
fn candidate_orders(state: &SystemState) -> Vec<Vec<usize>> {
    const LIMIT: usize = 24;
    let count = state.actor_states.len();
    let counts = message_counts(state);
    let keys: Vec<_> = (1..count - 1)
        .map(|i| anonymous(state, i, counts[i]))
        .collect();
    let mut sorted: Vec<usize> = (1..count - 1).collect();
    sorted.sort_by(|a, b| keys[a - 1].cmp(&keys[b - 1]));
    let mut orders = vec![Vec::new()];
    let mut start = 0;
    while start < sorted.len() {
        let end = (start..sorted.len())
            .find(|&j| keys[sorted[j] - 1] != keys[sorted[start] - 1])
            .unwrap_or(sorted.len());
        let group = &sorted[start..end];
        let arrangements = permutations(group);
        if orders.len() * arrangements.len() > LIMIT {
            orders.iter_mut().for_each(|o| o.extend_from_slice(group));
        } else {
            orders = orders
                .iter()
                .flat_map(|o| arrangements.iter().map(move |a| [o.as_slice(), a].concat()))
                .collect();
        }
        start = end;
    }
    orders
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    (0..items.len())
        .flat_map(|i| {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            permutations(&rest).into_iter().map(move |mut p| {
                p.insert(0, first);
                p
            })
        })
        .collect()
}

/// The permutation `plan[old] = new` that puts the brokers of `order` at ids `1..=N`.
fn plan_of(order: &[usize]) -> Vec<Id> {
    let count = order.len() + 2;
    let mut plan: Vec<Id> = (0..count).map(Id::from).collect();
    for (position, old) in order.iter().enumerate() {
        plan[*old] = Id::from(position + 1);
    }
    plan
}

/// The permutation that sorts brokers `1..=N` by state: `plan[old] = new`.
pub fn broker_permutation(state: &SystemState) -> Vec<Id> {
    plan_of(&candidate_orders(state)[0])
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
            electing: state.history.electing.map(|c| c.rewrite(&rewrite_plan)),
            ..state.history.clone()
        },
        actor_storages: (0..count)
            .map(|i| state.actor_storages[reindex(i)].clone())
            .collect(),
    }
}

/// The canonical representative of `state`'s broker-symmetry class: of the renamings that
/// sort the brokers by [`Anonymous`] key, the one whose state hashes lowest (a fixed hash, so
/// every member of the class picks the same one unless the ties exceed the limit).
pub fn representative(state: &SystemState) -> SystemState {
    let hash = |s: &SystemState| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        s.hash(&mut hasher);
        hasher.finish()
    };
    let identity = |o: &[usize]| o.iter().enumerate().all(|(p, b)| p + 1 == *b);
    let mut best: Option<(u64, Option<SystemState>)> = None;
    for order in candidate_orders(state) {
        // The identity renaming needs no copy unless it wins.
        let renamed = (!identity(&order)).then(|| permute(state, plan_of(&order)));
        let h = renamed.as_ref().map_or_else(|| hash(state), hash);
        if best.as_ref().is_none_or(|(b, _)| h < *b) {
            best = Some((h, renamed));
        }
    }
    let (_, renamed) = best.expect("at least one order");
    renamed.unwrap_or_else(|| state.clone())
}
