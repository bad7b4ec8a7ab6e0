//! The step driver: replays one model trace on real processes, checks the initial state and
//! every step, and stops at the first mismatch. What one step does and how it waits is in
//! `step`; what counts as a mismatch (node states through the abstraction function, armed
//! timers, every channel's frames, liveness) in `compare`; what a counterexample leads to on
//! the real cluster in `consequence`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use insync_impl::protocol::{self as imp, NodeId};
use insync_model::describe::{action_summary, StepAction};
use insync_model::model::{Action, SystemState};
use insync_model::{Config, Variant};

use crate::client;
use crate::step::{Harness, Stop};
use crate::trace::{self, ModelTrace};

pub use crate::consequence::Consequence;

/// The cluster id every replayed cluster uses.
pub const CLUSTER_ID: &str = "insync-conformance";

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The `insync` binary the nodes run.
    pub binary: PathBuf,
    /// The variant the nodes run; `None`: the trace's own. A different one is how the harness
    /// shows it is sensitive (a divergence is expected).
    pub impl_variant: Option<Variant>,
    /// Bound on every wait of one step.
    pub step_timeout: Duration,
    /// Keep data directories and node logs here instead of a deleted tempdir.
    pub keep_dir: Option<PathBuf>,
    /// After the trace (clean or not), let the nodes finish what is in flight and read the
    /// partition back with `insync consume`: the real consequence of a counterexample.
    pub consequence: bool,
}

impl ReplayOptions {
    pub fn new(binary: PathBuf) -> Self {
        ReplayOptions {
            binary,
            impl_variant: None,
            step_timeout: Duration::from_secs(10),
            keep_dir: None,
            consequence: false,
        }
    }
}

/// The first mismatch of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 0: the initial state; i: after the i-th action.
    pub step: usize,
    /// The action in the model's words (`Init` for step 0).
    pub action: String,
    /// What went wrong, one line each: field-level differences, or why a step could not be
    /// performed.
    pub differences: Vec<String>,
    /// Node logs of this replay, when kept.
    pub logs: Option<PathBuf>,
}

/// What replaying one trace produced.
#[derive(Clone, Debug)]
pub struct TraceOutcome {
    /// Steps (actions) performed and checked without a mismatch.
    pub steps_replayed: usize,
    pub divergence: Option<Divergence>,
    pub elapsed: Duration,
    /// Coverage of the steps that replayed cleanly.
    pub covered: Covered,
    /// The last inspected snapshots, for the counterexample's consequence.
    pub snapshots: BTreeMap<NodeId, imp::Snapshot>,
    /// The harness client's final state (what the real brokers acknowledged and served).
    pub client: insync_model::client::ClientState,
    /// With `ReplayOptions::consequence`: what the real partition holds afterwards.
    pub consequence: Option<Consequence>,
}

impl TraceOutcome {
    /// Before the first step: nothing replayed, covered or observed.
    fn nothing_replayed() -> TraceOutcome {
        TraceOutcome {
            steps_replayed: 0,
            divergence: None,
            elapsed: Duration::ZERO,
            covered: Covered::default(),
            snapshots: BTreeMap::new(),
            client: client::initial(),
            consequence: None,
        }
    }
}

/// What one trace exercised.
#[derive(Clone, Debug, Default)]
pub struct Covered {
    pub action_kinds: BTreeSet<&'static str>,
    pub message_types: BTreeSet<&'static str>,
    /// Timer kinds fired on the real nodes (or, for the client's, by the harness).
    pub timer_kinds: BTreeSet<&'static str>,
    pub states: BTreeSet<u64>,
    pub transitions: BTreeSet<(u64, String)>,
}

/// Replays `trace` on fresh processes. Never panics on a divergence; returns it.
pub async fn replay(trace: &ModelTrace, options: &ReplayOptions) -> TraceOutcome {
    let started = Instant::now();
    let tempdir;
    let dir = match &options.keep_dir {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            if let Err(e) = std::fs::create_dir_all(dir) {
                return harness_failure(started, format!("{}: {e}", dir.display()));
            }
            dir.clone()
        }
        None => match tempfile::Builder::new().prefix("insync-conform-").tempdir() {
            Ok(t) => {
                tempdir = t;
                tempdir.path().to_owned()
            }
            Err(e) => return harness_failure(started, format!("tempdir: {e}")),
        },
    };
    let logs = options.keep_dir.clone();
    let mut outcome = TraceOutcome::nothing_replayed();
    let mut harness = match Harness::start(&trace.meta.config, options, dir).await {
        Ok(h) => h,
        Err(stop) => {
            outcome.divergence = Some(divergence(0, "Init".into(), stop, logs));
            outcome.elapsed = started.elapsed();
            return outcome;
        }
    };
    let result = harness.run_trace(trace, &mut outcome).await;
    if let Err((step, action, stop)) = result {
        outcome.divergence = Some(divergence(step, action, stop, logs));
    }
    outcome.client = harness.client.clone();
    if options.consequence {
        let cluster = &harness.cluster;
        let evidence =
            crate::evidence::evidence(&outcome.snapshots, |node| cluster.is_running(node));
        let mut consequence = harness.consequence(&options.binary).await;
        consequence.property = trace.meta.property.clone();
        consequence.evidence = evidence;
        outcome.consequence = Some(consequence);
    }
    harness.cluster.shutdown().await;
    outcome.elapsed = started.elapsed();
    outcome
}

fn divergence(step: usize, action: String, stop: Stop, logs: Option<PathBuf>) -> Divergence {
    let differences = match stop {
        Stop::Diverged(lines) => lines,
        Stop::Harness(reason) => vec![format!("harness error (not a divergence): {reason}")],
    };
    Divergence {
        step,
        action,
        differences,
        logs,
    }
}

/// The harness could not even prepare the replay's directory.
fn harness_failure(started: Instant, reason: String) -> TraceOutcome {
    let mut outcome = TraceOutcome::nothing_replayed();
    outcome.divergence = Some(divergence(0, "Init".into(), Stop::Harness(reason), None));
    outcome.elapsed = started.elapsed();
    outcome
}

/// The protocol flags for the nodes, from the model's configuration.
pub fn protocol_flags(cfg: &Config, variant: Variant) -> Vec<String> {
    let mut flags = vec![
        "--variant".to_string(),
        variant.name().to_string(),
        "--fsync".into(),
        cfg.fsync.to_string(),
        "--min-isr".into(),
        cfg.min_insync_replicas.to_string(),
    ];
    if cfg.unclean_leader_election {
        flags.push("--unclean".into());
    }
    flags
}

impl Harness {
    /// The whole trace: initial state, then every step.
    async fn run_trace(
        &mut self,
        trace: &ModelTrace,
        outcome: &mut TraceOutcome,
    ) -> Result<(), (usize, String, Stop)> {
        let nodes: Vec<NodeId> = self.controls.keys().copied().collect();
        for node in nodes {
            self.settle(node)
                .await
                .map_err(|s| (0, "Init".to_string(), s))?;
        }
        let (initial, _) = &trace.path[0];
        self.check(initial, &mut outcome.snapshots)
            .await
            .map_err(|s| (0, "Init".to_string(), s))?;
        outcome.covered.states.insert(trace::fingerprint(initial));
        for (index, pair) in trace.path.windows(2).enumerate() {
            let step = index + 1;
            let (before, action) = &pair[0];
            let (after, _) = &pair[1];
            let action = action.as_ref().expect("inner steps have actions");
            let words = action_summary(&self.cfg, action);
            self.perform(before, action)
                .await
                .map_err(|s| (step, words.clone(), s))?;
            self.check(after, &mut outcome.snapshots)
                .await
                .map_err(|s| (step, words.clone(), s))?;
            record(&mut outcome.covered, before, action, after);
            outcome.steps_replayed = step;
        }
        Ok(())
    }
}

/// Adds one replayed step to the coverage.
fn record(covered: &mut Covered, before: &SystemState, action: &Action, after: &SystemState) {
    let step = StepAction::from_action(action);
    covered.action_kinds.insert(step.kind());
    if let StepAction::Deliver { msg, .. } = &step {
        covered.message_types.insert(msg.type_name());
    }
    if let StepAction::Timeout { timer, .. } = &step {
        covered.timer_kinds.insert(timer.kind());
    }
    let from = trace::fingerprint(before);
    covered.states.insert(trace::fingerprint(after));
    covered
        .transitions
        .insert((from, trace::action_value(action).to_string()));
}
