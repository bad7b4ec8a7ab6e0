//! Where traces come from: a transition cover, seeded random walks, and the checker's
//! shortest counterexample or witness for a named property.
//!
//! The cover enumerates the reachable state graph within the model's bounds by a
//! breadth-first search (so the path to every state is a shortest one), lists every
//! transition `(state, action)` whose successor is within the bounds, and picks paths from the
//! initial state that together take every transition at least once: for each transition not
//! yet taken, deepest first, the shortest path to it, then onwards along transitions not yet
//! taken for at most [`EXTEND_STEPS_MAX`] more steps. When the graph is larger than the state
//! limit, the set covers every action kind and message type instead, and the numbers say so
//! (`CoverSet::complete` is false): coverage is never claimed for a set not enumerated.
//!
//! A run may also cap the number of traces ([`CoverLimits::traces_max`]; `insync conform`
//! does, so that its default finishes in minutes): the paths to one transition of each kind
//! come first, then every other enumerated transition deepest first (of a partial graph
//! too), until the cap; `CoverSet::truncated` says so.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use insync_model::checker::shortest_path;
use insync_model::describe::StepAction;
use insync_model::model::{Action, SystemState};
use insync_model::properties;
use insync_model::walk::random_walk;
use insync_model::InsyncModel;
use stateright::Model;

use crate::trace::{fingerprint, ModelTrace, Source, TraceMeta};

/// After reaching its target transition, a cover path goes on along transitions not yet
/// taken for at most this many steps (fewer, longer traces; each stays short).
pub const EXTEND_STEPS_MAX: usize = 12;
/// How often (in states expanded) the enumeration reports progress.
pub const PROGRESS_STATES: usize = 1024;

/// Bounds on a cover: the states enumerated and the traces chosen.
#[derive(Clone, Copy, Debug)]
pub struct CoverLimits {
    pub states_max: usize,
    pub traces_max: usize,
}

/// The reachable graph within the bounds, as far as it was enumerated.
pub struct StateGraph {
    /// Every state's BFS parent: `(parent index, action)`; the root has none.
    parents: Vec<Option<(usize, Action)>>,
    depth: Vec<u32>,
    index: HashMap<u64, usize>,
    /// Every transition: `(from, action, to)` as state indices.
    pub transitions: Vec<(usize, Action, usize)>,
    /// Whether the search reached a fixed point within the limit.
    pub complete: bool,
}

impl StateGraph {
    pub fn states(&self) -> usize {
        self.parents.len()
    }

    /// Breadth-first enumeration of at most `states_max` states.
    pub fn explore(model: &InsyncModel, states_max: usize) -> StateGraph {
        Self::explore_reporting(model, states_max, &mut |_, _| {})
    }

    /// The same, calling `progress(states, transitions)` every [`PROGRESS_STATES`] states.
    pub fn explore_reporting(
        model: &InsyncModel,
        states_max: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> StateGraph {
        let initial = model.init_states().remove(0);
        let mut graph = StateGraph {
            parents: vec![None],
            depth: vec![0],
            index: HashMap::from([(fingerprint(&initial), 0)]),
            transitions: Vec::new(),
            complete: true,
        };
        let mut queue = VecDeque::from([(0usize, initial)]);
        let mut actions = Vec::new();
        while let Some((from, state)) = queue.pop_front() {
            if from % PROGRESS_STATES == 0 {
                progress(graph.parents.len(), graph.transitions.len());
            }
            actions.clear();
            model.actions(&state, &mut actions);
            for action in actions.drain(..) {
                let Some(next) = model.next_state(&state, action.clone()) else {
                    continue;
                };
                if !model.within_boundary(&next) {
                    continue;
                }
                let key = fingerprint(&next);
                let to = match graph.index.get(&key) {
                    Some(to) => *to,
                    None if graph.parents.len() >= states_max => {
                        graph.complete = false;
                        continue;
                    }
                    None => {
                        let to = graph.parents.len();
                        graph.index.insert(key, to);
                        graph.parents.push(Some((from, action.clone())));
                        graph.depth.push(graph.depth[from] + 1);
                        queue.push_back((to, next));
                        to
                    }
                };
                graph.transitions.push((from, action, to));
            }
        }
        graph
    }

    /// The actions of the shortest path to state `to`.
    fn actions_to(&self, mut to: usize) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some((parent, action)) = &self.parents[to] {
            actions.push(action.clone());
            to = *parent;
        }
        actions.reverse();
        actions
    }
}

/// A set of cover traces and what it covers.
pub struct CoverSet {
    pub traces: Vec<ModelTrace>,
    pub reachable_states: usize,
    pub reachable_transitions: usize,
    pub complete: bool,
    /// The trace cap stopped the choice before every wanted transition was taken.
    pub truncated: bool,
}

/// Runs `actions` from the initial state.
pub fn path_of(model: &InsyncModel, actions: &[Action]) -> Vec<(SystemState, Option<Action>)> {
    let mut state = model.init_states().remove(0);
    let mut path = Vec::with_capacity(actions.len() + 1);
    for action in actions {
        let next = model
            .next_state(&state, action.clone())
            .expect("a recorded action is enabled");
        path.push((state, Some(action.clone())));
        state = next;
    }
    path.push((state, None));
    path
}

/// The transition cover (see the module doc), without a trace cap.
pub fn cover(model: &InsyncModel, states_max: usize) -> CoverSet {
    let limits = CoverLimits {
        states_max,
        traces_max: usize::MAX,
    };
    cover_within(model, limits, &mut |_, _| {})
}

/// The transition cover within `limits`, reporting the enumeration's progress.
pub fn cover_within(
    model: &InsyncModel,
    limits: CoverLimits,
    progress: &mut dyn FnMut(usize, usize),
) -> CoverSet {
    let graph = StateGraph::explore_reporting(model, limits.states_max, progress);
    let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); graph.states()];
    for (t, (from, _, _)) in graph.transitions.iter().enumerate() {
        outgoing[*from].push(t);
    }
    let kinds = kind_representatives(&graph);
    let capped = limits.traces_max < usize::MAX;
    // A partial graph without a cap is covered by kind; with a cap, every enumerated
    // transition is a candidate after the kinds.
    let mut order: Vec<usize> = if graph.complete || capped {
        (0..graph.transitions.len()).collect()
    } else {
        kinds.clone()
    };
    // Deepest first; under a trace cap, one of each kind before the rest.
    order.sort_by_key(|t| std::cmp::Reverse(graph.depth[graph.transitions[*t].0]));
    if capped {
        let kinds: std::collections::HashSet<usize> = kinds.iter().copied().collect();
        order.sort_by_key(|t| !kinds.contains(t));
    }
    let mut taken = vec![false; graph.transitions.len()];
    let mut chosen: Vec<Vec<Action>> = Vec::new();
    let mut truncated = false;
    for t in order {
        if taken[t] {
            continue;
        }
        if chosen.len() == limits.traces_max {
            truncated = true;
            break;
        }
        chosen.push(cover_path(&graph, &outgoing, t, &mut taken));
    }
    let cfg = model.cfg;
    let traces = chosen
        .iter()
        .enumerate()
        .map(|(i, actions)| ModelTrace {
            meta: TraceMeta {
                config: cfg,
                source: Source::Cover,
                seed: None,
                property: None,
                description: format!(
                    "cover trace {} of {}: {} steps",
                    i + 1,
                    chosen.len(),
                    actions.len()
                ),
            },
            path: path_of(model, actions),
        })
        .collect();
    CoverSet {
        traces,
        reachable_states: graph.states(),
        reachable_transitions: graph.transitions.len(),
        complete: graph.complete,
        truncated,
    }
}

/// The shortest path to transition `t`, `t`, then onwards along transitions not yet taken.
fn cover_path(
    graph: &StateGraph,
    outgoing: &[Vec<usize>],
    t: usize,
    taken: &mut [bool],
) -> Vec<Action> {
    let (from, action, mut at) = graph.transitions[t].clone();
    let mut actions = graph.actions_to(from);
    mark_path(graph, outgoing, &actions, taken);
    actions.push(action);
    taken[t] = true;
    for _ in 0..EXTEND_STEPS_MAX {
        let Some(next) = outgoing[at].iter().copied().find(|n| !taken[*n]) else {
            break;
        };
        taken[next] = true;
        actions.push(graph.transitions[next].1.clone());
        at = graph.transitions[next].2;
    }
    actions
}

/// Marks the transitions along `actions` from the root as taken.
fn mark_path(graph: &StateGraph, outgoing: &[Vec<usize>], actions: &[Action], taken: &mut [bool]) {
    let mut at = 0usize;
    for action in actions {
        let t = outgoing[at]
            .iter()
            .copied()
            .find(|t| graph.transitions[*t].1 == *action)
            .expect("a BFS path follows recorded transitions");
        taken[t] = true;
        at = graph.transitions[t].2;
    }
}

/// One transition per action kind, message type and timer kind: the shallowest of each.
fn kind_representatives(graph: &StateGraph) -> Vec<usize> {
    let mut best: BTreeMap<String, usize> = BTreeMap::new();
    for (t, (from, action, _)) in graph.transitions.iter().enumerate() {
        let key = action_key(action);
        let keep = best
            .get(&key)
            .is_none_or(|b| graph.depth[graph.transitions[*b].0] > graph.depth[*from]);
        if keep {
            best.insert(key, t);
        }
    }
    best.into_values().collect()
}

/// `Deliver:Fetch`, `Timeout:Lag`, `Crash`, ...: what coverage by kind counts.
pub fn action_key(action: &Action) -> String {
    match StepAction::from_action(action) {
        StepAction::Deliver { msg, .. } => format!("Deliver:{}", msg.type_name()),
        StepAction::Timeout { timer, .. } => {
            let name = format!("{timer:?}");
            let kind = name.split('(').next().unwrap_or_default().to_owned();
            format!("Timeout:{kind}")
        }
        StepAction::Crash { .. } => "Crash".into(),
        StepAction::Recover { .. } => "Recover".into(),
        // The plain model the harness replays elects the lowest id: never an `Elect` step.
        StepAction::Elect { .. } => "Elect".into(),
    }
}

/// Seeded random walks of at most `steps` steps, seeds `seed..seed + count`.
pub fn random(model: &InsyncModel, seed: u64, count: u64, steps: usize) -> Vec<ModelTrace> {
    (seed..seed + count)
        .map(|s| {
            let walk = random_walk(model, s, steps);
            let description = match walk.violated {
                Some(p) => format!("random walk, seed {s}: stops where {p} is violated"),
                None => format!("random walk, seed {s}"),
            };
            ModelTrace {
                meta: TraceMeta {
                    config: model.cfg,
                    source: Source::Random,
                    seed: Some(s),
                    property: walk.violated.map(str::to_owned),
                    description,
                },
                path: walk.path,
            }
        })
        .collect()
}

/// The checker's shortest path to a discovery of `property`: a counterexample for an
/// invariant, a witness for a `sometimes` property. `Err` names the known properties.
pub fn discovery(model: &InsyncModel, property: &str) -> Result<Option<ModelTrace>, String> {
    let names = properties::names();
    if !names.contains(&property) {
        return Err(format!(
            "unknown property '{property}': expected one of {}",
            names.join(", ")
        ));
    }
    let source = if properties::is_invariant(property) {
        Source::Counterexample
    } else {
        Source::Witness
    };
    let Some(mut path) = shortest_path(model, property) else {
        return Ok(None);
    };
    if let Some(last) = path.last_mut() {
        last.1 = None;
    }
    Ok(Some(ModelTrace {
        meta: TraceMeta {
            config: model.cfg,
            source,
            seed: None,
            property: Some(property.to_owned()),
            description: format!(
                "shortest {} for {property} ({} steps)",
                source.name(),
                path.len().saturating_sub(1)
            ),
        },
        path,
    }))
}

/// Action kinds and message types present in a set of traces.
pub fn kinds_of(traces: &[ModelTrace]) -> BTreeSet<String> {
    traces
        .iter()
        .flat_map(|t| {
            t.path
                .iter()
                .filter_map(|(_, a)| a.as_ref().map(action_key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::Config;

    fn tiny() -> InsyncModel {
        let mut cfg = Config::new(2);
        cfg.crashes = 0;
        cfg.expiries = 0;
        cfg.isr_shrinks = 0;
        cfg.reads = 0;
        InsyncModel::new(cfg)
    }

    /// Goal: the cover takes every enumerated transition, each path from the initial state.
    #[test]
    fn cover_takes_every_transition() {
        let model = tiny();
        let set = cover(&model, 100_000);
        assert!(set.complete);
        let mut taken = BTreeSet::new();
        for trace in &set.traces {
            for (state, action) in &trace.path {
                if let Some(action) = action {
                    taken.insert((
                        fingerprint(state),
                        crate::trace::action_value(action).to_string(),
                    ));
                }
            }
        }
        assert_eq!(taken.len(), set.reachable_transitions);
    }
}
