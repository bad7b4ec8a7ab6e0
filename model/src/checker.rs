//! Running a check: strategy, threads, progress, fixed-point detection, results as plain data,
//! and a deliberate shortest-path search per discovered property.
//!
//! Stateright's checkers report *a* path per property, not necessarily the shortest (with
//! several properties an early discovery can be overwritten by a later, longer one, and DFS
//! dives deep). For every violated invariant and every found witness we therefore run a
//! single-threaded BFS on a model that carries only that property and stop at its first
//! discovery, which BFS reaches at minimal depth.

use crate::describe::{describe_path, Step};
use crate::model::{Action, InsyncModel, SystemState};
use crate::{properties, symmetry};
use serde::Serialize;
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How the state space is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Bfs,
    Dfs,
    Random,
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bfs" => Ok(Strategy::Bfs),
            "dfs" => Ok(Strategy::Dfs),
            "random" => Ok(Strategy::Random),
            _ => Err(format!(
                "unknown strategy '{s}': expected bfs, dfs or random"
            )),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Bfs => "bfs",
            Strategy::Dfs => "dfs",
            Strategy::Random => "random",
        })
    }
}

/// How to run a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckOptions {
    pub strategy: Strategy,
    pub threads: usize,
    /// Broker symmetry reduction (DFS only); the model must elect any eligible replica
    /// (`InsyncModel::electing_any`), which makes it sound (`symmetry.rs`).
    pub symmetry: bool,
    /// Seed for `random` (random walks).
    pub seed: u64,
    /// Random walks to take (`random` only) and their maximum length.
    pub walks: usize,
    pub walk_steps: usize,
    /// Search for the shortest path of each discovered property.
    pub shortest: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            strategy: Strategy::Dfs,
            threads: 2,
            symmetry: false,
            seed: 0,
            walks: 10_000,
            walk_steps: 200,
            shortest: true,
        }
    }
}

/// What a property came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Holds,
    Violated,
    Found,
    NotFound,
}

impl Status {
    pub fn words(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Violated => "VIOLATED",
            Status::Found => "witness found",
            Status::NotFound => "witness NOT found",
        }
    }
}

/// One property's result; `steps` is the (shortest) counterexample or witness.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyResult {
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub expectation: &'static str,
    pub status: Status,
    pub steps: Vec<Step>,
    /// The raw path, for the Explorer URL and diagrams.
    #[serde(skip)]
    pub path: Option<Vec<(SystemState, Option<Action>)>>,
}

/// The outcome of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub variant: String,
    pub config: crate::config::Config,
    pub strategy: Strategy,
    pub threads: usize,
    pub symmetry: bool,
    /// The search reached a fixed point (every reachable state within the bounds was seen).
    pub complete: bool,
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub properties: Vec<PropertyResult>,
}

impl CheckReport {
    /// 0 when every invariant holds and every witness is found, else 1.
    pub fn exit_code(&self) -> i32 {
        let ok = self
            .properties
            .iter()
            .all(|p| matches!(p.status, Status::Holds | Status::Found));
        if ok {
            0
        } else {
            1
        }
    }
    pub fn status(&self, name: &str) -> Option<Status> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.status)
    }
    pub fn violated(&self) -> Vec<&'static str> {
        self.properties
            .iter()
            .filter(|p| p.status == Status::Violated)
            .map(|p| p.name)
            .collect()
    }
}

/// Progress as the search runs: `(states, unique states, max depth, elapsed)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, usize, Duration);

/// Runs the check and reports every property.
pub fn run(model: &InsyncModel, options: &CheckOptions, progress: Progress) -> CheckReport {
    let start = Instant::now();
    let outcome = match options.strategy {
        Strategy::Random => walks(model, options),
        Strategy::Bfs | Strategy::Dfs => exhaustive(model, options, progress),
    };
    report(model, options, start.elapsed().as_secs_f64(), outcome)
}

/// What a search saw: `(complete, states, unique states, max depth, discoveries)`.
pub(crate) type Outcome = OutcomeOf<InsyncModel>;
/// The same for a model over other states (`shard.rs`).
pub(crate) type OutcomeOf<M> = (bool, usize, usize, usize, DiscoveriesOf<M>);

/// The report of a search's outcome; discoveries' paths start at the initial state.
pub(crate) fn report(
    model: &InsyncModel,
    options: &CheckOptions,
    seconds: f64,
    outcome: Outcome,
) -> CheckReport {
    let (complete, states, unique_states, max_depth, mut discovered) = outcome;
    let properties = model
        .properties()
        .into_iter()
        .map(|p| {
            let always = p.expectation == Expectation::Always;
            let mut path = discovered.remove(p.name);
            if path.is_some() && options.shortest {
                path = shortest_path(model, p.name).or(path);
            }
            let status = match (always, path.is_some()) {
                (true, true) => Status::Violated,
                (true, false) => Status::Holds,
                (false, true) => Status::Found,
                (false, false) => Status::NotFound,
            };
            PropertyResult {
                name: p.name,
                expectation: if always { "always" } else { "sometimes" },
                status,
                steps: path
                    .as_ref()
                    .map(|p| describe_path(model, p))
                    .unwrap_or_default(),
                path,
            }
        })
        .collect();
    CheckReport {
        variant: model.cfg.variant.to_string(),
        config: model.cfg,
        strategy: options.strategy,
        threads: options.threads,
        symmetry: options.symmetry,
        complete,
        states,
        unique_states,
        max_depth,
        seconds,
        properties,
    }
}

pub(crate) type Discoveries = DiscoveriesOf<InsyncModel>;
/// Each property's discovery: the path to it.
pub(crate) type DiscoveriesOf<M> =
    std::collections::HashMap<&'static str, Vec<(<M as Model>::State, Option<Action>)>>;

fn exhaustive(model: &InsyncModel, options: &CheckOptions, progress: Progress) -> Outcome {
    let mut builder = model.clone().checker().threads(options.threads.max(1));
    if options.symmetry {
        assert!(
            model.any_eligible_leader,
            "broker symmetry is sound only when any eligible replica may be elected"
        );
        builder = builder.symmetry_fn(symmetry::representative);
    }
    match options.strategy {
        Strategy::Bfs => drive(model, builder.spawn_bfs(), progress),
        _ => drive(model, builder.spawn_dfs(), progress),
    }
}

/// Waits for a running checker, reporting progress every two seconds.
pub(crate) fn drive<M, C>(model: &M, checker: C, progress: Progress) -> OutcomeOf<M>
where
    M: Model<Action = Action>,
    M::State: Clone + PartialEq,
    C: Checker<M>,
{
    let start = Instant::now();
    let mut last_report = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            progress(
                checker.state_count(),
                checker.unique_state_count(),
                checker.max_depth(),
                start.elapsed(),
            );
        }
    }
    let checker = checker.join();
    let discoveries = checker.discoveries();
    // The search stops early only when every property has a discovery.
    let complete = discoveries.len() < model.properties().len();
    let discovered = discoveries
        .into_iter()
        .map(|(name, path)| (name, path.into_vec()))
        .collect();
    (
        complete,
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        discovered,
    )
}

fn walks(model: &InsyncModel, options: &CheckOptions) -> Outcome {
    let mut discovered = Discoveries::new();
    let mut states = 0;
    let mut max_depth = 0;
    let witnesses: Vec<_> = model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == Expectation::Sometimes)
        .collect();
    for i in 0..options.walks {
        let walk = crate::walk::random_walk(
            model,
            options.seed.wrapping_add(i as u64),
            options.walk_steps,
        );
        states += walk.path.len();
        max_depth = max_depth.max(walk.path.len());
        for w in &witnesses {
            if discovered.contains_key(w.name) {
                continue;
            }
            if let Some(end) = walk.path.iter().position(|(s, _)| (w.condition)(model, s)) {
                let mut path = walk.path[..=end].to_vec();
                path.last_mut().expect("non-empty").1 = None;
                discovered.insert(w.name, path);
            }
        }
        if let Some(name) = walk.violated {
            discovered.entry(name).or_insert(walk.path);
        }
    }
    (false, states, 0, max_depth, discovered)
}

/// The shortest path to a discovery of property `name`: a breadth-first search on a model
/// that checks only that property, stopping at its first discovery. It keeps no state in
/// memory (`shortest.rs`), so scenarios whose frontier outgrows the machine under
/// Stateright's BFS still get their shortest path; `eventually` properties, which judge whole
/// paths, use Stateright's single-threaded BFS.
pub fn shortest_path(
    model: &InsyncModel,
    name: &str,
) -> Option<Vec<(SystemState, Option<Action>)>> {
    let mut single = model.clone();
    single.only = Some(properties::all().into_iter().position(|p| p.name == name)?);
    let eventually = single
        .properties()
        .iter()
        .any(|p| p.expectation == Expectation::Eventually);
    if !eventually {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        return crate::shortest::shortest_path(&single, threads).map(|found| found.path);
    }
    let checker = single
        .checker()
        .threads(1)
        .finish_when(HasDiscoveries::Any)
        .spawn_bfs()
        .join();
    let path = checker.discoveries().into_values().next()?;
    Some(path.into_vec())
}
