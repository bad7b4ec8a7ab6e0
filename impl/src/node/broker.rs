//! The broker process: `BrokerCore` over the on-disk `Storage`, and the broker's real-time
//! clocks (docs/protocol.md §6), none of which run in stepped mode:
//!
//! - heartbeat: `Heartbeat { partition_epoch }` to the controller every `heartbeat_interval`;
//! - fetch re-send: a `Fetch` or `OffsetsForLeaderEpoch` unanswered for `fetch_timeout` is sent
//!   again (`BrokerCore::fetch_timeout`); after a fencing answer that stopped the follower it
//!   is retried after [`STOPPED_RETRY_DELAY`], since the new view is usually a moment away;
//! - parked-fetch release: a fetch the leader parked is answered after `fetch_max_wait`
//!   (`BrokerCore::release_parked`), so idle followers never hit their fetch timeout;
//! - replica lag: `Lag(f)` fires when f has not caught up (per `BrokerCore::lag_candidates`)
//!   for `replica_lag_time_max`;
//! - the core's durability timers (docs/protocol.md §2): `Flush` fires `flush_interval` after
//!   the core armed it (under `fsync = lazy`, once the log holds unflushed records), and
//!   `HwCheckpoint` [`HIGH_WATERMARK_CHECKPOINT_INTERVAL`] after the HW first differed from its
//!   checkpoint; a clean stop does both. In stepped mode the harness fires them.
//!
//! Start: a data directory without a log is the first start of a fresh cluster
//! (`BrokerStart::Initial` with the initial view, broker epoch 0); otherwise the broker
//! restarts (`RegisterBroker` with the next broker epoch). The broker epoch (KIP-903: the
//! number of restarts) is a checkpoint in the data directory, [`BROKER_EPOCH_FILE_NAME`],
//! written durably before the core starts, so no two incarnations share an epoch. `--simulate-power-loss-on-start` first cuts the log back to what was
//! durable (`storage::simulate_power_loss`), as a stepped restart after SIGKILL needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::config::{BrokerConfig, Timing};
use super::event_loop::{Outgoing, Role};
use super::shutdown::{shutdown_pair, spawn_signal_handler};
use super::{bind, run_node, NodeError, Wiring};
use crate::core::{BrokerCore, BrokerStart, ControllerState, CoreError, Effects, ReplicaLog};
use crate::protocol::{
    BrokerEpoch, BrokerId, Epoch, FetchResult, Message, Metadata, NodeId, Offset,
    OffsetsForLeaderEpochResult, Record, Snapshot, Timer,
};
use crate::storage::log::LOG_FILE_NAME;
use crate::storage::{
    read_checkpoint, simulate_power_loss, write_checkpoint, Storage, StorageError, StorageOptions,
};
use crate::wire::PeerName;

/// File name of the broker-epoch checkpoint inside the data directory.
pub const BROKER_EPOCH_FILE_NAME: &str = "broker-epoch.checkpoint";

/// Real time only: how long after the core arms `HwCheckpoint` the runtime fires it (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms`, default 5 s).
pub const HIGH_WATERMARK_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Retry delay of a follower stopped by a fencing answer (see the module doc).
pub const STOPPED_RETRY_DELAY: Duration = Duration::from_millis(50);

/// The broker's storage, shared between the core (which owns it as its `ReplicaLog`) and the
/// runtime's background flush. Both run on the event loop task, so the lock is never contended.
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

/// One follower's lag clock: its caught-up count and since when it has not changed.
#[derive(Clone, Copy, Debug)]
struct LagClock {
    caught_up_count: u64,
    since: Instant,
}

/// The real-time clocks (absent in stepped mode).
#[derive(Debug)]
struct Clocks {
    timing: Timing,
    next_heartbeat: Instant,
    /// When each armed durability timer (`Flush`, `HwCheckpoint`) fires: set when the core
    /// arms it, removed when the core cancels it.
    durability: BTreeMap<Timer, Instant>,
    /// When the follower's outstanding request is given up on and sent again.
    request_deadline: Option<Instant>,
    /// Leader: parked fetches and since when.
    parked_since: BTreeMap<BrokerId, Instant>,
    lag: BTreeMap<BrokerId, LagClock>,
}

/// The broker as the event loop drives it.
pub struct BrokerRole {
    core: BrokerCore<SharedStorage>,
    config: BrokerConfig,
    /// The start handler's messages, sent when the event loop starts.
    initial: Option<Outgoing>,
    clocks: Option<Clocks>,
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
        let clocks = (!config.options.stepped).then(|| {
            let now = Instant::now();
            // A restarted broker's first heartbeat would repeat the `RegisterBroker` it has
            // just sent (see `BrokerCore::heartbeat`): wait one interval.
            let next_heartbeat = match fresh {
                true => now,
                false => now + config.options.timing.heartbeat_interval,
            };
            Clocks {
                timing: config.options.timing.clone(),
                next_heartbeat,
                durability: BTreeMap::new(),
                request_deadline: None,
                parked_since: BTreeMap::new(),
                lag: BTreeMap::new(),
            }
        });
        let mut role = BrokerRole {
            core,
            config,
            initial: None,
            clocks,
        };
        role.initial = Some(role.take(initial));
        Ok(role)
    }

    /// Keeps one deadline per armed durability timer (the core arms them at most once until
    /// it cancels them) and passes the messages on.
    fn take(&mut self, effects: Effects) -> Outgoing {
        if let Some(clocks) = self.clocks.as_mut() {
            let now = Instant::now();
            for timer in &effects.cancel {
                clocks.durability.remove(timer);
            }
            for timer in &effects.arm {
                let delay = match timer {
                    Timer::Flush => clocks.timing.flush_interval,
                    Timer::HwCheckpoint => HIGH_WATERMARK_CHECKPOINT_INTERVAL,
                    Timer::Lag(_) | Timer::Expire(_) | Timer::Heartbeat(_) => continue,
                };
                clocks
                    .durability
                    .entry(timer.clone())
                    .or_insert(now + delay);
            }
        }
        effects.send
    }

    /// Fires the durability timers that are due.
    fn fire_durability(&mut self, now: Instant) -> Result<Outgoing, NodeError> {
        let Some(clocks) = self.clocks.as_mut() else {
            return Ok(Vec::new());
        };
        let due: Vec<Timer> = clocks
            .durability
            .iter()
            .filter(|(_, deadline)| now >= **deadline)
            .map(|(timer, _)| timer.clone())
            .collect();
        let mut outgoing = Vec::new();
        for timer in due {
            if let Some(sent) = self.fire(&timer)? {
                outgoing.extend(sent);
            }
        }
        Ok(outgoing)
    }

    /// Notes what the clocks need from one input's outgoing messages: requests sent (fetch
    /// deadline), fetches answered or parked.
    fn observe(&mut self, fetch_from: Option<BrokerId>, stopped: bool, outgoing: &Outgoing) {
        let Some(clocks) = self.clocks.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut requested = false;
        let mut answered_fetch = false;
        for (target, message) in outgoing {
            match (target, message) {
                (NodeId::Broker(_), Message::Fetch { .. })
                | (NodeId::Broker(_), Message::OffsetsForLeaderEpoch { .. }) => requested = true,
                (NodeId::Broker(follower), Message::FetchResponse { .. }) => {
                    clocks.parked_since.remove(follower);
                    answered_fetch |= Some(*follower) == fetch_from;
                }
                _ => {}
            }
        }
        if requested {
            clocks.request_deadline = Some(now + clocks.timing.fetch_timeout);
        } else if stopped {
            clocks.request_deadline = Some(now + STOPPED_RETRY_DELAY);
        }
        if let (Some(follower), false) = (fetch_from, answered_fetch) {
            clocks.parked_since.entry(follower).or_insert(now);
        }
    }

    fn tick_clocks(&mut self, now: Instant) -> Result<Outgoing, NodeError> {
        let mut outgoing = Vec::new();
        let Some(clocks) = self.clocks.as_mut() else {
            return Ok(outgoing);
        };
        if now >= clocks.next_heartbeat {
            clocks.next_heartbeat = now + clocks.timing.heartbeat_interval;
            outgoing.push((NodeId::Controller, self.core.heartbeat()));
        }
        if clocks
            .request_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            clocks.request_deadline = None;
            let effects = self.core.fetch_timeout();
            let sent = self.take(effects);
            self.observe(None, false, &sent);
            outgoing.extend(sent);
        }
        outgoing.extend(self.release_parked(now)?);
        outgoing.extend(self.fire_lagging(now)?);
        outgoing.extend(self.fire_durability(now)?);
        Ok(outgoing)
    }

    fn release_parked(&mut self, now: Instant) -> Result<Outgoing, NodeError> {
        let Some(clocks) = self.clocks.as_mut() else {
            return Ok(Vec::new());
        };
        let wait = clocks.timing.fetch_max_wait;
        let due: Vec<BrokerId> = clocks
            .parked_since
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= wait)
            .map(|(follower, _)| *follower)
            .collect();
        let mut outgoing = Vec::new();
        for follower in due {
            if let Some(clocks) = self.clocks.as_mut() {
                clocks.parked_since.remove(&follower);
            }
            let effects = self.core.release_parked(follower).map_err(core_failure)?;
            outgoing.extend(self.take(effects));
        }
        Ok(outgoing)
    }

    fn fire_lagging(&mut self, now: Instant) -> Result<Outgoing, NodeError> {
        let Some(clocks) = self.clocks.as_mut() else {
            return Ok(Vec::new());
        };
        let candidates = self.core.lag_candidates();
        clocks
            .lag
            .retain(|follower, _| candidates.iter().any(|c| c.follower == *follower));
        let window = clocks.timing.replica_lag_time_max;
        let mut due = Vec::new();
        for candidate in candidates {
            let clock = clocks.lag.entry(candidate.follower).or_insert(LagClock {
                caught_up_count: candidate.caught_up_count,
                since: now,
            });
            if clock.caught_up_count != candidate.caught_up_count {
                *clock = LagClock {
                    caught_up_count: candidate.caught_up_count,
                    since: now,
                };
            }
            if now.saturating_duration_since(clock.since) >= window {
                due.push(candidate.follower);
            }
        }
        let mut outgoing = Vec::new();
        for follower in due {
            warn!(follower, ?window, "follower lagging; proposing ISR shrink");
            if let Some(clocks) = self.clocks.as_mut() {
                clocks.lag.remove(&follower);
            }
            if let Some(sent) = self.fire(&Timer::Lag(follower))? {
                outgoing.extend(sent);
            }
        }
        Ok(outgoing)
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
    fn start(&mut self) -> Result<Outgoing, NodeError> {
        let sent = self.initial.take().unwrap_or_default();
        self.observe(None, false, &sent);
        Ok(sent)
    }

    fn step(&mut self, from: NodeId, message: Message) -> Result<Outgoing, NodeError> {
        let fetch_from = match (&from, &message) {
            (NodeId::Broker(follower), Message::Fetch { .. }) => Some(*follower),
            _ => None,
        };
        // A fencing answer stops the follower until a new view; it retries soon (the view is
        // usually a moment away). Other answers leave the fetch deadline alone: a duplicate
        // answer to a re-sent fetch is dropped by the core and must not trigger another.
        let stopped = matches!(
            message,
            Message::FetchResponse {
                result: FetchResult::FencedLeaderEpoch
                    | FetchResult::UnknownLeaderEpoch
                    | FetchResult::NotLeader,
                ..
            } | Message::OffsetsForLeaderEpochResponse {
                result: OffsetsForLeaderEpochResult::NotLeader
            }
        );
        let log_end_offset = self.core.log().log_end_offset();
        match self.core.step(from, message) {
            Ok(effects) => {
                let truncated_to = self.core.log().log_end_offset();
                if truncated_to < log_end_offset {
                    // Operators want to see this one: records this replica held are gone.
                    info!(?from, log_end_offset, truncated_to, "log truncated");
                }
                let sent = self.take(effects);
                self.observe(fetch_from, stopped, &sent);
                Ok(sent)
            }
            Err(CoreError::Storage(error)) => Err(NodeError::Storage(error)),
            Err(error) => {
                warn!(?from, %error, "input refused by the broker core");
                Ok(Vec::new())
            }
        }
    }

    fn fire(&mut self, timer: &Timer) -> Result<Option<Outgoing>, NodeError> {
        match self.core.fire(timer) {
            Ok(effects) => {
                let sent = self.take(effects);
                self.observe(None, false, &sent);
                Ok(Some(sent))
            }
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

    fn tick(&mut self, now: Instant) -> Result<Outgoing, NodeError> {
        self.tick_clocks(now)
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
        stepped: config.options.stepped,
        peers,
        brokers: config.options.protocol.brokers.iter().copied().collect(),
        accepts_controller: true,
        accepts_clients: true,
    };
    let (trigger, shutdown) = shutdown_pair();
    spawn_signal_handler(trigger.clone());
    run_node(listener, role, wiring, trigger, shutdown).await
}
