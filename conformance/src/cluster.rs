//! The nodes under test: the controller and N brokers as child processes of the `insync`
//! binary in `--stepped` mode, every peer address pointing at the [`Router`].
//!
//! The processes are the implementation's [`Supervisor`]'s, as in `cluster up` and the process
//! tests: each node listens on `127.0.0.1:0` and reports its bound address, which the
//! supervisor awaits and this file hands to the router (no port race, no polling). A crash is
//! `SIGKILL`; before the restart the data directory is made to look as a power loss would leave
//! it (`storage::simulate_torn_power_loss`: every file cut back to what an fsync covered, plus
//! a torn piece; see docs/conformance.md), and the harness compares what recovery finds there
//! with the model's storage; then the same binary starts on the same directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use insync_impl::node::control_token::ControlToken;
use insync_impl::node::supervisor::{
    ChildLogs, Listen, Supervisor, SupervisorError, SupervisorSpec,
};
use insync_impl::protocol::NodeId;
use insync_impl::storage::PowerLossReport;

use crate::router::Router;

/// How to start the nodes.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The `insync` binary.
    pub binary: PathBuf,
    pub brokers: u32,
    pub cluster_id: String,
    /// Protocol flags every node gets: `--variant`, `--fsync`, `--min-isr`, `--unclean`.
    pub protocol_flags: Vec<String>,
    /// Where data directories and node logs go.
    pub dir: PathBuf,
}

/// The running nodes. See the module doc.
pub struct Cluster {
    supervisor: Supervisor,
}

impl Cluster {
    /// Starts the controller and every broker, and tells the router where each listens.
    pub async fn start(spec: ClusterSpec, router: &mut Router) -> Result<Cluster, SupervisorError> {
        let mut supervisor = Supervisor::new(SupervisorSpec {
            binary: spec.binary.clone(),
            dir: spec.dir.clone(),
            cluster_id: spec.cluster_id.clone(),
            logs: ChildLogs::Files,
            log_filter: "warn".into(),
        })
        .map_err(|source| SupervisorError::Reserve {
            node: NodeId::Controller,
            source,
        })?;
        let brokers: Vec<u32> = (1..=spec.brokers).collect();
        let peers: Vec<String> = brokers
            .iter()
            .map(|b| format!("{b}={}", router.router_addr(NodeId::Broker(*b))))
            .collect();
        let peers = peers.join(",");
        let mut nodes = vec![(
            NodeId::Controller,
            vec!["controller".to_string(), "--brokers".into(), peers.clone()],
        )];
        for b in &brokers {
            let args = vec![
                "broker".to_string(),
                "--id".into(),
                b.to_string(),
                "--controller".into(),
                router.router_addr(NodeId::Controller).to_string(),
                "--peers".into(),
                peers.clone(),
            ];
            nodes.push((NodeId::Broker(*b), args));
        }
        for (node, mut args) in nodes {
            args.extend(common_args(&spec));
            supervisor.add(node, Listen::Any)?;
            supervisor.set_args(node, args);
            let bound = supervisor.start(node, &[]).await?;
            router.set_node_addr(node, bound);
        }
        Ok(Cluster { supervisor })
    }

    /// Where `node` listens now (its control channel and its inbound protocol channels).
    pub fn listen_addr(&self, node: NodeId) -> Result<SocketAddr, SupervisorError> {
        self.supervisor.address(node).ok_or(SupervisorError::State {
            node,
            state: "not running",
        })
    }

    pub fn data_dir(&self, node: NodeId) -> Option<PathBuf> {
        self.supervisor.data_dir(node).ok()
    }

    pub fn is_running(&self, node: NodeId) -> bool {
        self.supervisor.is_running(node)
    }

    /// `SIGKILL` and reap.
    pub async fn kill(&mut self, node: NodeId) -> Result<(), SupervisorError> {
        self.supervisor.kill(node).await
    }

    /// Power loss on a dead broker's directory (`Supervisor::power_loss`); `None` for the
    /// controller, whose state the model does not keep across a crash.
    pub fn power_loss(&mut self, node: NodeId) -> Result<Option<PowerLossReport>, SupervisorError> {
        match node {
            NodeId::Broker(_) => self.supervisor.power_loss(node).map(Some),
            NodeId::Controller | NodeId::Client(_) => Ok(None),
        }
    }

    /// The same binary on the same directory, after `power_loss`.
    pub async fn restart(
        &mut self,
        node: NodeId,
        router: &mut Router,
    ) -> Result<(), SupervisorError> {
        router.node_restarted(node);
        let bound = self.supervisor.start(node, &[]).await?;
        router.set_node_addr(node, bound);
        Ok(())
    }

    /// Kills everything now (also done on drop).
    pub async fn shutdown(&mut self) {
        let running: Vec<NodeId> = self
            .supervisor
            .nodes()
            .filter(|node| self.supervisor.is_running(*node))
            .collect();
        for node in running {
            let _ = self.kill(node).await;
        }
    }

    /// The operator's control token every node was given (owned by the supervisor).
    pub fn control_token(&self) -> &ControlToken {
        self.supervisor.control_token()
    }
}

fn common_args(spec: &ClusterSpec) -> Vec<String> {
    let mut args = vec![
        "--stepped".to_string(),
        "--cluster-id".into(),
        spec.cluster_id.clone(),
    ];
    args.extend(spec.protocol_flags.iter().cloned());
    args
}
