//! Trace files in the Informal Trace Format (ITF): one JSON object per trace with `#meta`,
//! `vars` and `states`, readable by other tools.
//!
//! `#meta` names the format version, the model crate version, the variant, the whole model
//! configuration, the source (`cover`, `random`, `counterexample`, `witness`), the seed and
//! the property. Every state carries every variable: `action` (the model action taken to reach
//! it, `{"kind":"Init"}` for the first), one variable per actor (`controller`, `broker_1`, ...,
//! `client`) holding the model's serialisable state of that actor, `crashed`, `network` (the
//! FIFO channels' contents) and `timers` (each actor's armed timers). Values are plain JSON:
//! integers as numbers (all are small), sets and lists as arrays, records as objects.
//!
//! Reading is strict. The meta block must name this format and this model version, and its
//! configuration must be one the model accepts; then [`TraceFile::to_path`] re-runs the model
//! from its initial state and requires every recorded action to be enabled and every recorded
//! state to equal the model's, so a trace from another model version or configuration is
//! refused with the file, the state index and the first field that differs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use insync_model::actor::State;
use insync_model::describe::StepAction;
use insync_model::model::{Action, SystemState};
use insync_model::{Acks, Config, Fsync, InsyncModel, Variant};
use serde_json::{json, Map, Value};
use stateright::actor::Network;
use stateright::Model;

use crate::diff;

/// This harness's trace format version; bump on any change to the layout below.
pub const TRACE_FORMAT_VERSION: u64 = 1;
/// The model crate's version, recorded in and required of every trace.
pub const MODEL_VERSION: &str = insync_model::VERSION;

/// Where a trace came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Cover,
    Random,
    Counterexample,
    Witness,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Cover => "cover",
            Source::Random => "random",
            Source::Counterexample => "counterexample",
            Source::Witness => "witness",
        }
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Source::Cover,
            Source::Random,
            Source::Counterexample,
            Source::Witness,
        ]
        .into_iter()
        .find(|v| v.name() == s)
        .ok_or_else(|| {
            format!("unknown source '{s}': expected cover, random, counterexample or witness")
        })
    }
}

/// The `#meta` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceMeta {
    pub config: Config,
    pub source: Source,
    pub seed: Option<u64>,
    pub property: Option<String>,
    /// Free text: what the trace covers.
    pub description: String,
}

/// A model path with its meta block: what is written and what replay consumes.
#[derive(Clone)]
pub struct ModelTrace {
    pub meta: TraceMeta,
    /// `(state, action taken from it)`, as `Path::into_vec` gives it; the last action is None.
    pub path: Vec<(SystemState, Option<Action>)>,
}

/// A trace file that failed to load or validate: the file, the field, the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: field `{field}`: {reason}", file.display())]
pub struct TraceError {
    pub file: PathBuf,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Debug for ModelTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTrace")
            .field("meta", &self.meta)
            .field("steps", &self.steps())
            .finish()
    }
}

impl ModelTrace {
    /// Number of steps (actions).
    pub fn steps(&self) -> usize {
        self.path.len().saturating_sub(1)
    }

    /// The ITF document.
    pub fn to_itf(&self) -> Value {
        let cfg = &self.meta.config;
        let mut vars = vec!["action".to_string()];
        vars.extend(actor_vars(cfg));
        vars.extend(["crashed", "network", "timers"].map(String::from));
        let mut states = Vec::with_capacity(self.path.len());
        for (index, (state, _)) in self.path.iter().enumerate() {
            let action = match index {
                0 => json!({"kind": "Init"}),
                i => action_value(
                    self.path[i - 1]
                        .1
                        .as_ref()
                        .expect("inner steps have actions"),
                ),
            };
            let mut object = Map::new();
            object.insert("#meta".into(), json!({ "index": index }));
            object.insert("action".into(), action);
            for (name, value) in state_vars(cfg, state) {
                object.insert(name, value);
            }
            states.push(Value::Object(object));
        }
        json!({
            "#meta": {
                "format": "ITF",
                "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html",
                "insync-trace-format": TRACE_FORMAT_VERSION,
                "model-version": MODEL_VERSION,
                "variant": cfg.variant.name(),
                "config": config_value(cfg),
                "source": self.meta.source.name(),
                "seed": self.meta.seed,
                "property": self.meta.property,
                "description": self.meta.description,
            },
            "vars": vars,
            "states": states,
        })
    }

    /// Writes the trace as pretty JSON.
    pub fn write(&self, file: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.to_itf()).expect("JSON values serialise");
        std::fs::write(file, text + "\n")
    }
}

/// The actor variable names: `controller`, `broker_1` .. `broker_N`, `client`.
pub fn actor_vars(cfg: &Config) -> Vec<String> {
    let mut names = vec!["controller".to_string()];
    names.extend((1..=cfg.brokers).map(|b| format!("broker_{b}")));
    names.push("client".into());
    names
}

/// The serialisable action (the model's `StepAction`).
pub fn action_value(action: &Action) -> Value {
    serde_json::to_value(StepAction::from_action(action)).expect("actions serialise")
}

/// Every variable of a state but `action`.
pub fn state_vars(cfg: &Config, state: &SystemState) -> Vec<(String, Value)> {
    let names = actor_vars(cfg);
    let mut vars: Vec<(String, Value)> = state
        .actor_states
        .iter()
        .zip(&names)
        .map(|(actor, name)| (name.clone(), actor_value(actor)))
        .collect();
    let crashed: Vec<&String> = names
        .iter()
        .zip(&state.crashed)
        .filter(|(_, c)| **c)
        .map(|(n, _)| n)
        .collect();
    vars.push(("crashed".into(), json!(crashed)));
    vars.push(("network".into(), network_value(&names, &state.network)));
    let timers: Map<String, Value> = names
        .iter()
        .zip(&state.timers_set)
        .map(|(name, timers)| {
            let mut armed: Vec<Value> = timers
                .iter()
                .map(|t| serde_json::to_value(t).expect("timers serialise"))
                .collect();
            armed.sort_by_key(|v| v.to_string());
            (name.clone(), Value::Array(armed))
        })
        .collect();
    vars.push(("timers".into(), Value::Object(timers)));
    vars
}

/// One actor's state without the enum tag.
pub fn actor_value(state: &State) -> Value {
    match state {
        State::Controller(c) => serde_json::to_value(c),
        State::Broker(b) => serde_json::to_value(b),
        State::Client(c) => serde_json::to_value(c),
    }
    .expect("actor states serialise")
}

fn network_value(names: &[String], network: &Network<insync_model::msg::Msg>) -> Value {
    let Network::Ordered(channels) = network else {
        unreachable!("the model's network is ordered")
    };
    let channels: Vec<Value> = channels
        .iter()
        .filter(|(_, queue)| !queue.is_empty())
        .map(|((src, dst), queue)| {
            json!({
                "src": names[usize::from(*src)],
                "dst": names[usize::from(*dst)],
                "messages": queue.iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(channels)
}

fn config_value(cfg: &Config) -> Value {
    json!({
        "variant": cfg.variant.name(),
        "brokers": cfg.brokers,
        "records": cfg.records,
        "crashes": cfg.crashes,
        "expiries": cfg.expiries,
        "isr_shrinks": cfg.isr_shrinks,
        "reads": cfg.reads,
        "rejoins": cfg.rejoins,
        "retries": cfg.retries,
        "max_epoch": cfg.max_epoch,
        "unclean_leader_election": cfg.unclean_leader_election,
        "acks": cfg.acks.to_string(),
        "min_insync_replicas": cfg.min_insync_replicas,
        "fsync": cfg.fsync.to_string(),
    })
}

/// A fingerprint of a model state, stable within one build (for coverage counting).
pub fn fingerprint(state: &SystemState) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    state.hash(&mut hasher);
    hasher.finish()
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A parsed trace file, not yet checked against the model.
#[derive(Clone, Debug)]
pub struct TraceFile {
    pub file: PathBuf,
    pub meta: TraceMeta,
    /// Every state's variables, `action` included.
    pub states: Vec<Map<String, Value>>,
}

impl TraceFile {
    /// Reads and checks the meta block and the shape of every state.
    pub fn read(file: &Path) -> Result<TraceFile, TraceError> {
        let error = |field: &str, reason: String| TraceError {
            file: file.to_owned(),
            field: field.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|e| error("(file)", e.to_string()))?;
        let document: Value =
            serde_json::from_str(&text).map_err(|e| error("(file)", format!("not JSON: {e}")))?;
        Self::from_value(file, &document)
    }

    /// As [`TraceFile::read`], from a parsed document.
    pub fn from_value(file: &Path, document: &Value) -> Result<TraceFile, TraceError> {
        let error = |field: &str, reason: String| TraceError {
            file: file.to_owned(),
            field: field.to_owned(),
            reason,
        };
        let meta = document
            .get("#meta")
            .and_then(Value::as_object)
            .ok_or_else(|| error("#meta", "missing or not an object".into()))?;
        let meta = read_meta(meta, &error)?;
        let states = read_states(document, &meta.config, &error)?;
        Ok(TraceFile {
            file: file.to_owned(),
            meta,
            states,
        })
    }

    /// Re-runs the model along the recorded actions, checking each recorded state.
    pub fn to_path(&self, model: &InsyncModel) -> Result<ModelTrace, TraceError> {
        let error = |field: String, reason: String| TraceError {
            file: self.file.clone(),
            field,
            reason,
        };
        let cfg = &self.meta.config;
        let mut state = model.init_states().remove(0);
        check_state(cfg, &state, &self.states[0])
            .map_err(|(f, r)| error(format!("states[0].{f}"), r))?;
        let first_action = self.states[0].get("action");
        if first_action != Some(&json!({"kind": "Init"})) {
            return Err(error(
                "states[0].action".into(),
                "must be {\"kind\":\"Init\"}".into(),
            ));
        }
        let mut path = Vec::with_capacity(self.states.len());
        let mut actions = Vec::new();
        for (i, recorded) in self.states.iter().enumerate().skip(1) {
            let wanted = &recorded["action"];
            actions.clear();
            model.actions(&state, &mut actions);
            let action = actions
                .iter()
                .find(|a| action_value(a) == *wanted)
                .cloned()
                .ok_or_else(|| {
                    error(
                        format!("states[{i}].action"),
                        format!("{wanted} is not enabled in the model's state {}", i - 1),
                    )
                })?;
            let next = model.next_state(&state, action.clone()).ok_or_else(|| {
                error(
                    format!("states[{i}].action"),
                    "the model ignores this action (no successor)".into(),
                )
            })?;
            check_state(cfg, &next, recorded)
                .map_err(|(f, r)| error(format!("states[{i}].{f}"), r))?;
            path.push((state, Some(action)));
            state = next;
        }
        path.push((state, None));
        Ok(ModelTrace {
            meta: self.meta.clone(),
            path,
        })
    }
}

type FieldError<'a> = &'a dyn Fn(&str, String) -> TraceError;

/// The `#meta` block: this harness's trace format and model version, and what the trace is of.
fn read_meta(meta: &Map<String, Value>, error: FieldError) -> Result<TraceMeta, TraceError> {
    let text_field = |name: &str| -> Result<String, TraceError> {
        meta.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| error(&format!("#meta.{name}"), "missing or not a string".into()))
    };
    let format = meta.get("insync-trace-format").and_then(Value::as_u64);
    if format != Some(TRACE_FORMAT_VERSION) {
        return Err(error(
            "#meta.insync-trace-format",
            format!("is {format:?}, this harness reads version {TRACE_FORMAT_VERSION}"),
        ));
    }
    let model_version = text_field("model-version")?;
    if model_version != MODEL_VERSION {
        return Err(error(
            "#meta.model-version",
            format!(
                "trace is from model {model_version}, this is model {MODEL_VERSION}: \
                 regenerate it with `insync traces`"
            ),
        ));
    }
    let config = parse_config(meta.get("config"))
        .map_err(|(field, reason)| error(&format!("#meta.config.{field}"), reason))?;
    let variant = text_field("variant")?;
    if variant != config.variant.name() {
        return Err(error(
            "#meta.variant",
            format!("{variant} disagrees with #meta.config.variant"),
        ));
    }
    let source = Source::from_str(&text_field("source")?).map_err(|e| error("#meta.source", e))?;
    let seed = meta.get("seed").and_then(Value::as_u64);
    let property = meta
        .get("property")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let description = meta
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(TraceMeta {
        config,
        source,
        seed,
        property,
        description,
    })
}

/// Every state, each an object holding exactly the variables this configuration has.
fn read_states(
    document: &Value,
    config: &Config,
    error: FieldError,
) -> Result<Vec<Map<String, Value>>, TraceError> {
    let expected_vars = {
        let mut vars = vec!["action".to_string()];
        vars.extend(actor_vars(config));
        vars.extend(["crashed", "network", "timers"].map(String::from));
        vars
    };
    let vars: Option<Vec<String>> = document.get("vars").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    if vars.as_ref() != Some(&expected_vars) {
        return Err(error(
            "vars",
            format!("is {vars:?}, expected {expected_vars:?} for this configuration"),
        ));
    }
    let raw_states = document
        .get("states")
        .and_then(Value::as_array)
        .ok_or_else(|| error("states", "missing or not an array".into()))?;
    if raw_states.is_empty() {
        return Err(error(
            "states",
            "empty: a trace starts with the initial state".into(),
        ));
    }
    let mut states = Vec::with_capacity(raw_states.len());
    for (i, state) in raw_states.iter().enumerate() {
        let object = state
            .as_object()
            .ok_or_else(|| error(&format!("states[{i}]"), "not an object".into()))?;
        for var in &expected_vars {
            if !object.contains_key(var) {
                return Err(error(&format!("states[{i}].{var}"), "missing".into()));
            }
        }
        states.push(object.clone());
    }
    Ok(states)
}

/// The first field where the recorded state differs from the model's.
fn check_state(
    cfg: &Config,
    state: &SystemState,
    recorded: &Map<String, Value>,
) -> Result<(), (String, String)> {
    for (name, value) in state_vars(cfg, state) {
        let differences = diff::diff(&name, &value, &recorded[&name]);
        if let Some(first) = differences.first() {
            return Err((
                first.path.clone(),
                format!("model has {}, trace has {}", first.expected, first.actual),
            ));
        }
    }
    Ok(())
}

/// Parses `#meta.config`; errors name the field.
pub fn parse_config(value: Option<&Value>) -> Result<Config, (String, String)> {
    let object = value
        .and_then(Value::as_object)
        .ok_or_else(|| (String::new(), "missing or not an object".to_string()))?;
    let text = |name: &str| -> Result<&str, (String, String)> {
        object
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| (name.to_owned(), "missing or not a string".to_owned()))
    };
    let number = |name: &str| -> Result<u8, (String, String)> {
        object
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| (name.to_owned(), "missing or not a small number".to_owned()))
    };
    let variant = Variant::from_str(text("variant")?).map_err(|e| ("variant".to_owned(), e))?;
    let brokers = number("brokers")?;
    let mut cfg = Config::new(brokers).with_variant(variant);
    cfg.records = number("records")?;
    cfg.crashes = number("crashes")?;
    cfg.expiries = number("expiries")?;
    cfg.isr_shrinks = number("isr_shrinks")?;
    cfg.reads = number("reads")?;
    cfg.rejoins = number("rejoins")?;
    cfg.retries = number("retries")?;
    cfg.max_epoch = number("max_epoch")?;
    cfg.unclean_leader_election = object
        .get("unclean_leader_election")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            (
                "unclean_leader_election".to_owned(),
                "missing or not a boolean".to_owned(),
            )
        })?;
    cfg.acks = Acks::from_str(text("acks")?).map_err(|e| ("acks".to_owned(), e))?;
    cfg.min_insync_replicas = number("min_insync_replicas")?;
    cfg.fsync = Fsync::from_str(text("fsync")?).map_err(|e| ("fsync".to_owned(), e))?;
    cfg.validate().map_err(|e| (String::new(), e))?;
    Ok(cfg)
}

/// Every `*.json` file in `dir`, sorted by name.
pub fn trace_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Groups of traces by configuration, for reporting.
pub type ByConfig = BTreeMap<String, Vec<PathBuf>>;

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::walk::random_walk;

    fn small() -> Config {
        let mut cfg = Config::new(2);
        cfg.crashes = 0;
        cfg
    }

    fn sample() -> ModelTrace {
        let model = InsyncModel::new(small());
        let walk = random_walk(&model, 7, 12);
        ModelTrace {
            meta: TraceMeta {
                config: small(),
                source: Source::Random,
                seed: Some(7),
                property: None,
                description: "test".into(),
            },
            path: walk.path,
        }
    }

    /// Goal: a written trace reads back to the same model path.
    #[test]
    fn round_trip() {
        let trace = sample();
        let value = trace.to_itf();
        let file = TraceFile::from_value(Path::new("t.json"), &value).unwrap();
        let model = InsyncModel::new(file.meta.config);
        let back = file.to_path(&model).unwrap();
        assert_eq!(back.path.len(), trace.path.len());
        assert_eq!(back.meta, trace.meta);
    }

    /// Goal: another model version, another configuration or a tampered state is refused
    /// with the file and the field named.
    #[test]
    fn refusals_name_file_and_field() {
        let trace = sample();
        let mut value = trace.to_itf();
        value["#meta"]["model-version"] = json!("0.0.0-other");
        let e = TraceFile::from_value(Path::new("a.json"), &value).unwrap_err();
        assert_eq!(e.field, "#meta.model-version");
        assert!(
            e.to_string()
                .starts_with("a.json: field `#meta.model-version`"),
            "{e}"
        );

        let mut value = trace.to_itf();
        value["#meta"]["config"]["brokers"] = json!(3);
        let e = TraceFile::from_value(Path::new("b.json"), &value).unwrap_err();
        assert_eq!(e.field, "vars", "{e}");

        let mut value = trace.to_itf();
        value["#meta"]["config"]["acks"] = json!("most");
        let e = TraceFile::from_value(Path::new("c.json"), &value).unwrap_err();
        assert_eq!(e.field, "#meta.config.acks");

        let mut value = trace.to_itf();
        value["states"][1]["controller"]["view"]["partition_epoch"] = json!(9);
        let file = TraceFile::from_value(Path::new("d.json"), &value).unwrap();
        let e = file
            .to_path(&InsyncModel::new(file.meta.config))
            .unwrap_err();
        assert_eq!(e.field, "states[1].controller.view.partition_epoch", "{e}");
    }
}
