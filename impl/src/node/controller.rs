//! The controller process: `ControllerCore` with its state persisted (fsync) before anything
//! it decided leaves the process.
//!
//! Session expiry is the core's `Expire(b)` timer, whose clock every message from b restarts
//! (docs/protocol.md §4.10); the event loop keeps its deadline (`--session-timeout-ms`). A
//! restarted controller arms every `Expire(b)` when it starts, so each broker gets a full
//! session from then before it is suspected.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use super::config::{ControllerConfig, PartitionNodes, TopicsConfig};
use super::controller_topics::ControllerTopics;
use super::event_loop::{Output, Role};
use super::shutdown::{shutdown_pair, spawn_signal_handler};
use super::{
    bind, claim_data_dir, join_partitions, open_trace, run_node, Claim, NodeError, Wiring,
};
use crate::core::{ControllerCore, ControllerState, CoreError, Effects};
use crate::protocol::{
    BrokerId, ClientId, ClientRequest, Metadata, NodeId, PeerId, PeerMessage, Snapshot, Timer,
};
use crate::storage::{read_checkpoint, write_checkpoint};
use crate::trace_log::NodeState;
use crate::wire::PeerName;

/// File name of the controller's persisted state inside its data directory.
pub const CONTROLLER_STATE_FILE_NAME: &str = "controller.state";

/// The controller as the event loop drives it.
pub struct ControllerRole {
    core: ControllerCore,
    state_path: PathBuf,
    config: ControllerConfig,
    /// Effects of `ControllerCore::new`, performed by `start`.
    initial: Option<Effects>,
}

impl ControllerRole {
    /// Loads the persisted state (a fresh cluster when there is none).
    pub fn open(config: ControllerConfig) -> Result<Self, NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            NodeError::Storage(crate::storage::StorageError::Io {
                path: config.data_dir.clone(),
                source,
            })
        })?;
        let state_path = config.data_dir.join(CONTROLLER_STATE_FILE_NAME);
        let persisted: Option<ControllerState> = read_checkpoint(&state_path)?;
        match &persisted {
            Some(state) => {
                info!(view = ?state.view, fenced = ?state.fenced, "controller state loaded")
            }
            None => info!("no controller state: starting a fresh cluster"),
        }
        let (core, initial) = ControllerCore::new(config.options.protocol.clone(), persisted);
        Ok(ControllerRole {
            core,
            state_path,
            config,
            initial: Some(initial),
        })
    }

    /// Persist-before-send: the state is durable before any message of `effects` is handed on.
    fn apply(&mut self, effects: Effects) -> Result<Output, NodeError> {
        if effects.persist_state {
            write_checkpoint(&self.state_path, self.core.state())?;
        }
        Ok(Output::of(effects))
    }
}

impl Role for ControllerRole {
    fn start(&mut self) -> Result<Output, NodeError> {
        let initial = self.initial.take().unwrap_or_default();
        self.apply(initial)
    }

    fn step_peer(&mut self, from: PeerId, message: PeerMessage) -> Result<Output, NodeError> {
        match self.core.step_peer(from, message) {
            Ok(effects) => self.apply(effects),
            Err(error) => {
                warn!(?from, %error, "input refused by the controller core");
                Ok(Output::default())
            }
        }
    }

    /// The controller's listener admits no client (`listener::admit`), so no request reaches
    /// it; one that did would be refused like any input that makes no sense.
    fn step_client(
        &mut self,
        client: ClientId,
        _request: ClientRequest,
    ) -> Result<Output, NodeError> {
        warn!(
            client,
            "a client request reached the controller, which serves none"
        );
        Ok(Output::default())
    }

    fn fire(&mut self, timer: &Timer) -> Result<Option<Output>, NodeError> {
        match self.core.fire(timer) {
            Ok(effects) => self.apply(effects).map(Some),
            Err(CoreError::TimerNotArmed(_)) => Ok(None),
            Err(error) => Err(NodeError::Core(error.to_string())),
        }
    }

    fn snapshot(&self) -> Result<Snapshot, NodeError> {
        Ok(Snapshot::Controller(self.core.snapshot()))
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            node: NodeId::Controller,
            view: Some(self.core.state().view.clone()),
            brokers: self.config.brokers.clone(),
            controller: Some(self.config.listen.clone()),
        }
    }

    fn trace_state(&self, _with_log: bool) -> Result<NodeState, NodeError> {
        Ok(NodeState::Controller(self.core.snapshot()))
    }

    fn close(&mut self) -> Result<(), NodeError> {
        Ok(())
    }
}

/// `insync controller`: binds, then serves until a signal or `Control::Shutdown`. `on_bound`
/// is told the bound address (port 0 picks one) before the node starts serving.
pub async fn run_controller(
    config: ControllerConfig,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), NodeError> {
    let topics = TopicsConfig::default_topic();
    run_controller_partitions(config, topics, on_bound).await
}

/// [`run_controller`] with the topic table (`controller_topics`): one controller core for
/// each assigned partition slot after 0 too, each on its own port (`--partition-nodes`) and
/// data directory, all in this process and stopping together, and more started as topics are
/// created. Every assigned slot is bound before slot 0 tells `on_bound`.
pub async fn run_controller_partitions(
    config: ControllerConfig,
    topics: TopicsConfig,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), NodeError> {
    config.options.timing.validate()?;
    let brokers: BTreeSet<BrokerId> = config.brokers.keys().copied().collect();
    PartitionNodes::check_list(&topics.pool, &brokers)?;
    let (trigger, shutdown) = shutdown_pair();
    spawn_signal_handler(trigger.clone());
    // Locked before the table in it is read.
    let claim = claim_data_dir(&config.data_dir, &config.options)?;
    let owner = ControllerTopics::open(
        config.clone(),
        &topics.topics,
        topics.pool,
        trigger.clone(),
        shutdown.clone(),
    )?;
    let owner = Arc::new(owner);
    owner.start_assigned().await?;
    let (listener, role, mut wiring) = controller_node(config, claim, on_bound).await?;
    wiring.topics = Some(owner.clone());
    let result = run_node(listener, role, wiring, trigger, shutdown).await;
    join_partitions(async { result }, owner.take_running()).await
}

/// One controller core's listener, role and wiring (its data directory locked by `claim`),
/// bound and ready to run.
pub(crate) async fn controller_node(
    config: ControllerConfig,
    claim: Claim,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(tokio::net::TcpListener, ControllerRole, Wiring), NodeError> {
    let listener = bind(&config.listen, on_bound).await?;
    let trace = open_trace(NodeId::Controller, &config.options)?;
    let role = ControllerRole::open(config.clone())?;
    let wiring = Wiring {
        name: PeerName::Controller,
        cluster_id: config.options.cluster_id.clone(),
        timing: (!config.options.stepped).then(|| config.options.timing.clone()),
        peers: config
            .brokers
            .iter()
            .map(|(id, address)| (NodeId::Broker(*id), address.clone()))
            .collect(),
        brokers: config.brokers.keys().copied().collect(),
        accepts_controller: false,
        accepts_clients: false,
        claim,
        trace,
        kafka: None,
        channel: None,
        topics: None,
    };
    Ok((listener, role, wiring))
}
