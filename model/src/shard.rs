//! Sharded exhaustive checks: one search split over N machines that never talk to each other,
//! and the merge of their results into one verdict.
//!
//! Method. Along every path the model makes *choices* its fault budget counts (a crash, a
//! session expiry, an ISR shrink, a read, a rejoin, a retry). Each shard runs the model with
//! one more variable, the path's *share*: the set of its first [`ShardSpec::choices`] choices
//! while it is smaller, then either *mine* (the set's hash falls to this shard) or the
//! successor is dropped. Shard I of N thus explores every state reached before the choices are
//! made, then only the paths whose first choices hash to I, to a fixed point with Stateright's
//! checker. A set, not a list: paths that made the same choices in another order meet in one
//! state of one shard. Once mine, a state forgets which of the shard's sets led to it.
//!
//! Complete by construction: the share is a function of the path, so every path of the model
//! is a path of the shard that owns its first choices (or of every shard, if it makes fewer),
//! and every property is a property of the state alone.
//!
//! Cost, and it is high for this model. Every shard repeats the states before the choices are
//! made (96 at the 2-broker default: little), but a state reached by paths whose first choices
//! differ is explored by every shard that owns one of them, and most choices commute with the
//! rest of the protocol (a read and a crash of another broker, in either order, lead to the
//! same state). At the 2-broker default, 3 shards each explored 63-74 % of the unsharded
//! state space. Splitting at a frontier of states at a fixed depth (each shard taking its share
//! of them) was worse: every shard explored 92-98 %, since nearly every state is reachable from
//! every part of an early frontier. [`merge`] adds up the shards' states so the repeated work
//! shows; docs/checking.md has the figures.
//!
//! Shards agree only if they run the same binary on the same configuration: [`merge`] refuses
//! results whose configuration, model version, shard count or choice count differ, and
//! duplicate or missing shards.

use crate::checker::{self, CheckOptions, CheckReport, Outcome, Progress, Strategy};
use crate::model::{Action, InsyncModel, SystemState};
use crate::symmetry;
use serde::Serialize;
use serde_json::{json, Value};
use stateright::{Model, Property};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::str::FromStr;
use std::time::Instant;

/// Shard counts accepted by `--shard I/N`.
pub const SHARDS_MAX: u32 = 4096;

/// `I/N`: this is shard I (1-based) of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    /// How many first choices decide a path's shard. With one or two, the few distinct sets
    /// hash unevenly (at 2 brokers and 3 shards the largest shard had 93 % and 84 % of the
    /// unsharded states); three gave 74 % (docs/checking.md).
    pub fn choices(self) -> usize {
        match self.count {
            1 => 0,
            _ => 3,
        }
    }

    /// Whether a path whose first choices are `made` (as [`Share::Open`] keeps them) is this
    /// shard's.
    fn owns(self, made: &[u64]) -> bool {
        let mut hasher = DefaultHasher::new();
        made.hash(&mut hasher);
        hasher.finish() % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad shard '{s}': expected I/N with 1 <= I <= N <= {SHARDS_MAX}");
        let (index, count) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count || count > SHARDS_MAX {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A path's share (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Share {
    /// The choices made so far, fewer than the shard's [`ShardSpec::choices`], as a sorted
    /// list of their hashes: paths that made the same choices in another order (most choices
    /// commute) share one state.
    Open(Vec<u64>),
    /// The first choices fell to this shard.
    Mine,
}

/// A model state with its share.
pub type ShardState = (SystemState, Share);

/// The model as one shard runs it.
#[derive(Clone)]
struct ShardModel {
    inner: InsyncModel,
    spec: ShardSpec,
    properties: Vec<Property<InsyncModel>>,
}

impl Model for ShardModel {
    type State = ShardState;
    type Action = Action;

    fn init_states(&self) -> Vec<ShardState> {
        let share = match self.spec.choices() {
            0 => Share::Mine,
            _ => Share::Open(Vec::new()),
        };
        let init = self.inner.init_states();
        init.into_iter().map(|s| (s, share.clone())).collect()
    }
    fn actions(&self, state: &ShardState, actions: &mut Vec<Action>) {
        self.inner.actions(&state.0, actions);
    }
    fn next_state(&self, last: &ShardState, action: Action) -> Option<ShardState> {
        // Hashed before the step takes it, and only while the share is open: most states are
        // mine, and their steps need neither the hash nor a copy of the action.
        let choice = matches!(last.1, Share::Open(_)).then(|| {
            let mut hasher = DefaultHasher::new();
            action.hash(&mut hasher);
            hasher.finish()
        });
        let next = self.inner.next_state(&last.0, action)?;
        let share = match &last.1 {
            Share::Mine => Share::Mine,
            // Only a choice the budget counts moves the share on.
            Share::Open(made) if next.history.budget == last.0.history.budget => {
                Share::Open(made.clone())
            }
            Share::Open(made) => {
                let choice = choice.expect("hashed while the share is open");
                let mut made = made.clone();
                let at = made.partition_point(|m| *m <= choice);
                made.insert(at, choice);
                match made.len() < self.spec.choices() {
                    true => Share::Open(made),
                    false if self.spec.owns(&made) => Share::Mine,
                    false => return None,
                }
            }
        };
        Some((next, share))
    }
    fn properties(&self) -> Vec<Property<Self>> {
        self.properties
            .iter()
            .zip(FORWARD)
            .map(|(p, condition)| Property {
                expectation: p.expectation.clone(),
                name: p.name,
                condition,
            })
            .collect()
    }
    fn within_boundary(&self, state: &ShardState) -> bool {
        self.inner.within_boundary(&state.0)
    }
}

/// Broker symmetry on the shard's own states; an open share names brokers in its choices, so
/// those states stay as they are (merging fewer states is always sound).
fn representative(state: &ShardState) -> ShardState {
    match state.1 {
        Share::Mine => (symmetry::representative(&state.0), Share::Mine),
        Share::Open(_) => state.clone(),
    }
}

/// Property `I` of the model, as a condition on a shard's state (Stateright's conditions are
/// plain function pointers, so each index needs its own function).
fn forward<const I: usize>(shard: &ShardModel, state: &ShardState) -> bool {
    (shard.properties[I].condition)(&shard.inner, &state.0)
}

type Condition = fn(&ShardModel, &ShardState) -> bool;

macro_rules! forwards {
    ($($i:literal)*) => { [$(forward::<$i> as Condition),*] };
}

const FORWARD: [Condition; 32] = forwards!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
);

/// What a shard result records about its share, beside the check report.
#[derive(Clone, Debug, Serialize)]
pub struct ShardInfo {
    pub index: u32,
    pub count: u32,
    /// First choices that decide a path's shard.
    pub choices: usize,
    /// The configuration in words (also in the report's `config`).
    pub configuration: String,
    pub model_version: &'static str,
}

/// One shard's result: a check report over its share plus [`ShardInfo`].
#[derive(Clone, Debug, Serialize)]
pub struct ShardReport {
    #[serde(flatten)]
    pub report: CheckReport,
    pub shard: ShardInfo,
}

/// Runs shard `spec` of the check to a fixed point.
pub fn run_shard(
    model: &InsyncModel,
    options: &CheckOptions,
    spec: ShardSpec,
    progress: Progress,
) -> ShardReport {
    assert!(
        options.strategy != Strategy::Random,
        "a shard is exhaustive"
    );
    assert!(1 <= spec.index && spec.index <= spec.count);
    let start = Instant::now();
    let shard = ShardModel {
        inner: model.clone(),
        spec,
        properties: model.properties(),
    };
    assert!(
        shard.properties.len() <= FORWARD.len(),
        "FORWARD covers them"
    );
    let mut builder = shard.clone().checker().threads(options.threads.max(1));
    if options.symmetry {
        assert!(
            model.any_eligible_leader,
            "symmetry needs any-eligible elections"
        );
        builder = builder.symmetry_fn(representative);
    }
    let (complete, states, unique, depth, found) = match options.strategy {
        Strategy::Bfs => checker::drive(&shard, builder.spawn_bfs(), progress),
        _ => checker::drive(&shard, builder.spawn_dfs(), progress),
    };
    let discoveries = found
        .into_iter()
        .map(|(name, path)| (name, path.into_iter().map(|((s, _), a)| (s, a)).collect()))
        .collect();
    let outcome: Outcome = (complete, states, unique, depth, discoveries);
    let report = checker::report(model, options, start.elapsed().as_secs_f64(), outcome);
    let info = ShardInfo {
        index: spec.index,
        count: spec.count,
        choices: spec.choices(),
        configuration: model.cfg.to_string(),
        model_version: crate::VERSION,
    };
    ShardReport {
        report,
        shard: info,
    }
}

// ---------------------------------------------------------------------------------------------
// Merging

/// The fields that must agree between the shards of one check.
const SAME: [(&str, &str); 5] = [
    ("", "config"),
    ("", "symmetry"),
    ("shard", "model_version"),
    ("shard", "count"),
    ("shard", "choices"),
];

fn field<'a>(doc: &'a Value, path: (&str, &str)) -> &'a Value {
    match path.0 {
        "" => &doc[path.1],
        outer => &doc[outer][path.1],
    }
}

/// Merges `--json` shard results `(file name, document)` into one report; `Err` names the
/// file that does not fit (another configuration, a duplicate) or the shards missing.
pub fn merge(results: &[(String, Value)]) -> Result<Value, String> {
    let (first_file, first) = results.first().ok_or("no shard results to merge")?;
    let mut by_index: BTreeMap<u64, &str> = BTreeMap::new();
    for (file, doc) in results {
        let index = doc["shard"]["index"].as_u64().ok_or_else(|| {
            format!("{file}: not a shard result (no `shard`): write it with `insync check --shard I/N --json`")
        })?;
        let count = doc["shard"]["count"].as_u64().unwrap_or(0);
        if index == 0 || index > count {
            return Err(format!(
                "{file}: shard {index}/{count} is no shard of {count}"
            ));
        }
        if let Some(path) = SAME.iter().find(|p| field(doc, **p) != field(first, **p)) {
            return Err(format!(
                "{file}: another check than {first_file}: `{}` differs ({} against {})",
                path.1,
                field(doc, *path),
                field(first, *path)
            ));
        }
        if let Some(other) = by_index.insert(index, file) {
            return Err(format!(
                "{file}: shard {index}/{} was already given as {other}",
                first["shard"]["count"]
            ));
        }
    }
    let count = first["shard"]["count"].as_u64().unwrap_or(0);
    let missing: Vec<String> = (1..=count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        let given: Vec<&str> = results.iter().map(|(f, _)| f.as_str()).collect();
        return Err(format!(
            "shard {} missing (given: {})",
            missing.join(", "),
            given.join(", ")
        ));
    }
    Ok(merged(results))
}

/// The merged document (the shards are known to fit together).
fn merged(results: &[(String, Value)]) -> Value {
    let docs: Vec<&Value> = results.iter().map(|(_, d)| d).collect();
    let first = docs[0];
    let sum = |name: &str| docs.iter().filter_map(|d| d[name].as_u64()).sum::<u64>();
    let max = |name: &str| {
        docs.iter()
            .filter_map(|d| d[name].as_f64())
            .fold(0.0, f64::max)
    };
    let shards: Vec<Value> = results
        .iter()
        .map(|(file, d)| {
            json!({
                "file": file, "index": d["shard"]["index"],
                "states": d["states"], "unique_states": d["unique_states"],
                "seconds": d["seconds"], "complete": d["complete"],
            })
        })
        .collect();
    json!({
        "variant": first["variant"],
        "config": first["config"],
        "configuration": first["shard"]["configuration"],
        "strategy": first["strategy"],
        "threads": first["threads"],
        "symmetry": first["symmetry"],
        "complete": docs.iter().all(|d| d["complete"] == true),
        "states": sum("states"),
        "unique_states": sum("unique_states"),
        "max_depth": max("max_depth") as u64,
        "seconds": max("seconds"),
        "seconds_total": docs.iter().filter_map(|d| d["seconds"].as_f64()).sum::<f64>(),
        "sharding": {
            "count": first["shard"]["count"], "choices": first["shard"]["choices"],
            "note": "states and unique_states add up the shards: a state that paths of two \
                     shards reach counts twice, and every shard counts the states before \
                     the deciding choices",
        },
        "shards": shards,
        "properties": merged_properties(&docs),
    })
}

/// Per property: violated or found if any shard says so (with the shortest path among them),
/// else what every shard says (holds, not_found).
fn merged_properties(docs: &[&Value]) -> Vec<Value> {
    let empty = Vec::new();
    let list = |d: &Value| d["properties"].as_array().unwrap_or(&empty).clone();
    list(docs[0])
        .iter()
        .map(|p| {
            let name = &p["name"];
            let candidates: Vec<Value> = docs
                .iter()
                .flat_map(|d| list(d).into_iter().filter(|q| &q["name"] == name))
                .collect();
            let discovered = candidates
                .iter()
                .filter(|q| q["status"] == "violated" || q["status"] == "found")
                .min_by_key(|q| q["steps"].as_array().map_or(usize::MAX, Vec::len));
            discovered.unwrap_or(p).clone()
        })
        .collect()
}
