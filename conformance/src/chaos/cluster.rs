//! The cluster of a chaos run and the faults done to it: the nodes are the [`Supervisor`]'s
//! children (reserved ports, so a node comes back where its peers look for it), wired to each
//! other through the [`FaultProxy`]; clients and the operator reach them directly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use insync_impl::client::{ClientConfig, ControlClient};
use insync_impl::node::config::{format_peers, node_command};
use insync_impl::node::supervisor::{ChildLogs, Listen, Supervisor, SupervisorSpec};
use insync_impl::protocol::{BrokerId, NodeId, Snapshot, View};

use super::disk::Disks;
use super::proxy::{FaultProxy, LinkState};
use super::schedule::{Fault, Others, Subject};

/// How long a graceful stop (the `restart` fault, the end of the run) may take.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A control request of the driver (who leads?) gives up after this long.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A fault as it was done, with its subjects resolved, so that it can be undone.
#[derive(Debug)]
pub enum Applied {
    Killed(NodeId),
    Paused(NodeId, u32),
    Stopped(NodeId),
    Filled(PathBuf),
    Linked(Vec<(NodeId, NodeId)>),
    /// Nothing could be done (the disk fault without disks); the reason is in the report.
    Skipped,
}

/// The running cluster. Fields drop in order: the processes go before their disks.
#[derive(Debug)]
pub struct ChaosCluster {
    supervisor: Supervisor,
    proxy: FaultProxy,
    disks: Option<Disks>,
    addresses: BTreeMap<NodeId, SocketAddr>,
    brokers: u32,
}

/// How to start the cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub brokers: u32,
    pub cluster_id: String,
    /// Protocol and clock flags of every process.
    pub node_args: Vec<String>,
    /// Mount a tmpfs on each broker's data directory (for disk faults).
    pub disks: bool,
}

impl ChaosCluster {
    /// Reserves every node's port, starts the proxy, mounts the disks (or says why not in the
    /// second value), and starts the controller and the brokers.
    pub async fn start(spec: &ClusterSpec) -> Result<(ChaosCluster, Option<String>), String> {
        let mut supervisor = Supervisor::new(SupervisorSpec {
            binary: spec.binary.clone(),
            dir: spec.dir.clone(),
            cluster_id: spec.cluster_id.clone(),
            logs: ChildLogs::Files,
            log_filter: "info".into(),
        })
        .map_err(|error| format!("supervisor: {error}"))?;
        let nodes: Vec<NodeId> = std::iter::once(NodeId::Controller)
            .chain((1..=spec.brokers).map(NodeId::Broker))
            .collect();
        let mut addresses = BTreeMap::new();
        for node in &nodes {
            let address = supervisor.add(*node, Listen::Reserved);
            addresses.insert(*node, address.map_err(|error| error.to_string())?);
        }
        let proxy = FaultProxy::start(&addresses)
            .await
            .map_err(|error| format!("fault proxy: {error}"))?;
        let (disks, no_disks) = match spec.disks {
            false => (None, None),
            true => match Disks::mount(&broker_dirs(&supervisor, spec.brokers)?) {
                Ok(disks) => (Some(disks), None),
                Err(reason) => (None, Some(reason)),
            },
        };
        let mut cluster = ChaosCluster {
            supervisor,
            proxy,
            disks,
            addresses,
            brokers: spec.brokers,
        };
        for node in nodes {
            let args = cluster.arguments(node, spec);
            cluster.supervisor.set_args(node, args);
            cluster.start_node(node).await?;
        }
        Ok((cluster, no_disks))
    }

    /// A node's command line: every peer through the proxy.
    fn arguments(&self, node: NodeId, spec: &ClusterSpec) -> Vec<String> {
        // A broker reaches itself directly and every other broker through the proxy.
        let peers = |source: NodeId| -> String {
            let brokers = (1..=self.brokers).map(|id| {
                let target = NodeId::Broker(id);
                let address = match target == source {
                    true => self.addresses[&target].to_string(),
                    false => self.proxy.address(source, target).to_string(),
                };
                (id, address)
            });
            format_peers(&brokers.collect())
        };
        // Only a broker dials the controller (through the proxy); the controller names none.
        let controller = match node {
            NodeId::Broker(_) => self.proxy.address(node, NodeId::Controller).to_string(),
            NodeId::Controller | NodeId::Client(_) => String::new(),
        };
        let mut args = node_command(node, &controller, &peers(node));
        args.extend(["--cluster-id".to_string(), spec.cluster_id.clone()]);
        args.extend(spec.node_args.iter().cloned());
        args
    }

    async fn start_node(&mut self, node: NodeId) -> Result<(), String> {
        let started = self.supervisor.start(node, &[]).await;
        started.map(drop).map_err(|error| error.to_string())
    }

    /// Clients bootstrap from every node's own address, the controller first.
    pub fn client_config(&self) -> ClientConfig {
        let bootstrap = self.addresses.values().map(ToString::to_string).collect();
        ClientConfig::new(bootstrap, self.supervisor.cluster_id())
    }

    pub fn brokers(&self) -> u32 {
        self.brokers
    }

    pub fn has_disks(&self) -> bool {
        self.disks.is_some()
    }

    /// The controller's view, as the operator reads it.
    pub async fn controller_view(&self) -> Result<View, String> {
        let address = self.addresses[&NodeId::Controller].to_string();
        let (cluster_id, token) = (
            self.supervisor.cluster_id(),
            self.supervisor.control_token(),
        );
        let connect = ControlClient::connect_within(&address, cluster_id, Some(token), ASK_TIMEOUT);
        let mut control = connect.await.map_err(|error| error.to_string())?;
        match control.inspect().await.map_err(|error| error.to_string())? {
            Snapshot::Controller(controller) => Ok(controller.view),
            Snapshot::Broker(_) => Err(format!("{address} is not the controller")),
        }
    }

    async fn resolve(&self, subject: Subject) -> NodeId {
        match subject {
            Subject::Node(node) => node,
            Subject::Leader => {
                let leader = self
                    .controller_view()
                    .await
                    .ok()
                    .and_then(|view| view.leader);
                NodeId::Broker(leader.unwrap_or(1))
            }
        }
    }

    /// Does `fault`; returns what it did, for [`heal`](Self::heal).
    pub async fn inject(&mut self, fault: Fault) -> Result<Applied, String> {
        match fault {
            Fault::Kill(subject) => {
                let node = self.resolve(subject).await;
                self.supervisor
                    .kill(node)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Applied::Killed(node))
            }
            Fault::Pause(subject) => {
                let node = self.resolve(subject).await;
                let pid = self
                    .supervisor
                    .pid(node)
                    .ok_or(format!("{node:?} has no pid"))?;
                signal(pid, "-STOP")?;
                Ok(Applied::Paused(node, pid))
            }
            Fault::Restart(subject) => {
                let node = self.resolve(subject).await;
                let stopped = self.supervisor.stop_node(node, STOP_GRACE).await;
                stopped.map_err(|error| error.to_string())?;
                Ok(Applied::Stopped(node))
            }
            Fault::Disk(subject) => self.fill(subject).await,
            Fault::Partition {
                side,
                from,
                delay_ms,
            } => {
                let pairs = self.pairs(side, from).await;
                let state = match delay_ms {
                    None => LinkState {
                        cut: true,
                        delay: Duration::ZERO,
                    },
                    Some(ms) => LinkState {
                        cut: false,
                        delay: Duration::from_millis(ms),
                    },
                };
                for (a, b) in &pairs {
                    self.proxy.set_between(*a, *b, state);
                }
                Ok(Applied::Linked(pairs))
            }
        }
    }

    async fn fill(&mut self, subject: Subject) -> Result<Applied, String> {
        let Some(disks) = &self.disks else {
            return Ok(Applied::Skipped);
        };
        let node = self.resolve(subject).await;
        let dir = self.supervisor.data_dir(node).map_err(|e| e.to_string())?;
        Ok(Applied::Filled(disks.fill(&dir)?))
    }

    /// The pairs of nodes a partition of `side` from `from` separates.
    async fn pairs(&self, side: Subject, from: Others) -> Vec<(NodeId, NodeId)> {
        let side = self.resolve(side).await;
        let everyone = self.addresses.keys().copied().filter(|node| *node != side);
        let others: Vec<NodeId> = match from {
            Others::All => everyone.collect(),
            Others::Brokers => everyone
                .filter(|n| matches!(n, NodeId::Broker(_)))
                .collect(),
            Others::One(other) => {
                let other = self.resolve(other).await;
                // A node cannot be cut from itself: the next node instead.
                let fallback = everyone.clone().find(|node| *node > side);
                let other = if other == side { fallback } else { Some(other) };
                other
                    .or_else(|| everyone.clone().next())
                    .into_iter()
                    .collect()
            }
        };
        others.into_iter().map(|other| (side, other)).collect()
    }

    /// Undoes what [`inject`](Self::inject) did.
    pub async fn heal(&mut self, applied: Applied) -> Result<(), String> {
        match applied {
            Applied::Killed(node) | Applied::Stopped(node) => self.start_node(node).await,
            Applied::Paused(_, pid) => signal(pid, "-CONT"),
            Applied::Filled(filler) => {
                let disks = self.disks.as_ref().expect("filled a disk");
                disks.free(&filler)
            }
            Applied::Linked(pairs) => {
                for (a, b) in pairs {
                    self.proxy.set_between(a, b, LinkState::default());
                }
                Ok(())
            }
            Applied::Skipped => Ok(()),
        }
    }

    /// Starts every node that exited by itself; returns them with their exit status.
    pub async fn revive(&mut self) -> Result<Vec<String>, String> {
        let mut revived = Vec::new();
        for (node, status) in self.supervisor.reap_exited() {
            revived.push(format!("{node:?} exited by itself ({status})"));
            self.start_node(node).await?;
        }
        Ok(revived)
    }

    /// Every link healed, every paused node resumed is the caller's (it holds the pids).
    pub fn heal_links(&self) {
        self.proxy.heal_all();
    }

    pub async fn stop(&mut self) {
        self.supervisor.stop(STOP_GRACE).await;
    }

    /// Brokers that run now.
    pub fn running_brokers(&self) -> Vec<BrokerId> {
        let brokers = 1..=self.brokers;
        brokers
            .filter(|id| self.supervisor.is_running(NodeId::Broker(*id)))
            .collect()
    }
}

fn broker_dirs(supervisor: &Supervisor, brokers: u32) -> Result<Vec<PathBuf>, String> {
    (1..=brokers)
        .map(|id| supervisor.data_dir(NodeId::Broker(id)))
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())
}

/// Sends `name` (`-STOP`, `-CONT`) to `pid` with kill(1).
fn signal(pid: u32, name: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .map_err(|error| format!("kill {name} {pid}: {error}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("kill {name} {pid} failed")),
    }
}
