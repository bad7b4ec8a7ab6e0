//! The step driver: replays one model trace on real processes and checks every step.
//!
//! For each step it performs the model's action on the nodes (deliver exactly that frame,
//! fire that timer, `SIGKILL` that broker, restart it on its data directory after a simulated
//! power loss, send that client request), waits until the affected node has handled it, and
//! compares:
//! - (a) every node's `Inspect` state, through the abstraction function, with the model's
//!   state of that actor, and the client the harness plays with the model's client;
//! - (b) every channel's frames, mapped, with the model's messages in flight: this covers the
//!   messages emitted by the step (and that nothing else was emitted or lost);
//! - each node's armed timers with the model's timer set for that actor;
//! - liveness: a node the model has up runs, a node the model has crashed does not.
//!
//! Waiting without sleeping (conformance-notes): after an event reaches node X, the harness
//! sends X a `Barrier` naming how many frames it delivered to X per channel; X answers once it
//! has processed them, with the frames it has emitted per channel; the harness then waits
//! until exactly that many have arrived at the router. Every wait is bounded: a timeout is a
//! divergence, never a hang. The first difference stops the trace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use insync_impl::protocol::{self as imp, NodeId};
use insync_model::actor::State;
use insync_model::describe::{action_summary, StepAction};
use insync_model::model::{Action, SystemState};
use insync_model::msg::{Msg, Timer};
use insync_model::types::BrokerId;
use insync_model::{Config, Variant};
use serde_json::Value;
use stateright::actor::{ActorModelAction, Id, Network};

use crate::abstraction::{self, BrokerContext};
use crate::client;
use crate::cluster::{Cluster, ClusterSpec};
use crate::control::{ControlClient, ControlError};
use crate::diff;
use crate::mapping::{self, TimerTarget};
use crate::router::Router;
use crate::trace::{self, ModelTrace};

/// Most frames delivered while letting a counterexample's cluster settle.
pub const DRAIN_DELIVERIES_MAX: usize = 1000;

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

/// What a real cluster holds after a counterexample: acknowledged records that are gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consequence {
    /// Record ids the real brokers acknowledged (with the trace's acks setting).
    pub acked: Vec<u8>,
    /// The leader `consume` read from, per the controller's view.
    pub leader: Option<u32>,
    /// `(offset, record id, leader epoch)` as `insync consume` printed them.
    pub consumed: Vec<(u64, u8, u32)>,
    /// Acknowledged records `consume` does not return.
    pub missing: Vec<u8>,
    /// Every running broker's log, `(offset, record id, leader epoch)`.
    pub logs: BTreeMap<u32, Vec<(u64, u8, u32)>>,
    /// `consume`'s stderr or failure, if any.
    pub note: String,
    /// The counterexample's property.
    pub property: Option<String>,
    /// The nodes' state at the end of the trace, before frames in flight were let arrive.
    pub evidence: crate::evidence::Evidence,
}

/// What one trace exercised.
#[derive(Clone, Debug, Default)]
pub struct Covered {
    pub action_kinds: BTreeSet<&'static str>,
    pub message_types: BTreeSet<&'static str>,
    pub states: BTreeSet<u64>,
    pub transitions: BTreeSet<(u64, String)>,
}

/// A failure that stops a trace: a divergence, or the harness itself failing.
#[derive(Debug)]
enum Stop {
    Diverged(Vec<String>),
    Harness(String),
}

impl From<ControlError> for Stop {
    fn from(error: ControlError) -> Self {
        Stop::Diverged(vec![format!("control channel: {error}")])
    }
}

/// The running system under test and the harness's own client.
struct Harness {
    cfg: Config,
    router: Router,
    cluster: Cluster,
    controls: BTreeMap<NodeId, ControlClient>,
    client: insync_model::client::ClientState,
    contexts: BTreeMap<u32, BrokerContext>,
    timeout: Duration,
}

/// Replays `trace` on fresh processes. Never panics on a divergence; returns it.
pub async fn replay(trace: &ModelTrace, options: &ReplayOptions) -> TraceOutcome {
    let started = Instant::now();
    let tempdir;
    let dir = match &options.keep_dir {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            if let Err(e) = std::fs::create_dir_all(dir) {
                return harness_failure(trace, started, format!("{}: {e}", dir.display()));
            }
            dir.clone()
        }
        None => match tempfile::Builder::new().prefix("insync-conform-").tempdir() {
            Ok(t) => {
                tempdir = t;
                tempdir.path().to_owned()
            }
            Err(e) => return harness_failure(trace, started, format!("tempdir: {e}")),
        },
    };
    let logs = options.keep_dir.clone();
    let mut outcome = TraceOutcome {
        steps_replayed: 0,
        divergence: None,
        elapsed: Duration::ZERO,
        covered: Covered::default(),
        snapshots: BTreeMap::new(),
        client: client::initial(),
        consequence: None,
    };
    let mut harness = match Harness::start(&trace.meta.config, options, dir).await {
        Ok(h) => h,
        Err(stop) => {
            outcome.divergence = Some(divergence(0, "Init".into(), stop, logs));
            outcome.elapsed = started.elapsed();
            return outcome;
        }
    };
    let result = harness.run(trace, &mut outcome).await;
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

fn harness_failure(trace: &ModelTrace, started: Instant, reason: String) -> TraceOutcome {
    let _ = trace;
    TraceOutcome {
        steps_replayed: 0,
        divergence: Some(divergence(0, "Init".into(), Stop::Harness(reason), None)),
        elapsed: started.elapsed(),
        covered: Covered::default(),
        snapshots: BTreeMap::new(),
        client: client::initial(),
        consequence: None,
    }
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
    async fn start(cfg: &Config, options: &ReplayOptions, dir: PathBuf) -> Result<Harness, Stop> {
        let mut nodes = vec![NodeId::Controller];
        nodes.extend((1..=u32::from(cfg.brokers)).map(NodeId::Broker));
        let mut router = Router::bind(&nodes, CLUSTER_ID)
            .await
            .map_err(|e| Stop::Harness(e.to_string()))?;
        let variant = options.impl_variant.unwrap_or(cfg.variant);
        let spec = ClusterSpec {
            binary: options.binary.clone(),
            brokers: u32::from(cfg.brokers),
            cluster_id: CLUSTER_ID.into(),
            protocol_flags: protocol_flags(cfg, variant),
            dir,
        };
        let cluster = Cluster::start(spec, &mut router)
            .await
            .map_err(|e| Stop::Harness(e.to_string()))?;
        let mut harness = Harness {
            cfg: *cfg,
            router,
            cluster,
            controls: BTreeMap::new(),
            client: client::initial(),
            contexts: (1..=u32::from(cfg.brokers))
                .map(|b| (b, BrokerContext::FIRST_START))
                .collect(),
            timeout: options.step_timeout,
        };
        for node in nodes {
            harness.connect(node).await?;
        }
        Ok(harness)
    }

    async fn connect(&mut self, node: NodeId) -> Result<(), Stop> {
        let addr = self
            .cluster
            .listen_addr(node)
            .map_err(|e| Stop::Harness(e.to_string()))?;
        let control = ControlClient::connect(node, addr, CLUSTER_ID, self.timeout).await?;
        self.controls.insert(node, control);
        Ok(())
    }

    /// The whole trace: initial state, then every step.
    async fn run(
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
        self.check(initial, outcome)
            .await
            .map_err(|s| (0, "Init".to_string(), s))?;
        outcome.covered.states.insert(trace::fingerprint(initial));
        for (index, pair) in trace.path.windows(2).enumerate() {
            let step = index + 1;
            let (before, action) = &pair[0];
            let (after, _) = &pair[1];
            let action = action.as_ref().expect("inner steps have actions");
            let words = action_summary(&self.cfg, action);
            self.perform(action)
                .await
                .map_err(|s| (step, words.clone(), s))?;
            self.check(after, outcome)
                .await
                .map_err(|s| (step, words.clone(), s))?;
            record(&mut outcome.covered, before, action, after);
            outcome.steps_replayed = step;
        }
        Ok(())
    }

    /// Performs one model action on the real system and waits until it is handled.
    async fn perform(&mut self, action: &Action) -> Result<(), Stop> {
        match action {
            ActorModelAction::Deliver { src, dst, msg } => self.deliver(*src, *dst, msg).await,
            ActorModelAction::Timeout(actor, timer) => self.fire(*actor, timer).await,
            ActorModelAction::Crash(actor) => {
                let node = self.node(*actor)?;
                self.controls.remove(&node);
                self.cluster
                    .kill(node)
                    .await
                    .map_err(|e| Stop::Diverged(vec![e.to_string()]))?;
                self.router.node_down(node);
                Ok(())
            }
            ActorModelAction::Recover(actor) => {
                let node = self.node(*actor)?;
                self.cluster
                    .restart(node, &mut self.router)
                    .await
                    .map_err(|e| Stop::Harness(e.to_string()))?;
                if let NodeId::Broker(b) = node {
                    let context = self.contexts.get_mut(&b).expect("every broker");
                    context.restarts += 1;
                    context.registration_delivered = false;
                }
                self.connect(node).await?;
                self.settle(node).await
            }
            ActorModelAction::Drop(_) | ActorModelAction::SelectRandom { .. } => {
                Err(Stop::Harness(format!("the model never takes {action:?}")))
            }
        }
    }

    fn node(&self, actor: Id) -> Result<NodeId, Stop> {
        mapping::node_of_actor(&self.cfg, actor).map_err(|e| Stop::Harness(e.to_string()))
    }

    async fn deliver(&mut self, src: Id, dst: Id, msg: &Msg) -> Result<(), Stop> {
        let (source, target) = (self.node(src)?, self.node(dst)?);
        let head = self.router.head(source, target).ok_or_else(|| {
            Stop::Diverged(vec![format!(
                "{}: the model delivers {msg:?} but no frame is queued",
                channel_name(&self.cfg, src, dst)
            )])
        })?;
        let mapped = mapping::msg_from_impl(&head, None)
            .map(|m| mapping::erase_model_only(&m))
            .map_err(|e| Stop::Diverged(vec![format!("head frame {head:?}: {e}")]))?;
        if mapped != mapping::erase_model_only(msg) {
            return Err(Stop::Diverged(vec![format!(
                "{}: head of channel is {mapped:?}, the model delivers {msg:?}",
                channel_name(&self.cfg, src, dst)
            )]));
        }
        if let NodeId::Client(_) = target {
            self.router
                .pop(source, target)
                .map_err(|e| Stop::Harness(e.to_string()))?;
            let from = BrokerId::from_id(src);
            client::on_response(&mut self.client, from, &mapped);
            return Ok(());
        }
        self.router
            .deliver(source, target)
            .await
            .map_err(|e| Stop::Diverged(vec![e.to_string()]))?;
        self.settle(target).await
    }

    async fn fire(&mut self, actor: Id, timer: &Timer) -> Result<(), Stop> {
        let client = NodeId::Client(mapping::HARNESS_CLIENT_ID);
        let request = match mapping::timer_to_impl(timer) {
            TimerTarget::Node(t) => {
                let node = self.node(actor)?;
                let control = self.control(node)?;
                control.fire(t).await?;
                return self.settle(node).await;
            }
            TimerTarget::ModelOnly(t) => {
                return Err(Stop::Diverged(vec![format!(
                    "the model fires {t:?}, which the implementation has no counterpart for"
                )]))
            }
            TimerTarget::ClientProduce(b) => {
                client::produce(&self.cfg, &mut self.client, b).map(|m| (b, m))
            }
            TimerTarget::ClientConsume(b) => client::consume(&mut self.client, b).map(|m| (b, m)),
        };
        let (broker, msg) = request.ok_or_else(|| {
            Stop::Diverged(vec![format!(
                "the harness's client is not idle ({:?}) when the model's client fires {timer:?}",
                self.client.in_flight
            )])
        })?;
        let frame = mapping::client_request_to_impl(&msg).expect("a client request");
        self.router
            .inject(client, NodeId::Broker(u32::from(broker.0)), frame);
        Ok(())
    }

    fn control(&mut self, node: NodeId) -> Result<&mut ControlClient, Stop> {
        self.controls
            .get_mut(&node)
            .ok_or_else(|| Stop::Diverged(vec![format!("{node:?} is not running")]))
    }

    /// Waits until `node` has handled everything delivered to it and every frame it emitted
    /// has reached the router.
    async fn settle(&mut self, node: NodeId) -> Result<(), Stop> {
        let received = self.router.delivered_to(node);
        let timeout = self.timeout;
        let counts = self.control(node)?.barrier(received).await?;
        let dropped: BTreeMap<_, _> = counts.dropped.iter().filter(|(_, n)| **n > 0).collect();
        if !dropped.is_empty() {
            return Err(Stop::Diverged(vec![format!(
                "{node:?} dropped outbound frames: {dropped:?}"
            )]));
        }
        self.router
            .wait_arrived(node, &counts.emitted, timeout)
            .await
            .map_err(|e| Stop::Diverged(vec![e.to_string()]))?;
        let arrived = self.router.arrived_from(node);
        let emitted: BTreeMap<NodeId, u64> =
            counts.emitted.into_iter().filter(|(_, n)| *n > 0).collect();
        if arrived != emitted {
            return Err(Stop::Diverged(vec![format!(
                "{node:?} reports {emitted:?} frames emitted, the router received {arrived:?}"
            )]));
        }
        let faults = self.router.take_faults();
        if !faults.is_empty() {
            return Err(Stop::Diverged(faults));
        }
        Ok(())
    }

    /// Compares the whole real system with the model's `state`.
    async fn check(&mut self, state: &SystemState, outcome: &mut TraceOutcome) -> Result<(), Stop> {
        let names = trace::actor_vars(&self.cfg);
        let mut differences = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let actor = Id::from(index);
            let node = self.node(actor)?;
            let crashed = state.crashed[index];
            if let NodeId::Client(_) = node {
                let expected = model_actor(&state.actor_states[index]);
                let actual = serde_json::to_value(&self.client).expect("serialisable");
                differences.extend(
                    diff::diff(name, &expected, &actual)
                        .iter()
                        .map(|d| d.to_string()),
                );
                continue;
            }
            let running = self.cluster.is_running(node);
            if crashed || !running {
                if crashed == running {
                    differences.push(format!(
                        "{name}: the model has it {}, the process is {}",
                        if crashed { "crashed" } else { "up" },
                        if running { "running" } else { "down" }
                    ));
                }
                continue;
            }
            let snapshot = self.control(node)?.inspect().await?;
            let (expected, actual, armed) = match (&*state.actor_states[index], &snapshot) {
                (State::Controller(model), imp::Snapshot::Controller(real)) => (
                    to_value(&abstraction::erase_controller(model)),
                    abstraction::controller(real).map(|s| to_value(&s)),
                    &real.armed_timers,
                ),
                (State::Broker(model), imp::Snapshot::Broker(real)) => {
                    let b = u32::from(BrokerId::from_id(actor).0);
                    let context = self.contexts[&b];
                    (
                        to_value(&abstraction::erase_broker(model)),
                        abstraction::broker(real, context).map(|s| to_value(&s)),
                        &real.armed_timers,
                    )
                }
                (_, other) => {
                    return Err(Stop::Diverged(vec![format!(
                        "{name}: the node reports a snapshot of another kind: {other:?}"
                    )]))
                }
            };
            match actual {
                Ok(actual) => differences.extend(
                    diff::diff(name, &expected, &actual)
                        .iter()
                        .map(|d| d.to_string()),
                ),
                Err(e) => differences.push(format!("{name}: {e}")),
            }
            let expected_timers: BTreeSet<Timer> = state.timers_set[index]
                .iter()
                .copied()
                .filter(|t| matches!(mapping::timer_to_impl(t), TimerTarget::Node(_)))
                .collect();
            match abstraction::armed_timers(armed) {
                Ok(actual) if actual == expected_timers => {}
                Ok(actual) => differences.push(format!(
                    "{name}.timers: expected {expected_timers:?}, actual {actual:?}"
                )),
                Err(e) => differences.push(format!("{name}.timers: {e}")),
            }
            outcome.snapshots.insert(node, snapshot);
        }
        differences.extend(self.compare_network(state));
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Stop::Diverged(differences))
        }
    }

    /// Lets every frame in flight between the nodes arrive (client channels stay as they
    /// are), then reads the partition with the real `insync consume`.
    async fn consequence(&mut self, binary: &std::path::Path) -> Consequence {
        let mut note = String::new();
        for _ in 0..DRAIN_DELIVERIES_MAX {
            let next = self.router.queues().into_keys().find(|(src, dst)| {
                !matches!(src, NodeId::Client(_))
                    && !matches!(dst, NodeId::Client(_))
                    && self.cluster.is_running(*dst)
            });
            let Some((src, dst)) = next else { break };
            let delivered = self.router.deliver(src, dst).await;
            if let Err(e) = delivered.map_err(|e| format!("{e}")) {
                note = e;
                break;
            }
            if let Err(stop) = self.settle(dst).await {
                note = format!("{stop:?}");
                break;
            }
        }
        let mut logs = BTreeMap::new();
        let mut leader = None;
        let nodes: Vec<NodeId> = self.controls.keys().copied().collect();
        for node in nodes {
            let Ok(snapshot) = self.control(node).map(|c| c.inspect()) else {
                continue;
            };
            match snapshot.await {
                Ok(imp::Snapshot::Controller(c)) => leader = c.view.leader,
                Ok(imp::Snapshot::Broker(b)) => {
                    let log = b
                        .log
                        .iter()
                        .map(|(o, e, id)| (*o, mapping::record_id_from_impl(id).unwrap_or(0), *e))
                        .collect();
                    logs.insert(b.id, log);
                }
                Err(e) => note = e.to_string(),
            }
        }
        let (consumed, consume_note) = self.consume(binary).await;
        if !consume_note.is_empty() {
            note = consume_note;
        }
        let acked = self.client.acked.clone();
        let missing = acked
            .iter()
            .copied()
            .filter(|r| !consumed.iter().any(|(_, id, _)| id == r))
            .collect();
        Consequence {
            acked,
            leader,
            consumed,
            missing,
            logs,
            note,
            property: None,
            evidence: crate::evidence::Evidence::default(),
        }
    }

    /// `insync consume --json` against every running node, as an operator would run it.
    async fn consume(&self, binary: &std::path::Path) -> (Vec<(u64, u8, u32)>, String) {
        // The controller's metadata names the brokers by their router addresses, through
        // which an outside client is passed (`router::PASS_THROUGH_EXCEPT`).
        let bootstrap: Vec<String> = self
            .cluster
            .listen_addr(NodeId::Controller)
            .map(|a| vec![a.to_string()])
            .unwrap_or_default();
        let output = tokio::process::Command::new(binary)
            .args([
                "consume",
                "--json",
                "--timeout-ms",
                "5000",
                "--cluster-id",
                CLUSTER_ID,
            ])
            .arg("--bootstrap")
            .arg(bootstrap.join(","))
            .kill_on_drop(true)
            .output()
            .await;
        let output = match output {
            Ok(o) => o,
            Err(e) => return (Vec::new(), format!("cannot run consume: {e}")),
        };
        let records = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|v| {
                let offset = v.get("offset")?.as_u64()?;
                let sequence = v.get("sequence")?.as_u64()?;
                let epoch = v.get("leader_epoch")?.as_u64()?;
                Some((
                    offset,
                    u8::try_from(sequence).ok()?,
                    u32::try_from(epoch).ok()?,
                ))
            })
            .collect();
        (
            records,
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    }

    fn compare_network(&self, state: &SystemState) -> Vec<String> {
        let Network::Ordered(channels) = &state.network else {
            unreachable!("the model's network is ordered")
        };
        let mut expected: BTreeMap<(Id, Id), Vec<Msg>> = BTreeMap::new();
        for ((src, dst), queue) in channels {
            let erased: Vec<Msg> = queue
                .iter()
                .filter(|m| !mapping::model_only_message(m))
                .map(mapping::erase_model_only)
                .collect();
            if !erased.is_empty() {
                expected.insert((*src, *dst), erased);
            }
        }
        let mut actual: BTreeMap<(Id, Id), Vec<Msg>> = BTreeMap::new();
        let mut differences = Vec::new();
        for ((source, target), frames) in self.router.queues() {
            let ids = mapping::actor_of_node(&self.cfg, source)
                .and_then(|s| Ok((s, mapping::actor_of_node(&self.cfg, target)?)));
            let (src, dst) = match ids {
                Ok(ids) => ids,
                Err(e) => {
                    differences.push(format!("network {source:?} → {target:?}: {e}"));
                    continue;
                }
            };
            let mut mapped = Vec::with_capacity(frames.len());
            for frame in &frames {
                match mapping::msg_from_impl(frame, None) {
                    Ok(m) => mapped.push(mapping::erase_model_only(&m)),
                    Err(e) => differences.push(format!(
                        "network {}: frame {frame:?}: {e}",
                        channel_name(&self.cfg, src, dst)
                    )),
                }
            }
            actual.insert((src, dst), mapped);
        }
        let keys: BTreeSet<(Id, Id)> = expected.keys().chain(actual.keys()).copied().collect();
        for key in keys {
            let e = expected.get(&key).cloned().unwrap_or_default();
            let a = actual.get(&key).cloned().unwrap_or_default();
            if e != a {
                differences.push(format!(
                    "network {}: expected {}, actual {}",
                    channel_name(&self.cfg, key.0, key.1),
                    fmt_msgs(&e),
                    fmt_msgs(&a)
                ));
            }
        }
        differences
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("model states serialise")
}

fn model_actor(state: &State) -> Value {
    trace::actor_value(state)
}

fn fmt_msgs(msgs: &[Msg]) -> String {
    let items: Vec<String> = msgs.iter().map(insync_model::describe::fmt_msg).collect();
    format!("[{}]", items.join(", "))
}

fn channel_name(cfg: &Config, src: Id, dst: Id) -> String {
    let names = trace::actor_vars(cfg);
    let name = |id: Id| {
        names
            .get(usize::from(id))
            .cloned()
            .unwrap_or_else(|| format!("actor {id:?}"))
    };
    format!("{} → {}", name(src), name(dst))
}

/// Adds one replayed step to the coverage.
fn record(covered: &mut Covered, before: &SystemState, action: &Action, after: &SystemState) {
    let step = StepAction::from_action(action);
    covered.action_kinds.insert(step.kind());
    if let StepAction::Deliver { msg, .. } = &step {
        if !mapping::model_only_message(msg) {
            covered.message_types.insert(msg.type_name());
        }
    }
    let from = trace::fingerprint(before);
    covered.states.insert(trace::fingerprint(after));
    covered
        .transitions
        .insert((from, trace::action_value(action).to_string()));
}
