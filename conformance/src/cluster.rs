//! The nodes under test: the controller and N brokers as child processes of the `insync`
//! binary in `--stepped` mode, every peer address pointing at the [`Router`].
//!
//! Each process listens on `127.0.0.1:0` and prints its bound address (`--json`) on stdout;
//! the harness reads that line, so there is no port race and no polling. Data directories live
//! in a per-cluster directory (a tempdir unless the caller keeps it). A crash is `SIGKILL`;
//! the restart first makes the data directory look as it would after a power loss
//! (`storage::simulate_power_loss`: the log cut back to what was fsynced, see
//! docs/conformance.md), then starts the same binary on the same directory. Dropping a
//! [`Cluster`] kills every child still running (`kill_on_drop`), so a failing replay never
//! leaves processes behind. Every node is given one control token, `<dir>/control.token`,
//! created by the harness before the first start, which the harness presents on each node's
//! control channel.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use insync_impl::node::control_token::{ControlToken, CONTROL_TOKEN_FILE_NAME};
use insync_impl::protocol::NodeId;
use insync_impl::storage::simulate_power_loss;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::router::Router;

/// How long a starting process may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

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

/// Why the cluster could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot start {node:?}: {reason}")]
    Start { node: NodeId, reason: String },
    #[error("cannot simulate the power loss of {node:?}: {reason}")]
    PowerLoss { node: NodeId, reason: String },
    #[error("{node:?} is not running")]
    NotRunning { node: NodeId },
    #[error("cannot create the control token: {0}")]
    Token(String),
}

struct NodeProcess {
    args: Vec<String>,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Held open so the child never writes to a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
    listen: Option<SocketAddr>,
}

/// What a simulated power loss removed, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PowerLoss {
    pub durable_end_offset: u64,
    pub records_dropped: u64,
}

/// The running nodes. See the module doc.
pub struct Cluster {
    spec: ClusterSpec,
    token: ControlToken,
    nodes: BTreeMap<NodeId, NodeProcess>,
}

impl Cluster {
    /// Starts the controller and every broker, and tells the router where each listens.
    pub async fn start(spec: ClusterSpec, router: &mut Router) -> Result<Cluster, ClusterError> {
        let token = ControlToken::load_or_create(&spec.dir.join(CONTROL_TOKEN_FILE_NAME))
            .map_err(|error| ClusterError::Token(error.to_string()))?;
        let brokers: Vec<u32> = (1..=spec.brokers).collect();
        let peer_list = |router: &Router| -> String {
            let entries: Vec<String> = brokers
                .iter()
                .map(|b| format!("{b}={}", router.router_addr(NodeId::Broker(*b))))
                .collect();
            entries.join(",")
        };
        let peers = peer_list(router);
        let mut nodes = BTreeMap::new();
        let mut controller_args = vec!["controller".to_string(), "--brokers".into(), peers.clone()];
        controller_args.extend(common_args(&spec));
        nodes.insert(
            NodeId::Controller,
            node_process(&spec, "controller", controller_args),
        );
        for b in &brokers {
            let mut args = vec![
                "broker".to_string(),
                "--id".into(),
                b.to_string(),
                "--controller".into(),
                router.router_addr(NodeId::Controller).to_string(),
                "--peers".into(),
                peers.clone(),
            ];
            args.extend(common_args(&spec));
            nodes.insert(
                NodeId::Broker(*b),
                node_process(&spec, &format!("broker-{b}"), args),
            );
        }
        let mut cluster = Cluster { spec, token, nodes };
        let all: Vec<NodeId> = cluster.nodes.keys().copied().collect();
        for node in &all {
            cluster.spawn(*node).await?;
        }
        for node in all {
            router.set_node_addr(node, cluster.listen_addr(node)?);
        }
        Ok(cluster)
    }

    /// Where `node` listens now (its control channel and its inbound protocol channels).
    pub fn listen_addr(&self, node: NodeId) -> Result<SocketAddr, ClusterError> {
        self.nodes
            .get(&node)
            .and_then(|n| n.listen)
            .ok_or(ClusterError::NotRunning { node })
    }

    /// The operator's token every node was given.
    pub fn control_token(&self) -> &ControlToken {
        &self.token
    }

    pub fn data_dir(&self, node: NodeId) -> Option<&Path> {
        self.nodes.get(&node).map(|n| n.data_dir.as_path())
    }

    /// The node's log file (stderr of every incarnation), for divergence reports.
    pub fn log_path(&self, node: NodeId) -> Option<&Path> {
        self.nodes.get(&node).map(|n| n.log_path.as_path())
    }

    pub fn is_running(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.child.is_some())
    }

    /// `SIGKILL` and reap.
    pub async fn kill(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let process = self
            .nodes
            .get_mut(&node)
            .ok_or(ClusterError::NotRunning { node })?;
        let mut child = process
            .child
            .take()
            .ok_or(ClusterError::NotRunning { node })?;
        // Kill fails only if the child already exited, which the wait below reaps.
        let _ = child.start_kill();
        let _ = child.wait().await;
        process._stdout = None;
        process.listen = None;
        Ok(())
    }

    /// Power loss on the dead node's directory, then the same binary on the same directory.
    pub async fn restart(
        &mut self,
        node: NodeId,
        router: &mut Router,
    ) -> Result<PowerLoss, ClusterError> {
        let process = self
            .nodes
            .get(&node)
            .ok_or(ClusterError::NotRunning { node })?;
        assert!(process.child.is_none(), "restart of a running {node:?}");
        let loss = match node {
            NodeId::Broker(_) => {
                let report = simulate_power_loss(&process.data_dir).map_err(|e| {
                    ClusterError::PowerLoss {
                        node,
                        reason: e.to_string(),
                    }
                })?;
                PowerLoss {
                    durable_end_offset: report.durable_end_offset,
                    records_dropped: report.records_dropped,
                }
            }
            NodeId::Controller | NodeId::Client(_) => PowerLoss::default(),
        };
        router.node_restarted(node);
        self.spawn(node).await?;
        router.set_node_addr(node, self.listen_addr(node)?);
        Ok(loss)
    }

    async fn spawn(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let binary = self.spec.binary.clone();
        let process = self.nodes.get_mut(&node).expect("known node");
        let failed = |reason: String| ClusterError::Start { node, reason };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&process.log_path)
            .map_err(|e| failed(format!("log file: {e}")))?;
        let mut command = Command::new(&binary);
        command
            .args(&process.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("{}: {e}", binary.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await;
        let listen = match read {
            Ok(Ok(n)) if n > 0 => parse_bound(&line).map_err(failed)?,
            Ok(Ok(_)) => {
                let status = child.wait().await.ok();
                return Err(failed(format!(
                    "exited before listening ({status:?}); see {}",
                    process.log_path.display()
                )));
            }
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed(format!("no address within {START_TIMEOUT:?}"))),
        };
        process.child = Some(child);
        process._stdout = Some(stdout);
        process.listen = Some(listen);
        Ok(())
    }

    /// Kills everything now (also done on drop).
    pub async fn shutdown(&mut self) {
        let running: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.child.is_some())
            .map(|(id, _)| *id)
            .collect();
        for node in running {
            let _ = self.kill(node).await;
        }
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for process in self.nodes.values_mut() {
            if let Some(child) = process.child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }
}

fn node_process(spec: &ClusterSpec, name: &str, mut args: Vec<String>) -> NodeProcess {
    let data_dir = spec.dir.join(name);
    args.extend(["--data-dir".to_string(), data_dir.display().to_string()]);
    NodeProcess {
        args,
        data_dir,
        log_path: spec.dir.join(format!("{name}.log")),
        child: None,
        _stdout: None,
        listen: None,
    }
}

fn common_args(spec: &ClusterSpec) -> Vec<String> {
    let mut args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--json".into(),
        "--stepped".into(),
        "--cluster-id".into(),
        spec.cluster_id.clone(),
        "--control-token-file".into(),
        spec.dir.join(CONTROL_TOKEN_FILE_NAME).display().to_string(),
    ];
    args.extend(spec.protocol_flags.iter().cloned());
    args
}

/// `{"role":..,"id":..,"listen":"127.0.0.1:PORT"}` → the address.
fn parse_bound(line: &str) -> Result<SocketAddr, String> {
    let value: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("bad address line {line:?}: {e}"))?;
    value
        .get("listen")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("no \"listen\" in {line:?}"))?
        .parse()
        .map_err(|e| format!("bad address in {line:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_line_parses() {
        let line = r#"{"role":"broker","id":2,"listen":"127.0.0.1:4567"}"#;
        assert_eq!(parse_bound(line).unwrap().port(), 4567);
        assert!(parse_bound("broker 2 listening").is_err());
    }
}
