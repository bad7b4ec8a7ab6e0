//! Performing and settling one step on the real system: deliver exactly the model's frame,
//! fire the model's timer, `SIGKILL` a node, restart it after a simulated power loss, or send
//! the client's request; then wait, without sleeping, until the affected node has handled it.
//!
//! Waiting (conformance-notes): after an event reaches node X, the harness sends X a `Barrier`
//! naming how many frames it delivered to X per channel; X answers once it has processed them,
//! with the frames it has emitted per channel; the harness then waits until exactly that many
//! have arrived at the router. Every wait is bounded: a timeout is a divergence, never a hang.
//! `observe` gathers what the comparison (`compare`) judges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use insync_impl::client::{ClientError, ControlClient};
use insync_impl::node::supervisor::SupervisorError;
use insync_impl::protocol::{self as imp, NodeId};
use insync_impl::storage::power_loss::recovered;
use insync_model::actor::Storage as ModelStorage;
use insync_model::model::{Action, SystemState};
use insync_model::msg::{Msg, Timer};
use insync_model::types::BrokerId;
use insync_model::Config;
use stateright::actor::{ActorModelAction, Id};

use crate::client;
use crate::cluster::{Cluster, ClusterSpec};
use crate::compare;
use crate::mapping::{self, TimerTarget};
use crate::replay::{protocol_flags, ReplayOptions, CLUSTER_ID};
use crate::router::{Frame, Router};
use crate::trace;

/// A failure that stops a trace: a divergence, or the harness itself failing.
#[derive(Debug)]
pub(crate) enum Stop {
    Diverged(Vec<String>),
    Harness(String),
}

/// A control request that failed: the node stopped answering or answered nonsense, which is
/// a divergence (a node the model has up must serve its control channel).
fn control_failed(node: NodeId) -> impl Fn(ClientError) -> Stop {
    move |error| Stop::Diverged(vec![format!("control channel of {node:?}: {error}")])
}

/// The running system under test and the harness's own client.
pub(crate) struct Harness {
    pub(crate) cfg: Config,
    pub(crate) router: Router,
    pub(crate) cluster: Cluster,
    pub(crate) controls: BTreeMap<NodeId, ControlClient>,
    pub(crate) client: insync_model::client::ClientState,
    timeout: Duration,
}

impl Harness {
    /// Binds the router, starts every node and opens its control channel.
    pub(crate) async fn start(
        cfg: &Config,
        options: &ReplayOptions,
        dir: PathBuf,
    ) -> Result<Harness, Stop> {
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
        let token = self.cluster.control_token();
        let control =
            ControlClient::connect_within(&addr.to_string(), CLUSTER_ID, Some(token), self.timeout)
                .await
                .map_err(control_failed(node))?;
        self.controls.insert(node, control);
        Ok(())
    }

    /// Performs one model action on the real system and waits until it is handled.
    /// `before` is the model's state the action starts from (a recovery reads its storage).
    pub(crate) async fn perform(
        &mut self,
        before: &SystemState,
        action: &Action,
    ) -> Result<(), Stop> {
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
                let harness = |e: SupervisorError| Stop::Harness(e.to_string());
                if self.cluster.power_loss(node).map_err(harness)?.is_some() {
                    self.check_storage(before, *actor, node)?;
                }
                self.cluster
                    .restart(node, &mut self.router)
                    .await
                    .map_err(harness)?;
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
                compare::channel_name(&self.cfg, src, dst)
            )])
        })?;
        let mapped = mapping::msg_from_impl(&head, None)
            .map_err(|e| Stop::Diverged(vec![format!("head frame {head:?}: {e}")]))?;
        if mapped != *msg {
            return Err(Stop::Diverged(vec![format!(
                "{}: head of channel is {mapped:?}, the model delivers {msg:?}",
                compare::channel_name(&self.cfg, src, dst)
            )]));
        }
        if let NodeId::Client(_) = target {
            self.router
                .pop(source, target)
                .map_err(|e| Stop::Harness(e.to_string()))?;
            let Msg::Reply(reply) = mapped else {
                return Err(Stop::Diverged(vec![format!(
                    "{}: a client is sent {mapped:?}, which is no reply",
                    compare::channel_name(&self.cfg, src, dst)
                )]));
            };
            client::on_response(&mut self.client, BrokerId::from_id(src), &reply);
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
                let fired = control
                    .fire_timer(t.clone())
                    .await
                    .map_err(control_failed(node))?;
                if !fired {
                    return Err(Stop::Diverged(vec![format!(
                        "{node:?} refused to fire {t:?}: it is not armed"
                    )]));
                }
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
        let frame = Frame::Request(mapping::client_request_to_impl(&msg));
        self.router
            .inject(client, NodeId::Broker(u32::from(broker.0)), frame);
        Ok(())
    }

    pub(crate) fn control(&mut self, node: NodeId) -> Result<&mut ControlClient, Stop> {
        self.controls
            .get_mut(&node)
            .ok_or_else(|| Stop::Diverged(vec![format!("{node:?} is not running")]))
    }

    /// Waits until `node` has handled everything delivered to it and every frame it emitted
    /// has reached the router.
    pub(crate) async fn settle(&mut self, node: NodeId) -> Result<(), Stop> {
        let received = self.router.delivered_to(node);
        let timeout = self.timeout;
        let (emitted, dropped) = self
            .control(node)?
            .barrier(received, timeout)
            .await
            .map_err(control_failed(node))?;
        let dropped: BTreeMap<_, _> = dropped.iter().filter(|(_, n)| **n > 0).collect();
        if !dropped.is_empty() {
            return Err(Stop::Diverged(vec![format!(
                "{node:?} dropped outbound frames: {dropped:?}"
            )]));
        }
        self.router
            .wait_arrived(node, &emitted, timeout)
            .await
            .map_err(|e| Stop::Diverged(vec![e.to_string()]))?;
        let arrived = self.router.arrived_from(node);
        let emitted: BTreeMap<NodeId, u64> = emitted.into_iter().filter(|(_, n)| *n > 0).collect();
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

    /// After a power loss, before the restart: what recovery finds on the dead broker's disk
    /// against what the model says survives its crash (its storage in `before`).
    fn check_storage(&self, before: &SystemState, actor: Id, node: NodeId) -> Result<(), Stop> {
        let dir = self.cluster.data_dir(node).expect("a supervised node");
        let found = recovered(&dir).map_err(|e| {
            Stop::Diverged(vec![format!(
                "{node:?}: recovery of {} failed: {e}",
                dir.display()
            )])
        })?;
        let saved = before.actor_storages[usize::from(actor)].as_ref();
        let model = saved.map(|ModelStorage::Broker(storage)| storage);
        let name = &trace::actor_vars(&self.cfg)[usize::from(actor)];
        let mut differences = compare::storage(name, model, &found);
        let crashed = before.actor_states[usize::from(actor)].as_broker();
        let crashed = crashed.expect("only a broker loses power");
        differences.extend(compare::durable_state(name, crashed, &found));
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Stop::Diverged(differences))
        }
    }

    /// Compares the whole real system with the model's `state`; the snapshots read are kept
    /// in `snapshots` (for the counterexample's consequence) whether they match or not.
    pub(crate) async fn check(
        &mut self,
        state: &SystemState,
        snapshots: &mut BTreeMap<NodeId, imp::Snapshot>,
    ) -> Result<(), Stop> {
        let names = trace::actor_vars(&self.cfg);
        let mut differences = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let node = self.node(Id::from(index))?;
            let model = &*state.actor_states[index];
            if let NodeId::Client(_) = node {
                differences.extend(compare::client(name, model, &self.client));
                continue;
            }
            let (crashed, running) = (state.crashed[index], self.cluster.is_running(node));
            if crashed || !running {
                differences.extend(compare::liveness(name, crashed, running));
                continue;
            }
            let snapshot = self
                .control(node)?
                .inspect()
                .await
                .map_err(control_failed(node))?;
            let timers: BTreeSet<Timer> = state.timers_set[index].iter().copied().collect();
            differences.extend(compare::node(name, model, &timers, &snapshot));
            snapshots.insert(node, snapshot);
        }
        let queues = self.router.queues();
        differences.extend(compare::network(&self.cfg, &state.network, &queues));
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Stop::Diverged(differences))
        }
    }
}
