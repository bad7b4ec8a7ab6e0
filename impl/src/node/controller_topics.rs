//! The controller process's topic table and its partition slots' controller cores.
//!
//! [`ControllerTopics`] owns the table (`kafka::topic_table`): it is loaded from the
//! controller's data directory, or made from the `--topic` flags on a fresh start (a persisted
//! table wins over the flags), and every change is durable (`write_checkpoint`) before anyone
//! is answered. It answers the control channel's `Topics` and `CreateTopic` for the listener
//! of slot 0 (`listener::serve_control`); creating a topic allocates free slots, persists the
//! table, starts the new slots' controller cores, then answers. One creation at a time (a
//! mutex), so the same name asked twice at once, through two brokers, is created once and the
//! other ask is told it exists.
//!
//! A slot's controller core is exactly what partition p >= 1 always was: its own port (the
//! slot's `--partition-nodes` entry), its own data directory (`DATA/partition-<slot>/`), the
//! process's shutdown. A slot no topic uses binds nothing and runs nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex as BlockingMutex;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::config::{ControllerConfig, PartitionNodes};
use super::shutdown::{Shutdown, ShutdownTrigger};
use super::{partition_data_dir, partition_options, run_node, NodeError};
use crate::kafka::topic_table::{Slot, TopicRefusal, TopicTable, TOPIC_TABLE_FILE_NAME};
use crate::kafka::TopicSpec;
use crate::protocol::{Control, ControlReply};
use crate::storage::{read_checkpoint, write_checkpoint};

/// [`ControllerTopics::answer`]'s future.
pub type BoxedReply<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ControlReply> + Send + 'a>>;

/// See the module doc.
#[derive(Debug)]
pub struct ControllerTopics {
    table: Mutex<TopicTable>,
    path: PathBuf,
    /// Slot 0's configuration, from which every other slot's is made.
    config: ControllerConfig,
    /// Where each slot after 0 is served (`--partition-nodes`).
    pool: BTreeMap<Slot, PartitionNodes>,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    /// The running slots' tasks (at most `PARTITIONS_MAX`), joined at the end.
    running: BlockingMutex<Vec<JoinHandle<Result<(), NodeError>>>>,
}

impl ControllerTopics {
    /// Loads the table (or makes it from `specs`, durably) from `config.data_dir`, which the
    /// caller has locked. Starts no core: [`ControllerTopics::start_assigned`] does.
    pub fn open(
        config: ControllerConfig,
        specs: &[TopicSpec],
        pool: Vec<PartitionNodes>,
        trigger: ShutdownTrigger,
        shutdown: Shutdown,
    ) -> Result<Self, NodeError> {
        let (path, pool, table) = open_table(&config.data_dir, specs, pool)?;
        Ok(ControllerTopics {
            table: Mutex::new(table),
            path,
            config,
            pool,
            trigger,
            shutdown,
            running: BlockingMutex::new(Vec::new()),
        })
    }

    /// Starts the controller core of every assigned slot after 0 (slot 0 is the process's
    /// own node, which the caller runs).
    pub async fn start_assigned(&self) -> Result<(), NodeError> {
        let table = self.table.lock().await;
        for slot in table.assigned().into_iter().filter(|slot| *slot != 0) {
            self.start_slot(slot).await?;
        }
        Ok(())
    }

    /// The answer to a topic request on the control channel. Boxed: creating starts slots
    /// whose listeners call this again, a future type that would otherwise contain itself.
    pub fn answer(&self, request: Control) -> BoxedReply<'_> {
        Box::pin(async move {
            match request {
                Control::Topics => ControlReply::Topics(self.table.lock().await.clone()),
                Control::CreateTopic {
                    name,
                    partitions,
                    validate_only,
                } => self.create(&name, partitions, validate_only).await,
                other => unreachable!("not a topic request: {other:?}"),
            }
        })
    }

    async fn create(&self, name: &str, partitions: u32, validate_only: bool) -> ControlReply {
        let spec = match TopicSpec::parse(&format!("{name}:{partitions}")) {
            Ok(spec) => spec,
            Err(refused) => {
                let reason = refused.to_string();
                return ControlReply::TopicRefused(TopicRefusal::Invalid { reason });
            }
        };
        let mut table = self.table.lock().await;
        let slots = slots_of(&self.pool);
        if validate_only {
            return match table.check(&spec, slots) {
                Ok(()) => ControlReply::TopicCreated(table.clone()),
                Err(refusal) => ControlReply::TopicRefused(refusal),
            };
        }
        let mut grown = table.clone();
        let taken = match grown.create(&spec, slots) {
            Ok(taken) => taken,
            Err(refusal) => return ControlReply::TopicRefused(refusal),
        };
        // Durable before anything acts on it: a restarted controller serves what it answered.
        if let Err(failure) = write_checkpoint(&self.path, &grown) {
            error!(%failure, topic = name, "cannot persist the topic table; not created");
            let reason = format!("the controller cannot persist its topic table: {failure}");
            return ControlReply::TopicRefused(TopicRefusal::Invalid { reason });
        }
        *table = grown;
        info!(topic = name, ?taken, "topic created");
        for slot in taken.into_iter().filter(|slot| *slot != 0) {
            // The table is durable, so a restart starts the slot again; until then its
            // partition has no controller core, which its brokers report as a silent one.
            if let Err(failure) = self.start_slot(slot).await {
                error!(%failure, slot, "cannot start a new slot's controller core");
            }
        }
        ControlReply::TopicCreated(table.clone())
    }

    /// Binds and spawns slot `slot`'s controller core.
    async fn start_slot(&self, slot: Slot) -> Result<(), NodeError> {
        let nodes = self
            .pool
            .get(&slot)
            .expect("the table uses pool slots only");
        let config = ControllerConfig {
            listen: nodes.controller.clone(),
            brokers: nodes.brokers.clone(),
            data_dir: partition_data_dir(&self.config.data_dir, slot),
            options: partition_options(&self.config.options, &self.config.data_dir, slot),
        };
        let claim = super::claim_data_dir(&config.data_dir, &config.options)?;
        let (listener, role, wiring) = super::controller::controller_node(config, claim, |_| {})
            .await
            .inspect_err(|failure| warn!(%failure, slot, "slot not started"))?;
        let (trigger, shutdown) = (self.trigger.clone(), self.shutdown.clone());
        let task = tokio::spawn(run_node(listener, role, wiring, trigger, shutdown));
        self.running.lock().expect("not poisoned").push(task);
        info!(slot, address = %nodes.controller, "slot's controller core started");
        Ok(())
    }

    /// The running slots' tasks, for the caller to join once the process stops.
    pub fn take_running(&self) -> Vec<JoinHandle<Result<(), NodeError>>> {
        std::mem::take(&mut *self.running.lock().expect("not poisoned"))
    }
}

/// A process's slot pool by slot, and the topic table for it in `data_dir` (with its path):
/// loaded, or made from `specs` ([`load_or_create`]). The controller and every broker start so.
pub fn open_table(
    data_dir: &std::path::Path,
    specs: &[TopicSpec],
    pool: Vec<PartitionNodes>,
) -> Result<(PathBuf, BTreeMap<Slot, PartitionNodes>, TopicTable), NodeError> {
    let path = data_dir.join(TOPIC_TABLE_FILE_NAME);
    let pool: BTreeMap<Slot, PartitionNodes> =
        pool.into_iter().map(|nodes| (nodes.index, nodes)).collect();
    let table = load_or_create(&path, specs, slots_of(&pool))?;
    Ok((path, pool, table))
}

/// How many slots a process has addresses for: slot 0 and the pool.
pub fn slots_of(pool: &BTreeMap<Slot, PartitionNodes>) -> u32 {
    let slots = u32::try_from(pool.len() + 1).expect("at most PARTITIONS_MAX");
    assert!(slots <= crate::kafka::partitions::PARTITIONS_MAX, "checked");
    slots
}

/// The table at `path`, or one made from `specs` and made durable. A persisted table wins
/// over the flags (logged when they differ); one that does not fit the slots given is refused.
pub fn load_or_create(
    path: &std::path::Path,
    specs: &[TopicSpec],
    slots: u32,
) -> Result<TopicTable, NodeError> {
    let refuse = |reason: String| {
        let entry = format!("{} slots", slots);
        NodeError::Config(super::ConfigError::PartitionNodes { entry, reason })
    };
    let from_flags = TopicTable::from_specs(specs, slots).map_err(|r| refuse(r.to_string()));
    let persisted: Option<TopicTable> = read_checkpoint(path)?;
    let table = match persisted {
        Some(table) => {
            table.validate(slots).map_err(refuse)?;
            if from_flags.as_ref().ok() != Some(&table) {
                info!(
                    ?table,
                    "the persisted topic table wins over the --topic flags"
                );
            }
            table
        }
        None => {
            let table = from_flags?;
            write_checkpoint(path, &table)?;
            table
        }
    };
    info!(topics = ?table.topics(), "topic table");
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ProtocolConfig, Variant};
    use crate::node::config::NodeOptions;
    use crate::node::shutdown::shutdown_pair;
    use crate::storage::FsyncPolicy;

    fn config(dir: &std::path::Path) -> ControllerConfig {
        let options = NodeOptions {
            cluster_id: "insync-test".into(),
            protocol: ProtocolConfig {
                variant: Variant::Kip966,
                unclean_leader_election: false,
                min_insync_replicas: 1,
                brokers: vec![1],
            },
            fsync: FsyncPolicy::Lazy,
            // No clock: the slots' cores started here fire nothing by themselves.
            stepped: true,
            timing: Default::default(),
            control_token_file: None,
            trace_log: None,
        };
        ControllerConfig {
            listen: "127.0.0.1:0".into(),
            brokers: BTreeMap::from([(1, "127.0.0.1:1".to_owned())]),
            data_dir: dir.to_owned(),
            options,
        }
    }

    /// Three slots, each on a port the kernel picks.
    fn pool() -> Vec<PartitionNodes> {
        let slot = |index| PartitionNodes {
            index,
            controller: "127.0.0.1:0".into(),
            brokers: BTreeMap::from([(1, "127.0.0.1:1".to_owned())]),
        };
        vec![slot(1), slot(2)]
    }

    fn create(name: &str, partitions: u32) -> Control {
        Control::CreateTopic {
            name: name.into(),
            partitions,
            validate_only: false,
        }
    }

    /// Goal: the same name asked twice at once (two brokers forwarding) is created once and
    /// the other ask is told it exists; the created topic's slot runs a controller core; the
    /// table on disk is the one answered, and wins over other flags when opened again.
    /// Method: two concurrent `CreateTopic` on a table of 3 slots, then one too many.
    #[tokio::test]
    async fn one_of_two_concurrent_creates_wins_and_the_table_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (trigger, shutdown) = shutdown_pair();
        let specs = [TopicSpec::parse("orders").unwrap()];
        let config = config(dir.path());
        let topics = ControllerTopics::open(
            config.clone(),
            &specs,
            pool(),
            trigger.clone(),
            shutdown.clone(),
        )
        .unwrap();
        let (first, second) = tokio::join!(
            topics.answer(create("twin", 1)),
            topics.answer(create("twin", 1))
        );
        let created = |reply: &ControlReply| matches!(reply, ControlReply::TopicCreated(_));
        assert!(
            created(&first) != created(&second),
            "{first:?} / {second:?}"
        );
        let refused = if created(&first) { &second } else { &first };
        let exists = TopicRefusal::AlreadyExists {
            name: "twin".into(),
        };
        assert_eq!(refused, &ControlReply::TopicRefused(exists));
        let running = topics.take_running();
        assert_eq!(running.len(), 1, "slot 1's core runs");
        let ControlReply::TopicRefused(full) = topics.answer(create("big", 2)).await else {
            panic!("2 partitions on 1 free slot");
        };
        assert!(full.to_string().contains("1 left"), "{full}");
        let ControlReply::Topics(table) = topics.answer(Control::Topics).await else {
            panic!("the table");
        };
        assert_eq!(table.topic("twin").unwrap().slots, vec![1]);
        trigger.trigger();
        for task in running {
            task.await.unwrap().unwrap();
        }
        let other = [TopicSpec::parse("other:3").unwrap()];
        let path = dir.path().join(TOPIC_TABLE_FILE_NAME);
        assert_eq!(load_or_create(&path, &other, 3).unwrap(), table);
    }
}
