//! [`LocalCluster`]: a controller and N brokers on loopback, wired to each other directly, as
//! `insync cluster up`, `insync bench` and the process tests run them. The processes are
//! the [`Supervisor`]'s; this file only says who is whose peer: every node's port is reserved
//! before any starts (see the supervisor's module doc), so each is told every other's address
//! on its command line, and a restarted node comes back where its peers look for it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{format_peers, node_command, PartitionNodes};
use super::control_token::ControlToken;
use super::supervisor::{Listen, Supervisor, SupervisorError, SupervisorSpec};
use crate::client::ControlClient;
use crate::kafka::partitions::PARTITIONS_MAX;
use crate::kafka::topic_table::TopicTable;
use crate::kafka::TopicSpec;
use crate::protocol::{BrokerId, NodeId, Snapshot};
use crate::storage::PowerLossReport;

pub use super::supervisor::ChildLogs;

/// How long a wait on `Inspect` pauses between two looks: nothing announces "a broker holds a
/// view", so readiness is polled, always against a deadline.
const INSPECT_POLL: Duration = Duration::from_millis(25);

/// How to start a local cluster.
#[derive(Clone, Debug)]
pub struct LocalClusterSpec {
    /// The `insync` binary.
    pub binary: PathBuf,
    pub brokers: u32,
    /// Data directories (`controller/`, `broker-N/`) and log files go here.
    pub dir: PathBuf,
    pub cluster_id: String,
    /// Flags given to every process (variant, switches, clocks), e.g. `["--fsync", "always"]`.
    pub node_args: Vec<String>,
    /// Flags given to every broker only, after `node_args`.
    pub broker_args: Vec<String>,
    /// First port (consecutive ports from there, the operator's choice); `None` reserves
    /// ports from the kernel.
    pub base_port: Option<u16>,
    pub logs: ChildLogs,
    /// Not empty: every broker also serves the Kafka protocol, on a port of its own (after
    /// the nodes' ports with `base_port`), and these topics (`--topic NAME[:P]`, each given to
    /// every process) make the topic table of the fresh cluster.
    pub kafka_topics: Vec<String>,
    /// With Kafka: how many partition slots the cluster has addresses for, slot 0 included
    /// (`insync cluster up --partition-slots`); slots 1.. are served on ports of their own on
    /// every node (`--partition-nodes`), after the Kafka ports with `base_port`. `None`: just
    /// those the topics at start use.
    pub partition_slots: Option<u32>,
}

impl LocalClusterSpec {
    /// How many slots the topics at start use (a topic that does not parse counts one; the
    /// nodes refuse it with the reason).
    pub fn slots_used(&self) -> u32 {
        let each = self
            .kafka_topics
            .iter()
            .map(|topic| TopicSpec::parse(topic).map_or(1, |topic| topic.partitions));
        each.sum()
    }
}

/// A running local cluster. See the module doc.
#[derive(Debug)]
pub struct LocalCluster {
    supervisor: Supervisor,
    addresses: BTreeMap<NodeId, String>,
    /// Each broker's Kafka address, when the spec asked for Kafka listeners.
    kafka_addresses: BTreeMap<BrokerId, String>,
    /// Where partition slots 1, 2, ... are served (`--partition-nodes`).
    partitions: Vec<PartitionNodes>,
    /// How many slots the topics at start use: those a ready cluster serves when the
    /// controller, which knows of any created since, is not running.
    slots_at_start: u32,
}

impl LocalCluster {
    /// Starts the controller and every broker; returns once each reported its address.
    pub async fn start(spec: LocalClusterSpec) -> Result<Self, SupervisorError> {
        assert!(spec.brokers >= 1, "a cluster needs a broker");
        let mut supervisor = Supervisor::new(SupervisorSpec {
            binary: spec.binary.clone(),
            dir: spec.dir.clone(),
            cluster_id: spec.cluster_id.clone(),
            logs: spec.logs.clone(),
            log_filter: "info".into(),
        })
        .map_err(|source| SupervisorError::Reserve {
            node: NodeId::Controller,
            source,
        })?;
        let nodes: Vec<NodeId> = std::iter::once(NodeId::Controller)
            .chain((1..=spec.brokers).map(NodeId::Broker))
            .collect();
        let mut addresses = BTreeMap::new();
        for (index, node) in nodes.iter().enumerate() {
            let listen = listen_of(spec.base_port, index);
            let address = supervisor.add(*node, listen)?;
            addresses.insert(*node, address.to_string());
        }
        // Ports beyond the nodes' own: with `base_port`, the next ones in order (the Kafka
        // listeners, then partitions 1, 2, ...); without, reserved from the kernel.
        let mut next_index = nodes.len();
        let mut extra = |node: NodeId| match spec.base_port {
            None => supervisor.reserve_extra(node),
            Some(_) => {
                next_index += 1;
                Ok(fixed(listen_of(spec.base_port, next_index - 1)))
            }
        };
        let mut kafka_addresses = BTreeMap::new();
        let mut partitions = Vec::new();
        if !spec.kafka_topics.is_empty() {
            for id in 1..=spec.brokers {
                kafka_addresses.insert(id, extra(NodeId::Broker(id))?.to_string());
            }
            let slots = spec.partition_slots.unwrap_or_else(|| spec.slots_used());
            assert!(
                slots <= PARTITIONS_MAX,
                "{slots} slots: the caller checks the bound"
            );
            for index in 1..slots {
                let controller = extra(NodeId::Controller)?.to_string();
                let mut brokers = BTreeMap::new();
                for id in 1..=spec.brokers {
                    brokers.insert(id, extra(NodeId::Broker(id))?.to_string());
                }
                partitions.push(PartitionNodes {
                    index,
                    controller,
                    brokers,
                });
            }
        }
        let cluster = LocalCluster {
            supervisor,
            addresses,
            kafka_addresses,
            partitions,
            slots_at_start: spec.slots_used(),
        };
        cluster.start_all(&spec, &nodes).await
    }

    async fn start_all(
        mut self,
        spec: &LocalClusterSpec,
        nodes: &[NodeId],
    ) -> Result<Self, SupervisorError> {
        let peers = format_peers(&self.broker_addresses());
        let common = {
            let mut args = vec!["--cluster-id".to_string(), spec.cluster_id.clone()];
            args.extend(spec.node_args.iter().cloned());
            args
        };
        for node in nodes {
            let mut args = node_command(*node, self.controller_address(), &peers);
            args.extend(common.iter().cloned());
            if let NodeId::Broker(id) = node {
                args.extend(spec.broker_args.iter().cloned());
                args.extend(self.kafka_args(*id));
            }
            for topic in &spec.kafka_topics {
                args.extend(["--topic".to_string(), topic.clone()]);
            }
            for partition in &self.partitions {
                args.extend(["--partition-nodes".to_string(), partition.format()]);
            }
            self.supervisor.set_args(*node, args);
            self.supervisor.start(*node, &[]).await?;
        }
        Ok(self)
    }

    /// A broker's Kafka flags: where it listens, every broker's Kafka address.
    fn kafka_args(&self, id: BrokerId) -> Vec<String> {
        let Some(listen) = self.kafka_addresses.get(&id) else {
            return Vec::new();
        };
        let peers = format_peers(&self.kafka_addresses);
        let flags = ["--kafka-listen", listen, "--kafka-peers", &peers];
        flags.iter().map(|flag| flag.to_string()).collect()
    }

    /// Where partition slots 1, 2, ... are served, assigned or not (empty for one slot).
    pub fn partitions(&self) -> &[PartitionNodes] {
        &self.partitions
    }

    /// Every broker's Kafka address (empty without Kafka listeners).
    pub fn kafka_addresses(&self) -> &BTreeMap<BrokerId, String> {
        &self.kafka_addresses
    }

    pub fn controller_address(&self) -> &str {
        &self.addresses[&NodeId::Controller]
    }

    pub fn broker_address(&self, id: BrokerId) -> &str {
        &self.addresses[&NodeId::Broker(id)]
    }

    pub fn broker_addresses(&self) -> BTreeMap<BrokerId, String> {
        let entries = self.addresses.iter();
        entries
            .filter_map(|(node, address)| match node {
                NodeId::Broker(id) => Some((*id, address.clone())),
                NodeId::Controller | NodeId::Client(_) => None,
            })
            .collect()
    }

    /// Bootstrap list for clients: the controller first, then every broker.
    pub fn bootstrap(&self) -> Vec<String> {
        self.addresses.values().cloned().collect()
    }

    pub fn data_dir(&self, id: BrokerId) -> PathBuf {
        let dir = self.supervisor.data_dir(NodeId::Broker(id));
        dir.expect("a broker of this cluster")
    }

    pub fn cluster_id(&self) -> &str {
        self.supervisor.cluster_id()
    }

    /// The operator's token every node of this cluster was given (owned by the supervisor).
    pub fn control_token(&self) -> &ControlToken {
        self.supervisor.control_token()
    }

    /// Where the token file is: `<dir>/control.token`.
    pub fn control_token_path(&self) -> PathBuf {
        self.supervisor.control_token_path()
    }

    /// `Inspect` on the node at `address`, as the operator.
    pub async fn inspect(&self, address: &str) -> Result<Snapshot, String> {
        let connect =
            ControlClient::connect_with_token(address, self.cluster_id(), self.control_token());
        let mut control = connect.await.map_err(|error| error.to_string())?;
        control.inspect().await.map_err(|error| error.to_string())
    }

    /// The process id of a running broker (to stop it with SIGSTOP in tests).
    pub fn broker_pid(&self, id: BrokerId) -> Option<u32> {
        self.supervisor.pid(NodeId::Broker(id))
    }

    /// `kill -9` a broker and reap it.
    pub async fn kill_broker(&mut self, id: BrokerId) -> Result<(), SupervisorError> {
        self.supervisor.kill(NodeId::Broker(id)).await
    }

    pub async fn kill_controller(&mut self) -> Result<(), SupervisorError> {
        self.supervisor.kill(NodeId::Controller).await
    }

    /// Starts a dead broker again on its port and data directory, with `extra` flags.
    pub async fn restart_broker(
        &mut self,
        id: BrokerId,
        extra: &[&str],
    ) -> Result<SocketAddr, SupervisorError> {
        let extra: Vec<String> = extra.iter().map(|flag| flag.to_string()).collect();
        self.supervisor.start(NodeId::Broker(id), &extra).await
    }

    /// Starts a dead broker again after a simulated power loss of its data directory.
    pub async fn restart_broker_after_power_loss(
        &mut self,
        id: BrokerId,
    ) -> Result<PowerLossReport, SupervisorError> {
        let node = NodeId::Broker(id);
        self.supervisor.restart_after_power_loss(node, &[]).await
    }

    pub async fn restart_controller(&mut self) -> Result<SocketAddr, SupervisorError> {
        self.supervisor.start(NodeId::Controller, &[]).await
    }

    /// Waits until a node exits by itself (a crash, or someone's `kill -9`), named as its
    /// data directory is; `None` once nothing runs.
    pub async fn next_exit(&mut self) -> Option<(String, ExitStatus)> {
        let (node, status) = self.supervisor.next_exit().await?;
        Some((super::supervisor::node_name(node), status))
    }

    /// The controller's topic table (`Control::Topics`, open to anyone).
    pub async fn topics(&self) -> Result<TopicTable, String> {
        let connect = ControlClient::connect(self.controller_address(), self.cluster_id());
        let mut control = connect.await.map_err(|error| error.to_string())?;
        control.topics().await.map_err(|error| error.to_string())
    }

    /// Waits until every running node answers `Inspect`, and every running broker holds a
    /// view, on every partition slot the controller's topic table assigns, or `timeout`
    /// passes.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut every = Vec::new();
        for (node, address) in &self.addresses {
            every.push((*node, address.clone()));
        }
        let assigned: std::collections::BTreeSet<u32> = match self.partitions.is_empty() {
            true => Default::default(),
            false if !self.supervisor.is_running(NodeId::Controller) => {
                (0..self.slots_at_start).collect()
            }
            false => self.wait_topics(deadline).await?.assigned(),
        };
        let partitions = self.partitions.iter();
        for partition in partitions.filter(|nodes| assigned.contains(&nodes.index)) {
            every.push((NodeId::Controller, partition.controller.clone()));
            for (id, address) in &partition.brokers {
                every.push((NodeId::Broker(*id), address.clone()));
            }
        }
        for (node, address) in &every {
            if !self.supervisor.is_running(*node) {
                continue;
            }
            let ready = |snapshot: &Snapshot| match snapshot {
                Snapshot::Controller(_) => true,
                Snapshot::Broker(broker) => broker.view.is_some(),
            };
            let described = format!("{node:?} at {address}");
            self.wait_for(address, deadline, &described, ready).await?;
        }
        Ok(())
    }

    /// The controller's topic table, polled until it answers or `deadline` passes.
    async fn wait_topics(&self, deadline: Instant) -> Result<TopicTable, String> {
        loop {
            let error = match self.topics().await {
                Ok(table) => return Ok(table),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(format!("the controller's topic table: {error}"));
            }
            tokio::time::sleep(INSPECT_POLL).await;
        }
    }

    /// Polls `Inspect` on `address` until `condition` holds or `deadline` passes.
    pub async fn wait_for(
        &self,
        address: &str,
        deadline: Instant,
        described: &str,
        condition: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, String> {
        loop {
            let last = match self.inspect(address).await {
                Ok(snapshot) if condition(&snapshot) => return Ok(snapshot),
                Ok(snapshot) => format!("{snapshot:?}"),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(format!("{described}: condition not reached; last: {last}"));
            }
            tokio::time::sleep(INSPECT_POLL).await;
        }
    }

    /// Graceful stop: `Shutdown` to every node, then wait (killing after `grace`).
    pub async fn stop(&mut self, grace: Duration) {
        self.supervisor.stop(grace).await;
    }
}

fn fixed(listen: Listen) -> SocketAddr {
    match listen {
        Listen::Fixed(address) => address,
        Listen::Any | Listen::Reserved => unreachable!("a base port gives fixed addresses"),
    }
}

/// A port reserved from the kernel, or the operator's `base + index`.
fn listen_of(base_port: Option<u16>, index: usize) -> Listen {
    match base_port {
        None => Listen::Reserved,
        Some(base) => {
            let port = base + u16::try_from(index).expect("few nodes");
            Listen::Fixed(SocketAddr::from(([127, 0, 0, 1], port)))
        }
    }
}
