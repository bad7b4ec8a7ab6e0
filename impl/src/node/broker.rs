//! The broker process: `BrokerCore` over the on-disk `Storage`.
//!
//! Every deadline (fetch re-send and back-off, parked-fetch release, replica lag, heartbeat,
//! and the durability timers of docs/protocol.md §2: `Flush` under `fsync = lazy`, fired
//! `flush_interval` after the log first holds unflushed records, and `HwCheckpoint`, fired
//! [`HIGH_WATERMARK_CHECKPOINT_INTERVAL`] after the HW first differs from its checkpoint) is a
//! timer of the core, kept by the event loop; this file decides nothing about them. What
//! remains here is the clean stop, which flushes and checkpoints in real time as if both
//! timers had fired (in stepped mode only the harness fires timers).
//!
//! Writes: the core owns the `Storage` but only reads it; each step's `Effects::writes` are
//! applied here, in order, before the step's messages are handed to the event loop and before
//! the next input (the core asserts that at the next input). This is the only place a broker's
//! storage changes.
//!
//! Start: a data directory without a log is the first start of a fresh cluster
//! (`BrokerStart::Initial` with the initial view, broker epoch 0); otherwise the broker
//! restarts (`RegisterBroker` with the next broker epoch). The broker epoch (KIP-903: the
//! number of restarts) is a checkpoint in the data directory, [`BROKER_EPOCH_FILE_NAME`],
//! written durably before the core starts, so no two incarnations share an epoch.
//! `--simulate-power-loss-on-start` first cuts the log back to what was durable
//! (`storage::simulate_power_loss`), as a stepped restart after SIGKILL needs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::{info, warn};

use super::broker_topics::BrokerTopics;
use super::config::{BrokerConfig, PartitionNodes, TopicsConfig};
use super::event_loop::{Output, Role};
use super::shutdown::{shutdown_pair, spawn_signal_handler};
use super::{
    bind, claim_data_dir, input_channel, join_partitions, open_trace, run_node, Claim, NodeError,
    Wiring,
};
use crate::core::{
    BrokerCore, BrokerStart, ControllerState, CoreError, Effects, ReplicaApply, Write,
};
use crate::kafka::{KafkaConfig, KafkaStart};
use crate::protocol::{
    BrokerEpoch, BrokerId, ClientId, ClientRequest, Metadata, NodeId, PeerId, PeerMessage,
    Snapshot, Timer,
};
use crate::storage::log::LOG_FILE_NAME;
use crate::storage::{
    read_checkpoint, simulate_power_loss, write_checkpoint, Storage, StorageError, StorageOptions,
};
use crate::trace_log::NodeState;
use crate::wire::PeerName;

/// File name of the broker-epoch checkpoint inside the data directory.
pub const BROKER_EPOCH_FILE_NAME: &str = "broker-epoch.checkpoint";

pub use super::config::HIGH_WATERMARK_CHECKPOINT_INTERVAL;

/// The broker as the event loop drives it.
pub struct BrokerRole {
    core: BrokerCore<Storage>,
    config: BrokerConfig,
    initial: Option<Effects>,
}

impl BrokerRole {
    /// Opens (recovering) the data directory and starts the core.
    pub fn open(config: BrokerConfig) -> Result<Self, NodeError> {
        let dir = &config.data_dir;
        let fresh = !dir.join(LOG_FILE_NAME).exists();
        if config.simulate_power_loss_on_start && !fresh {
            match simulate_power_loss(dir) {
                Ok(report) => info!(?report, "simulated a power loss before start"),
                Err(StorageError::DurabilityNotTracked { .. }) => {
                    warn!("no durable-end record: nothing to cut back")
                }
                Err(error) => return Err(error.into()),
            }
        }
        let options = StorageOptions {
            fsync: config.options.fsync,
            track_durability: config.options.stepped || config.simulate_power_loss_on_start,
        };
        let (storage, report) = Storage::open(dir, options)?;
        info!(?report, fresh, "data directory opened");
        let protocol = config.options.protocol.clone();
        let broker_epoch = next_broker_epoch(dir, fresh)?;
        info!(broker_epoch, "broker epoch");
        let start = match fresh {
            true => BrokerStart::Initial(ControllerState::initial(&protocol).view),
            false => BrokerStart::Restart { broker_epoch },
        };
        let (core, initial) =
            BrokerCore::new(config.id, protocol, storage, start).map_err(core_failure)?;
        Ok(BrokerRole {
            core,
            config,
            initial: Some(initial),
        })
    }
}

impl BrokerRole {
    /// What one input's result asks of the runtime: its writes performed and its messages
    /// handed on; a refused input is logged and answered with nothing; a storage failure
    /// stops the node.
    fn outcome(
        &mut self,
        from: NodeId,
        result: Result<Effects, CoreError<StorageError>>,
    ) -> Result<Output, NodeError> {
        match result {
            Ok(effects) => self.perform(effects),
            Err(CoreError::Storage(error)) => Err(NodeError::Storage(error)),
            Err(error) => {
                warn!(?from, %error, "input refused by the broker core");
                Ok(Output::default())
            }
        }
    }

    /// Applies the step's writes in order, each durable when applied if it is a durable one
    /// (`Write::is_durable`); only then are the step's messages handed on, which is what
    /// `Effects::must_sync` asks. An I/O error is fatal: the process exits and recovers.
    fn perform(&mut self, effects: Effects) -> Result<Output, NodeError> {
        for write in &effects.writes {
            if let Write::TruncateTo(truncated_to) = write {
                // Operators want to see this one: records this replica held are gone.
                let log_end_offset = self.core.storage().log().log_end_offset();
                info!(log_end_offset, truncated_to, "log truncated");
            }
            self.core.storage_mut().apply(write)?;
        }
        Ok(Output::of(effects))
    }
}

/// The broker epoch of this incarnation, made durable before it is used: 0 on the first
/// start, one more than the checkpointed one on a restart (a data directory from before broker
/// epochs existed counts as epoch 0).
fn next_broker_epoch(dir: &std::path::Path, fresh: bool) -> Result<BrokerEpoch, NodeError> {
    let path = dir.join(BROKER_EPOCH_FILE_NAME);
    let broker_epoch = match fresh {
        true => 0,
        false => {
            let previous: Option<BrokerEpoch> = read_checkpoint(&path)?;
            let previous = previous.unwrap_or(0);
            previous
                .checked_add(1)
                .ok_or_else(|| NodeError::Core(format!("broker epoch {previous} exhausted")))?
        }
    };
    write_checkpoint(&path, &broker_epoch)?;
    Ok(broker_epoch)
}

fn core_failure(error: CoreError<StorageError>) -> NodeError {
    match error {
        CoreError::Storage(error) => NodeError::Storage(error),
        other => NodeError::Core(other.to_string()),
    }
}

impl Role for BrokerRole {
    fn start(&mut self) -> Result<Output, NodeError> {
        let initial = self.initial.take().unwrap_or_default();
        self.perform(initial)
    }

    fn step_peer(&mut self, from: PeerId, message: PeerMessage) -> Result<Output, NodeError> {
        let result = self.core.step_peer(from, message);
        self.outcome(NodeId::from(from), result)
    }

    fn step_client(
        &mut self,
        client: ClientId,
        request: ClientRequest,
    ) -> Result<Output, NodeError> {
        let result = self.core.step_client(client, request);
        self.outcome(NodeId::Client(client), result)
    }

    fn fire(&mut self, timer: &Timer) -> Result<Option<Output>, NodeError> {
        match self.core.fire(timer) {
            Ok(effects) => self.perform(effects).map(Some),
            Err(CoreError::TimerNotArmed(_)) => Ok(None),
            Err(error) => Err(core_failure(error)),
        }
    }

    fn snapshot(&self) -> Result<Snapshot, NodeError> {
        self.core
            .snapshot()
            .map(Snapshot::Broker)
            .map_err(core_failure)
    }

    fn metadata(&self) -> Metadata {
        let mut brokers = self.config.peers.clone();
        brokers.insert(self.config.id, self.config.listen.clone());
        Metadata {
            node: NodeId::Broker(self.config.id),
            view: self.core.view().cloned(),
            brokers,
            controller: Some(self.config.controller.clone()),
        }
    }

    fn trace_state(&self, with_log: bool) -> Result<NodeState, NodeError> {
        let snapshot = match with_log {
            true => self.core.snapshot().map_err(core_failure)?,
            false => self.core.snapshot_without_log(),
        };
        Ok(NodeState::Broker(Box::new(snapshot)))
    }

    fn close(&mut self) -> Result<(), NodeError> {
        // A graceful stop keeps everything appended and the current HW, as if both timers had
        // fired; in stepped mode only the harness fires timers, as the model has no clean stop.
        if self.config.options.stepped {
            return Ok(());
        }
        for timer in [Timer::Flush, Timer::HwCheckpoint] {
            self.fire(&timer)?;
        }
        Ok(())
    }
}

/// `insync broker`: binds, opens storage, then serves until a signal or `Control::Shutdown`.
pub async fn run_broker(
    config: BrokerConfig,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), NodeError> {
    let topics = TopicsConfig::default_topic();
    run_broker_with_kafka(config, None, topics, on_bound, |_| {}).await
}

/// [`run_broker`], and with `kafka` a Kafka listener too (`--kafka-listen`), bound after the
/// broker's own listener (`on_kafka_bound` is told where). Each partition slot after 0 the
/// topic table assigns (`broker_topics`; addresses from `--partition-nodes`) is one more
/// broker event loop in this process, on its own port and data directory, heartbeating its
/// own controller core, and more start as topics are created; the Kafka listener routes each
/// partition to its loop. Every loop shares one shutdown.
pub async fn run_broker_with_kafka(
    config: BrokerConfig,
    kafka: Option<KafkaConfig>,
    topics: TopicsConfig,
    on_bound: impl FnOnce(std::net::SocketAddr),
    on_kafka_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), NodeError> {
    config.options.timing.validate()?;
    let brokers: BTreeSet<BrokerId> = config.options.protocol.brokers.iter().copied().collect();
    PartitionNodes::check_list(&topics.pool, &brokers)?;
    let (trigger, shutdown) = shutdown_pair();
    spawn_signal_handler(trigger.clone());
    // Locked before the table copy in it is read.
    let claim = claim_data_dir(&config.data_dir, &config.options)?;
    let channel = input_channel();
    let refreshes = !config.options.stepped && !topics.pool.is_empty();
    let served = BrokerTopics::open(
        config.clone(),
        &topics.topics,
        topics.pool,
        channel.0.clone(),
        trigger.clone(),
        shutdown.clone(),
    )?;
    let served = Arc::new(served);
    served.start_assigned().await?;
    let (listener, role, mut wiring) = broker_node(config.clone(), claim, on_bound).await?;
    wiring.channel = Some(channel);
    if let Some(kafka) = kafka {
        let listener = bind(&kafka.listen, on_kafka_bound).await?;
        wiring.kafka = Some(KafkaStart {
            listener,
            broker: config.id,
            broker_epoch: role.core.snapshot_without_log().broker_epoch,
            cluster_id: config.options.cluster_id.clone(),
            replicas: config.options.protocol.brokers.clone(),
            config: kafka,
            routes: served.routes(),
            topics: Some(served.clone()),
        });
    }
    if refreshes {
        served.spawn_refresh(config.options.timing.heartbeat_interval);
    }
    let result = run_node(listener, role, wiring, trigger, shutdown).await;
    join_partitions(async { result }, served.take_running()).await
}

/// One broker event loop's listener, role (its storage opened) and wiring, its data
/// directory locked by `claim`, ready to run.
pub(crate) async fn broker_node(
    config: BrokerConfig,
    claim: Claim,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(tokio::net::TcpListener, BrokerRole, Wiring), NodeError> {
    let listener = bind(&config.listen, on_bound).await?;
    // Before the role takes its broker epoch: reading a long trace log to continue it takes
    // seconds, and an incarnation killed then must not have used an epoch (D9).
    let trace = open_trace(NodeId::Broker(config.id), &config.options)?;
    let role = BrokerRole::open(config.clone())?;
    let mut peers: BTreeMap<NodeId, String> = config
        .peers
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(id, address)| (NodeId::Broker(*id), address.clone()))
        .collect();
    peers.insert(NodeId::Controller, config.controller.clone());
    let wiring = Wiring {
        name: PeerName::Broker(config.id),
        cluster_id: config.options.cluster_id.clone(),
        timing: (!config.options.stepped).then(|| config.options.timing.clone()),
        peers,
        brokers: config.options.protocol.brokers.iter().copied().collect(),
        accepts_controller: true,
        accepts_clients: true,
        claim,
        trace,
        kafka: None,
        channel: None,
        topics: None,
    };
    Ok((listener, role, wiring))
}
