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
//! Start: a data directory without a log is the first start of a fresh cluster
//! (`BrokerStart::Initial` with the initial view, broker epoch 0); otherwise the broker
//! restarts (`RegisterBroker` with the next broker epoch). The broker epoch (KIP-903: the
//! number of restarts) is a checkpoint in the data directory, [`BROKER_EPOCH_FILE_NAME`],
//! written durably before the core starts, so no two incarnations share an epoch. `--simulate-power-loss-on-start` first cuts the log back to what was
//! durable (`storage::simulate_power_loss`), as a stepped restart after SIGKILL needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::{info, warn};

use super::config::BrokerConfig;
use super::event_loop::{Output, Role};
use super::shutdown::{shutdown_pair, spawn_signal_handler};
use super::{bind, claim_data_dir, run_node, NodeError, Wiring};
use crate::core::{BrokerCore, BrokerStart, ControllerState, CoreError, Effects, ReplicaLog};
use crate::protocol::{
    BrokerEpoch, ClientId, ClientRequest, Epoch, Metadata, NodeId, Offset, PeerId, PeerMessage,
    Record, Snapshot, Timer,
};
use crate::storage::log::LOG_FILE_NAME;
use crate::storage::{
    read_checkpoint, simulate_power_loss, write_checkpoint, Storage, StorageError, StorageOptions,
};
use crate::wire::PeerName;

/// File name of the broker-epoch checkpoint inside the data directory.
pub const BROKER_EPOCH_FILE_NAME: &str = "broker-epoch.checkpoint";

pub use super::config::HIGH_WATERMARK_CHECKPOINT_INTERVAL;

/// The broker's storage as the core's `ReplicaLog`, behind a lock that only the event loop
/// task takes, so it is never contended.
#[derive(Clone, Debug)]
pub struct SharedStorage(Arc<Mutex<Storage>>);

impl SharedStorage {
    fn lock(&self) -> MutexGuard<'_, Storage> {
        self.0.lock().expect("storage lock poisoned")
    }
}

impl ReplicaLog for SharedStorage {
    type Error = StorageError;
    fn log_end_offset(&self) -> Offset {
        ReplicaLog::log_end_offset(&*self.lock())
    }
    fn last_epoch(&self) -> Epoch {
        ReplicaLog::last_epoch(&*self.lock())
    }
    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        ReplicaLog::end_offset_for_epoch(&*self.lock(), epoch)
    }
    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, StorageError> {
        ReplicaLog::read(&*self.lock(), from, max_records)
    }
    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        ReplicaLog::append(&mut *self.lock(), records)
    }
    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        ReplicaLog::truncate_to(&mut *self.lock(), offset)
    }
    fn durable_end_offset(&self) -> Offset {
        ReplicaLog::durable_end_offset(&*self.lock())
    }
    fn flush(&mut self) -> Result<(), StorageError> {
        ReplicaLog::flush(&mut *self.lock())
    }
    fn high_watermark_checkpoint(&self) -> Offset {
        ReplicaLog::high_watermark_checkpoint(&*self.lock())
    }
    fn write_high_watermark(&mut self, hw: Offset) -> Result<(), StorageError> {
        ReplicaLog::write_high_watermark(&mut *self.lock(), hw)
    }
}

/// The broker as the event loop drives it.
pub struct BrokerRole {
    core: BrokerCore<SharedStorage>,
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
        let storage = SharedStorage(Arc::new(Mutex::new(storage)));
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

impl BrokerRole {
    /// What one input's result asks of the runtime. A refused input is logged and answered
    /// with nothing; a storage failure stops the node.
    fn outcome(
        &self,
        from: NodeId,
        log_end_offset: Offset,
        result: Result<Effects, CoreError<StorageError>>,
    ) -> Result<Output, NodeError> {
        match result {
            Ok(effects) => {
                let truncated_to = self.core.log().log_end_offset();
                if truncated_to < log_end_offset {
                    // Operators want to see this one: records this replica held are gone.
                    info!(?from, log_end_offset, truncated_to, "log truncated");
                }
                Ok(Output::of(effects))
            }
            Err(CoreError::Storage(error)) => Err(NodeError::Storage(error)),
            Err(error) => {
                warn!(?from, %error, "input refused by the broker core");
                Ok(Output::default())
            }
        }
    }
}

impl Role for BrokerRole {
    fn start(&mut self) -> Result<Output, NodeError> {
        Ok(Output::of(self.initial.take().unwrap_or_default()))
    }

    fn step_peer(&mut self, from: PeerId, message: PeerMessage) -> Result<Output, NodeError> {
        let log_end_offset = self.core.log().log_end_offset();
        let result = self.core.step_peer(from, message);
        self.outcome(NodeId::from(from), log_end_offset, result)
    }

    fn step_client(
        &mut self,
        client: ClientId,
        request: ClientRequest,
    ) -> Result<Output, NodeError> {
        let log_end_offset = self.core.log().log_end_offset();
        let result = self.core.step_client(client, request);
        self.outcome(NodeId::Client(client), log_end_offset, result)
    }

    fn fire(&mut self, timer: &Timer) -> Result<Option<Output>, NodeError> {
        match self.core.fire(timer) {
            Ok(effects) => Ok(Some(Output::of(effects))),
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
    config.options.timing.validate()?;
    let claim = claim_data_dir(&config.data_dir, &config.options)?;
    let listener = bind(&config.listen, on_bound).await?;
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
    };
    let (trigger, shutdown) = shutdown_pair();
    spawn_signal_handler(trigger.clone());
    run_node(listener, role, wiring, trigger, shutdown).await
}
