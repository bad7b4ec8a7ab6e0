//! [`LocalCluster`]: a controller and N brokers as child processes on loopback, for
//! `insync cluster up`, `insync bench` and the process-level tests.
//!
//! The processes are the `insync` binary itself (its path is given: `current_exe()` for the
//! CLI, `CARGO_BIN_EXE_insync` in tests). Ports are picked free up front, because every
//! process must know every other's address at start. Dropping a `LocalCluster` kills whatever
//! still runs (SIGKILL), so a failing test never leaves processes behind.
//!
//! Every process is given one control token, `<dir>/control.token` (created owner-only at the
//! first start), so `stop`, `wait_ready` and `insync inspect` act as the operator without
//! anyone copying a secret around.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::config::format_peers;
use super::control_token::{ControlToken, TokenError, CONTROL_TOKEN_FILE_NAME};
use crate::client::ControlClient;
use crate::protocol::{BrokerId, Snapshot};

/// Where children's logs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildLogs {
    /// The parent's stderr (interactive `cluster up`).
    Inherit,
    /// `<dir>/<node>.log`, appended across restarts (tests, bench).
    Files,
}

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
    /// First port; `None` picks free ports.
    pub base_port: Option<u16>,
    pub logs: ChildLogs,
}

/// One child process and how to start it again.
#[derive(Debug)]
struct NodeProcess {
    name: String,
    address: String,
    args: Vec<String>,
    child: Option<Child>,
}

/// A running local cluster. See the module doc.
#[derive(Debug)]
pub struct LocalCluster {
    spec: LocalClusterSpec,
    token: ControlToken,
    controller: NodeProcess,
    brokers: BTreeMap<BrokerId, NodeProcess>,
}

impl LocalCluster {
    /// Starts the controller and every broker.
    pub fn start(spec: LocalClusterSpec) -> std::io::Result<Self> {
        assert!(spec.brokers >= 1, "a cluster needs a broker");
        std::fs::create_dir_all(&spec.dir)?;
        let token = ControlToken::load_or_create(&token_path(&spec.dir)).map_err(token_error)?;
        let ports = pick_ports(spec.base_port, spec.brokers as usize + 1)?;
        let controller_address = format!("127.0.0.1:{}", ports[0]);
        let broker_addresses: BTreeMap<BrokerId, String> = (1..=spec.brokers)
            .map(|id| (id, format!("127.0.0.1:{}", ports[id as usize])))
            .collect();
        let peers = format_peers(&broker_addresses);
        let mut controller_args = vec![
            "controller".into(),
            "--listen".into(),
            controller_address.clone(),
            "--brokers".into(),
            peers.clone(),
        ];
        controller_args.extend(data_dir_args(&spec.dir.join("controller")));
        controller_args.extend(common_args(&spec));
        let controller = NodeProcess {
            name: "controller".into(),
            address: controller_address.clone(),
            args: controller_args,
            child: None,
        };
        let mut brokers = BTreeMap::new();
        for (id, address) in &broker_addresses {
            let mut args = vec![
                "broker".into(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                address.clone(),
                "--controller".into(),
                controller_address.clone(),
                "--peers".into(),
                peers.clone(),
            ];
            args.extend(data_dir_args(&spec.dir.join(format!("broker-{id}"))));
            args.extend(common_args(&spec));
            let name = format!("broker-{id}");
            let address = address.clone();
            brokers.insert(
                *id,
                NodeProcess {
                    name,
                    address,
                    args,
                    child: None,
                },
            );
        }
        let mut cluster = LocalCluster {
            spec,
            token,
            controller,
            brokers,
        };
        cluster.start_process(None)?;
        for id in 1..=cluster.spec.brokers {
            cluster.start_process(Some(id))?;
        }
        Ok(cluster)
    }

    pub fn controller_address(&self) -> &str {
        &self.controller.address
    }

    pub fn broker_address(&self, id: BrokerId) -> &str {
        &self.brokers[&id].address
    }

    pub fn broker_addresses(&self) -> BTreeMap<BrokerId, String> {
        let entries = self.brokers.iter();
        entries
            .map(|(id, node)| (*id, node.address.clone()))
            .collect()
    }

    /// Bootstrap list for clients: the controller first, then every broker.
    pub fn bootstrap(&self) -> Vec<String> {
        let mut all = vec![self.controller.address.clone()];
        all.extend(self.brokers.values().map(|node| node.address.clone()));
        all
    }

    pub fn data_dir(&self, id: BrokerId) -> PathBuf {
        self.spec.dir.join(format!("broker-{id}"))
    }

    pub fn cluster_id(&self) -> &str {
        &self.spec.cluster_id
    }

    /// The operator's token every node of this cluster was given.
    pub fn control_token(&self) -> &ControlToken {
        &self.token
    }

    /// Where the token file is: `<dir>/control.token`.
    pub fn control_token_path(&self) -> PathBuf {
        token_path(&self.spec.dir)
    }

    /// `Inspect` on the node at `address`, as the operator.
    pub async fn inspect(&self, address: &str) -> Result<Snapshot, String> {
        let connect =
            ControlClient::connect_with_token(address, &self.spec.cluster_id, &self.token);
        let mut control = connect.await.map_err(|error| error.to_string())?;
        control.inspect().await.map_err(|error| error.to_string())
    }

    /// The process id of a running broker (to stop it with SIGSTOP in tests).
    pub fn broker_pid(&self, id: BrokerId) -> Option<u32> {
        self.brokers[&id].child.as_ref().map(Child::id)
    }

    /// `kill -9` a broker and reap it.
    pub fn kill_broker(&mut self, id: BrokerId) {
        kill(self.brokers.get_mut(&id).expect("known broker"));
    }

    pub fn kill_controller(&mut self) {
        kill(&mut self.controller);
    }

    /// Starts a broker again on the same port and data directory, with `extra` flags.
    pub fn restart_broker(&mut self, id: BrokerId, extra: &[&str]) -> std::io::Result<()> {
        let node = self.brokers.get_mut(&id).expect("known broker");
        assert!(node.child.is_none(), "restart of a running broker {id}");
        let base = node.args.clone();
        node.args.extend(extra.iter().map(|flag| flag.to_string()));
        let started = self.start_process(Some(id));
        self.brokers.get_mut(&id).expect("known broker").args = base;
        started
    }

    pub fn restart_controller(&mut self) -> std::io::Result<()> {
        assert!(
            self.controller.child.is_none(),
            "restart of a running controller"
        );
        self.start_process(None)
    }

    /// Whether a child has exited on its own (a crash), with its status.
    pub fn exited(&mut self) -> Vec<(String, std::process::ExitStatus)> {
        let mut exited = Vec::new();
        let nodes = std::iter::once(&mut self.controller).chain(self.brokers.values_mut());
        for node in nodes {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    exited.push((node.name.clone(), status));
                    node.child = None;
                }
            }
        }
        exited
    }

    fn start_process(&mut self, broker: Option<BrokerId>) -> std::io::Result<()> {
        let node = match broker {
            None => &mut self.controller,
            Some(id) => self.brokers.get_mut(&id).expect("known broker"),
        };
        let mut command = Command::new(&self.spec.binary);
        command
            .args(&node.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        match self.spec.logs {
            ChildLogs::Inherit => command.stderr(Stdio::inherit()),
            ChildLogs::Files => {
                let path = self.spec.dir.join(format!("{}.log", node.name));
                let file = File::options().create(true).append(true).open(path)?;
                command.stderr(Stdio::from(file))
            }
        };
        node.child = Some(command.spawn()?);
        Ok(())
    }

    /// Waits until every running node answers `Inspect`, and every running broker holds a
    /// view, or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut nodes = vec![(None, self.controller.address.clone())];
        for (id, node) in &self.brokers {
            if node.child.is_some() {
                nodes.push((Some(*id), node.address.clone()));
            }
        }
        for (broker, address) in nodes {
            let ready = |snapshot: &Snapshot| match snapshot {
                Snapshot::Controller(_) => true,
                Snapshot::Broker(broker) => broker.view.is_some(),
            };
            let described = format!("{broker:?} at {address}");
            self.wait_for(&address, deadline, &described, ready).await?;
        }
        Ok(())
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
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Graceful stop: `Shutdown` on every node's control channel, then wait for each child
    /// (killing those that do not exit within `grace`).
    pub async fn stop(&mut self, grace: Duration) {
        let addresses: Vec<String> = std::iter::once(&self.controller)
            .chain(self.brokers.values())
            .filter(|node| node.child.is_some())
            .map(|node| node.address.clone())
            .collect();
        for address in addresses {
            let connect =
                ControlClient::connect_with_token(&address, &self.spec.cluster_id, &self.token);
            if let Ok(mut control) = connect.await {
                let _ = control.shutdown().await;
            }
        }
        let deadline = Instant::now() + grace;
        let nodes = std::iter::once(&mut self.controller).chain(self.brokers.values_mut());
        for node in nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            kill(node);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        kill(&mut self.controller);
        for node in self.brokers.values_mut() {
            kill(node);
        }
    }
}

fn kill(node: &mut NodeProcess) {
    if let Some(mut child) = node.child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn token_path(dir: &Path) -> PathBuf {
    dir.join(CONTROL_TOKEN_FILE_NAME)
}

fn token_error(error: TokenError) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

fn data_dir_args(dir: &Path) -> Vec<String> {
    vec!["--data-dir".into(), dir.display().to_string()]
}

fn common_args(spec: &LocalClusterSpec) -> Vec<String> {
    let mut args = vec!["--cluster-id".into(), spec.cluster_id.clone()];
    let token = token_path(&spec.dir).display().to_string();
    args.extend(["--control-token-file".into(), token]);
    args.extend(spec.node_args.iter().cloned());
    args
}

/// `count` ports: consecutive from `base`, or free ones the kernel picks (bound, noted,
/// released; a race with other programs is possible but unlikely on loopback).
fn pick_ports(base: Option<u16>, count: usize) -> std::io::Result<Vec<u16>> {
    if let Some(base) = base {
        return Ok((0..count as u16).map(|index| base + index).collect());
    }
    let listeners: Vec<StdTcpListener> = (0..count)
        .map(|_| StdTcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect()
}
