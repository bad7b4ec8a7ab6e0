//! A broker process's copy of the topic table and its partition slots' event loops.
//!
//! [`BrokerTopics`] keeps the last table this broker learned, durable in its data directory
//! (`kafka::topic_table`), so a broker restarted while the controller is down still serves
//! every partition it served; on a fresh start the copy is made from the `--topic` flags, as
//! the controller's own table is. The controller's table is the truth: it is fetched on a
//! period (the heartbeat interval, [`BrokerTopics::spawn_refresh`]) and at once after this
//! broker forwarded a CreateTopics ([`BrokerTopics::create`]). A table only grows, so one
//! that does not extend the copy is logged and ignored.
//!
//! For each slot the table assigns, one broker event loop runs, started exactly as a slot
//! after 0 always was: its own port (`--partition-nodes`), its own data directory
//! (`DATA/partition-<slot>/`; a fresh one installs the initial view), heartbeating its own
//! controller core. The Kafka listener's routes (`kafka::partitions::PartitionTable`) are
//! rebuilt from the table and the running loops and published on a `watch` channel whenever
//! either changes; a partition whose loop is not up yet is answered `LEADER_NOT_AVAILABLE`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as BlockingMutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::config::{BrokerConfig, ConfigError, PartitionNodes};
use super::controller_topics::{open_table, slots_of};
use super::event_loop::Input;
use super::shutdown::{Shutdown, ShutdownTrigger};
use super::{
    claim_data_dir, input_channel, partition_data_dir, partition_options, run_node, NodeError,
};
use crate::client::ControlClient;
use crate::kafka::partitions::PartitionTable;
use crate::kafka::topic_table::{Slot, TopicRefusal, TopicTable};
use crate::kafka::TopicSpec;
use crate::protocol::{Control, ControlReply};
use crate::storage::write_checkpoint;

/// Why a forwarded CreateTopics did not create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateFailure {
    #[error(transparent)]
    Refused(TopicRefusal),
    #[error("the controller at {controller} did not answer: {reason}")]
    Unreachable { controller: String, reason: String },
}

/// [`BrokerTopics::create`]'s future.
pub type BoxedCreate<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<TopicTable, CreateFailure>> + Send + 'a>,
>;

/// The table and the loops running for it.
#[derive(Debug)]
struct Served {
    table: TopicTable,
    /// Each running slot's event loop (slot 0's is the process's own node).
    loops: BTreeMap<Slot, mpsc::Sender<Input>>,
}

/// See the module doc.
#[derive(Debug)]
pub struct BrokerTopics {
    served: Mutex<Served>,
    path: PathBuf,
    /// Slot 0's configuration, from which every other slot's is made.
    config: BrokerConfig,
    pool: BTreeMap<Slot, PartitionNodes>,
    routes: watch::Sender<Arc<PartitionTable>>,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    /// The running slots' tasks and the refresher (at most `PARTITIONS_MAX` + 1).
    running: BlockingMutex<Vec<JoinHandle<Result<(), NodeError>>>>,
}

impl BrokerTopics {
    /// Loads the table copy (or makes it from `specs`) from `config.data_dir`, which the
    /// caller has locked; `slot_0` is the input channel of the process's own event loop.
    pub fn open(
        config: BrokerConfig,
        specs: &[TopicSpec],
        pool: Vec<PartitionNodes>,
        slot_0: mpsc::Sender<Input>,
        trigger: ShutdownTrigger,
        shutdown: Shutdown,
    ) -> Result<Self, NodeError> {
        let (path, pool, table) = open_table(&config.data_dir, specs, pool)?;
        let loops = BTreeMap::from([(0, slot_0)]);
        let (routes, _) = watch::channel(Arc::new(PartitionTable::of_table(&table, &loops)));
        Ok(BrokerTopics {
            served: Mutex::new(Served { table, loops }),
            path,
            config,
            pool,
            routes,
            trigger,
            shutdown,
            running: BlockingMutex::new(Vec::new()),
        })
    }

    /// The Kafka listener's routes, updated as loops start and topics appear.
    pub fn routes(&self) -> watch::Receiver<Arc<PartitionTable>> {
        self.routes.subscribe()
    }

    /// Starts the loop of every slot the table assigns (at start: any failure is fatal, as
    /// a port that cannot be bound always was).
    pub async fn start_assigned(&self) -> Result<(), NodeError> {
        let mut served = self.served.lock().await;
        let failed = self.start_missing(&mut served).await;
        self.publish(&served);
        match failed.into_iter().next() {
            Some((_, failure)) => Err(failure),
            None => Ok(()),
        }
    }

    /// Takes the controller's `table` when it extends this copy: durable first, then the new
    /// slots' loops, then the routes. A loop that cannot start is logged and tried again at
    /// the next table; the routes meanwhile say its partition is not up. A table that changes
    /// nothing (every period, most of the time) publishes nothing.
    pub async fn adopt(&self, table: TopicTable) -> Result<(), NodeError> {
        let mut served = self.served.lock().await;
        let grown = table != served.table;
        if grown {
            if !table.extends(&served.table) {
                warn!(?table, ours = ?served.table, "a topic table that drops topics; ignored");
                return Ok(());
            }
            if let Err(reason) = table.validate(slots_of(&self.pool)) {
                warn!(
                    reason,
                    "a topic table that does not fit this broker's slots; ignored"
                );
                return Ok(());
            }
            write_checkpoint(&self.path, &table)?;
            info!(topics = ?table.topics(), "topic table updated");
            served.table = table;
        }
        let loops_before = served.loops.len();
        for (slot, failure) in self.start_missing(&mut served).await {
            error!(%failure, slot, "cannot start a slot's loop; retried later");
        }
        if grown || served.loops.len() != loops_before {
            self.publish(&served);
        }
        Ok(())
    }

    /// Starts the loop of every slot the table assigns that has none yet; the slots that
    /// could not start, with why.
    async fn start_missing(&self, served: &mut Served) -> Vec<(Slot, NodeError)> {
        let missing: Vec<Slot> = (served.table.assigned().into_iter())
            .filter(|slot| !served.loops.contains_key(slot))
            .collect();
        let mut failed = Vec::new();
        for slot in missing {
            match self.start_slot(slot).await {
                Ok(inputs) => {
                    served.loops.insert(slot, inputs);
                }
                Err(failure) => failed.push((slot, failure)),
            }
        }
        failed
    }

    fn publish(&self, served: &Served) {
        let routes = PartitionTable::of_table(&served.table, &served.loops);
        self.routes.send_replace(Arc::new(routes));
    }

    /// Forwards a CreateTopics to the controller process; once created, takes the new table
    /// at once (this broker's loops for it start before the answer). Boxed: the loops it
    /// starts serve Kafka requests that call this again, a future type that would otherwise
    /// contain itself.
    pub fn create<'a>(&'a self, spec: &'a TopicSpec, validate_only: bool) -> BoxedCreate<'a> {
        Box::pin(self.forward(spec, validate_only))
    }

    async fn forward(
        &self,
        spec: &TopicSpec,
        validate_only: bool,
    ) -> Result<TopicTable, CreateFailure> {
        let request = Control::CreateTopic {
            name: spec.name.clone(),
            partitions: spec.partitions,
            validate_only,
        };
        let controller = self.config.controller.clone();
        let unreachable = |reason: String| CreateFailure::Unreachable {
            controller: controller.clone(),
            reason,
        };
        let cluster_id = &self.config.options.cluster_id;
        let mut client = ControlClient::connect(&controller, cluster_id)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let reply = client.request(&request).await;
        match reply.map_err(|error| unreachable(error.to_string()))? {
            ControlReply::TopicCreated(table) => {
                if !validate_only {
                    if let Err(failure) = self.adopt(table.clone()).await {
                        error!(%failure, "cannot keep the new topic table");
                    }
                }
                Ok(table)
            }
            ControlReply::TopicRefused(refusal) => Err(CreateFailure::Refused(refusal)),
            other => Err(unreachable(format!("answered {other:?}"))),
        }
    }

    /// Fetches the controller's table every `period` until shutdown, over one control
    /// connection (opened again when it breaks).
    pub fn spawn_refresh(self: &Arc<Self>, period: Duration) {
        let topics = self.clone();
        let task = tokio::spawn(async move {
            topics.refresh(period).await;
            Ok(())
        });
        self.running.lock().expect("not poisoned").push(task);
    }

    async fn refresh(&self, period: Duration) {
        let mut shutdown = self.shutdown.clone();
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut client: Option<ControlClient> = None;
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = ticks.tick() => {}
            }
            let table = tokio::select! {
                _ = shutdown.recv() => return,
                table = self.fetch(&mut client) => table,
            };
            match table {
                Ok(table) => {
                    if let Err(failure) = self.adopt(table).await {
                        error!(%failure, "cannot keep the controller's topic table");
                    }
                }
                Err(reason) => {
                    debug!(reason, "topic table not fetched; next period");
                    client = None;
                }
            }
        }
    }

    async fn fetch(&self, client: &mut Option<ControlClient>) -> Result<TopicTable, String> {
        if client.is_none() {
            let cluster_id = &self.config.options.cluster_id;
            let connect = ControlClient::connect(&self.config.controller, cluster_id);
            *client = Some(connect.await.map_err(|error| error.to_string())?);
        }
        let connected = client.as_mut().expect("connected above");
        match connected.request(&Control::Topics).await {
            Ok(ControlReply::Topics(table)) => Ok(table),
            Ok(other) => Err(format!("answered {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Binds and spawns slot `slot`'s broker event loop; its input channel.
    async fn start_slot(&self, slot: Slot) -> Result<mpsc::Sender<Input>, NodeError> {
        assert_ne!(slot, 0, "slot 0 is the process's own node");
        let nodes = self
            .pool
            .get(&slot)
            .expect("the table uses pool slots only");
        let config = &self.config;
        let listen = nodes.brokers.get(&config.id).cloned().ok_or_else(|| {
            let entry = nodes.format();
            let reason = format!("broker {} (this one) is not named", config.id);
            ConfigError::PartitionNodes { entry, reason }
        })?;
        let partition = BrokerConfig {
            listen,
            controller: nodes.controller.clone(),
            peers: nodes.brokers.clone(),
            data_dir: partition_data_dir(&config.data_dir, slot),
            options: partition_options(&config.options, &config.data_dir, slot),
            ..config.clone()
        };
        let claim = claim_data_dir(&partition.data_dir, &partition.options)?;
        let (listener, role, mut wiring) =
            super::broker::broker_node(partition, claim, |_| {}).await?;
        let channel = input_channel();
        let inputs = channel.0.clone();
        wiring.channel = Some(channel);
        let (trigger, shutdown) = (self.trigger.clone(), self.shutdown.clone());
        let task = tokio::spawn(run_node(listener, role, wiring, trigger, shutdown));
        self.running.lock().expect("not poisoned").push(task);
        info!(slot, "slot's event loop started");
        Ok(inputs)
    }

    /// The running slots' tasks, for the caller to join once the process stops.
    pub fn take_running(&self) -> Vec<JoinHandle<Result<(), NodeError>>> {
        std::mem::take(&mut *self.running.lock().expect("not poisoned"))
    }
}
