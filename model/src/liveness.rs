//! Liveness, bounded and under a fair schedule: once faults stop, does the system make
//! progress? (docs/invariants.md, "Liveness", says exactly what this proves and what not.)
//!
//! Stateright's `eventually` judges only terminal states of the search and so misses a run
//! that cycles without progress. This module asks a question with a finite answer instead:
//! from **every** reachable state of the model (the fault budgets as configured), stop the
//! faults there and follow one fair schedule for at most `steps` steps; the property holds if
//! the progress it asks for happens within them. A run that gets stuck (no step left) or spends
//! its steps without progress is a violation, reported with the path from the initial state
//! to where the faults stopped and the schedule's steps after it.
//!
//! Once faults stop, the schedule takes only *recovery* steps: message deliveries, restarts of
//! crashed brokers, the heartbeat of a fenced broker that is up (`Heartbeat(b)`: with the
//! network healthy again, a false suspicion is undone), the client's produce, and the timers
//! that end a wait (`FetchRetry`, `FetchBackoff`, `ParkedRelease(f)`), regardless of their
//! budgets: a real cluster takes them as often as it needs. Faults never come back: no crash,
//! session expiry (`Expire`) or ISR-shrink proposal (`Lag`). Reads (`Consume`) and the
//! durability timers (`Flush`, `HwCheckpoint`, which matter only to a later crash) are not
//! taken either.
//!
//! The schedule is *least recently taken*: among the enabled recovery steps it takes one never
//! taken yet, else the one taken longest ago (ties: the order Stateright lists them). So no
//! step that stays enabled, or is enabled again and again, is passed over forever; in
//! particular the client, which may send a produce to any broker, tries every broker in turn.

use crate::client::Request;
use crate::model::{Action, InsyncModel, SystemState};
use crate::msg::{ClientReply, ClientRequest, Msg, Timer};
use crate::types::{BrokerId, RecordId};
use stateright::actor::ActorModelAction;
use stateright::Model;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A path: each state with the step taken from it (`None` for the last).
pub type Path = Vec<(SystemState, Option<Action>)>;

/// One liveness property: wherever `premise` holds when faults stop, `progress` must follow.
pub struct Liveness {
    pub name: &'static str,
    /// Whether the property asks anything of a run whose faults stop in this state.
    pub premise: fn(&InsyncModel, &SystemState) -> bool,
    /// Whether the run has made the progress asked for (`start`: where the faults stopped).
    pub progress: fn(&InsyncModel, &SystemState, &SystemState) -> bool,
}

/// Every liveness property (docs/invariants.md states each).
pub fn all() -> Vec<Liveness> {
    vec![
        Liveness {
            name: "produce_answered",
            premise: produce_not_lost,
            progress: |_, start, now| produce_in_flight(now) != produce_in_flight(start),
        },
        Liveness {
            name: "leader_elected",
            premise: eligible_broker_up,
            progress: |m, _, now| acting_leader(m, now).is_some(),
        },
        Liveness {
            name: "restarted_rejoins_isr",
            premise: eligible_broker_up,
            progress: |m, _, now| every_broker_in_isr(m, now),
        },
    ]
}

/// How far a check looks and what the schedule may do once faults stop.
#[derive(Clone, Copy, Debug)]
pub struct LivenessOptions {
    /// Steps of the fair schedule within which progress must happen.
    pub steps: usize,
    /// Whether the schedule restarts crashed brokers. Off only to show that the check fails
    /// when progress is impossible (a crashed leader the controller never hears of again).
    pub restarts: bool,
}

impl Default for LivenessOptions {
    fn default() -> Self {
        LivenessOptions {
            steps: 60,
            restarts: true,
        }
    }
}

/// A violated liveness property: the path to where the faults stopped, then the schedule.
#[derive(Clone, Debug)]
pub struct Violation {
    pub name: &'static str,
    pub prefix: Path,
    pub schedule: Path,
}

/// The outcome of a liveness check.
#[derive(Clone, Debug)]
pub struct LivenessReport {
    /// Reachable states, each a place where the faults may stop.
    pub states: usize,
    /// Fair runs followed (one per state and property whose premise holds there).
    pub runs: usize,
    /// The most schedule steps any run needed before it made progress.
    pub longest: usize,
    /// The first violation found of each violated property (by breadth-first order).
    pub violations: Vec<Violation>,
}

/// Checks every property in `all()` from every reachable state of `model`.
pub fn check(model: &InsyncModel, options: LivenessOptions) -> LivenessReport {
    let graph = reachable(model);
    let mut report = LivenessReport {
        states: graph.len(),
        runs: 0,
        longest: 0,
        violations: Vec::new(),
    };
    for live in all() {
        for index in 0..graph.len() {
            let start = &graph[index].0;
            if !(live.premise)(model, start) {
                continue;
            }
            report.runs += 1;
            match fair_run(model, &live, start, options) {
                Ok(steps) => report.longest = report.longest.max(steps),
                Err(schedule) => {
                    let prefix = path_to(&graph, index);
                    report.violations.push(Violation {
                        name: live.name,
                        prefix,
                        schedule,
                    });
                    break;
                }
            }
        }
    }
    report
}

/// Every reachable state (the model's own steps and budgets, within its boundary), each with
/// its BFS parent and the step from it, so that a violation comes with its path.
fn reachable(model: &InsyncModel) -> Vec<(SystemState, Option<(usize, Action)>)> {
    let mut graph: Vec<(SystemState, Option<(usize, Action)>)> = Vec::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for init in model.init_states() {
        if seen.insert(fingerprint(&init), graph.len()).is_none() {
            graph.push((init, None));
        }
    }
    let mut actions = Vec::new();
    let mut next = 0;
    while next < graph.len() {
        actions.clear();
        model.actions(&graph[next].0, &mut actions);
        for action in actions.drain(..) {
            let Some(state) = model.next_state(&graph[next].0, action.clone()) else {
                continue;
            };
            if !model.within_boundary(&state) {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(fingerprint(&state)) {
                e.insert(graph.len());
                graph.push((state, Some((next, action))));
            }
        }
        next += 1;
    }
    graph
}

fn fingerprint(state: &SystemState) -> u64 {
    let mut hasher = DefaultHasher::new();
    state.hash(&mut hasher);
    hasher.finish()
}

fn path_to(graph: &[(SystemState, Option<(usize, Action)>)], mut index: usize) -> Path {
    let mut path = vec![(graph[index].0.clone(), None)];
    while let Some((parent, action)) = &graph[index].1 {
        path.push((graph[*parent].0.clone(), Some(action.clone())));
        index = *parent;
    }
    path.reverse();
    path
}

/// Follows the least-recently-taken schedule from `start`: `Ok(steps)` once `live` has made
/// progress, else the run that did not.
fn fair_run(
    model: &InsyncModel,
    live: &Liveness,
    start: &SystemState,
    options: LivenessOptions,
) -> Result<usize, Path> {
    let mut last_taken: HashMap<Action, usize> = HashMap::new();
    let mut state = start.clone();
    let mut run = Path::new();
    for step in 0..=options.steps {
        if (live.progress)(model, start, &state) {
            return Ok(step);
        }
        if step == options.steps {
            break;
        }
        let Some((action, next)) = fair_step(model, &state, &last_taken, options) else {
            break;
        };
        last_taken.insert(action.clone(), step);
        run.push((state, Some(action)));
        state = next;
    }
    run.push((state, None));
    Err(run)
}

/// The enabled recovery step taken least recently (never taken first), and its result.
fn fair_step(
    model: &InsyncModel,
    state: &SystemState,
    last_taken: &HashMap<Action, usize>,
    options: LivenessOptions,
) -> Option<(Action, SystemState)> {
    let mut actions = Vec::new();
    model.actors.actions(state, &mut actions);
    let mut candidates: Vec<(Option<usize>, usize, Action)> = actions
        .into_iter()
        .enumerate()
        .filter(|(_, action)| is_recovery(action, options))
        .map(|(order, action)| (last_taken.get(&action).copied(), order, action))
        .collect();
    // `None` (never taken) sorts before every `Some(step)`. Successors are computed in that
    // order, and only until one is within the boundary: that step is the schedule's.
    candidates.sort_unstable_by_key(|(taken, order, _)| (*taken, *order));
    candidates.into_iter().find_map(|(_, _, action)| {
        let next = model.next_state(state, action.clone())?;
        model.within_boundary(&next).then_some((action, next))
    })
}

/// The steps a fault-free run takes (module doc).
fn is_recovery(action: &Action, options: LivenessOptions) -> bool {
    match action {
        ActorModelAction::Deliver { .. } => true,
        ActorModelAction::Recover(_) => options.restarts,
        ActorModelAction::Timeout(_, timer) => matches!(
            timer,
            Timer::Produce(_)
                | Timer::FetchRetry
                | Timer::FetchBackoff
                | Timer::ParkedRelease(_)
                | Timer::Heartbeat(_)
        ),
        ActorModelAction::Crash(_)
        | ActorModelAction::Drop(_)
        | ActorModelAction::SelectRandom { .. } => false,
    }
}

fn controller(state: &SystemState) -> &crate::controller::ControllerState {
    state.actor_states[0]
        .as_controller()
        .expect("actor 0 is the controller")
}

fn produce_in_flight(state: &SystemState) -> Option<Request> {
    let client = state.actor_states.last().and_then(|s| s.as_client());
    client
        .expect("the last actor is the client")
        .in_flight
        .filter(|r| matches!(r, Request::Produce { .. }))
}

/// The client's produce is still somewhere: its request or answer is on the wire, or the
/// broker that took it is up and holds it among the leader's waiting requests. A request a
/// crash took with the broker's memory is never answered: the model's client has no request
/// timeout (docs/invariants.md, "Liveness", lists this as not proved).
fn produce_not_lost(model: &InsyncModel, state: &SystemState) -> bool {
    let Some(Request::Produce {
        broker: b,
        record_id,
    }) = produce_in_flight(state)
    else {
        return false;
    };
    let client = stateright::actor::Id::from(model.cfg.client_index());
    let on_wire = crate::model::messages(state)
        .into_iter()
        .any(|(src, dst, m)| {
            let ends = (src == client && dst == b.id()) || (src == b.id() && dst == client);
            let about = |id: &RecordId| *id == record_id;
            ends && matches!(
                m,
                Msg::Request(ClientRequest::Produce { record_id: id, .. })
                    | Msg::Reply(ClientReply::ProduceResponse { record_id: id, .. }) if about(id)
            )
        });
    let waiting = !state.crashed[b.0 as usize]
        && broker(state, b)
            .and_then(|s| s.leader.as_ref())
            .is_some_and(|l| l.waiting.iter().any(|(id, _)| *id == record_id));
    on_wire || waiting
}

/// A broker that is up, registered and eligible to lead (in the controller's ISR or, in
/// `kip-966`, its ELR). Without one the partition may stay offline by design: the last ISR
/// member lost its log in a restart and no clean election is possible.
fn eligible_broker_up(_model: &InsyncModel, state: &SystemState) -> bool {
    let c = controller(state);
    let eligible = c.view.isr.union(c.elr);
    eligible
        .iter()
        .any(|b| !state.crashed[b.0 as usize] && broker(state, b).is_some_and(|s| s.registered))
}

fn model_n(model: &InsyncModel) -> usize {
    model.cfg.brokers as usize
}

fn broker(state: &SystemState, b: BrokerId) -> Option<&crate::broker::BrokerState> {
    state.actor_states[b.0 as usize].as_broker()
}

/// The controller's leader is up and acts as leader in the controller's leader epoch.
fn acting_leader<'a>(
    model: &InsyncModel,
    state: &'a SystemState,
) -> Option<&'a crate::broker::BrokerState> {
    let view = controller(state).view;
    let leader = view.leader?;
    if state.crashed[leader.0 as usize] || leader.0 as usize > model_n(model) {
        return None;
    }
    broker(state, leader)
        .filter(|s| s.is_leader() && s.view.is_some_and(|v| v.leader_epoch == view.leader_epoch))
}

/// Every broker is up, unfenced and in the controller's ISR, and a leader acts.
fn every_broker_in_isr(model: &InsyncModel, state: &SystemState) -> bool {
    let c = controller(state);
    let brokers = crate::types::BrokerSet::all(model.cfg.brokers);
    let up = (1..=model_n(model)).all(|i| !state.crashed[i]);
    up && c.fenced.is_empty() && c.view.isr == brokers && acting_leader(model, state).is_some()
}
