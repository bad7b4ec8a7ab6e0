//! [`Supervisor`]: starting, killing (`SIGKILL`), power-loss-restarting and addressing node
//! processes. One module for every caller that runs nodes as child processes: `insync cluster
//! up` and `insync bench` (through [`LocalCluster`](super::local_cluster::LocalCluster)), the
//! process tests, and the conformance harness (nodes behind its router).
//!
//! Addresses without a race. A node always reports the address it bound, as one JSON line on
//! stdout (`--json`); the supervisor awaits that line, so a start is an event, never a sleep.
//! Where the node listens is one of two:
//! - [`Listen::Any`]: `127.0.0.1:0`, the kernel picks. For nodes whose peers do not dial them
//!   directly (the conformance harness's router stands between, and learns the address from
//!   the supervisor);
//! - [`Listen::Reserved`]: a free port below the kernel's ephemeral range, which the supervisor
//!   holds with a bound, never-listening socket for as long as it supervises the node. Peers are given
//!   their addresses on the command line, so an address must be known before the processes
//!   start and must stay the node's across restarts. The kernel hands a port below its
//!   ephemeral range to no bind to port 0 and to no outgoing connection, and the held socket
//!   keeps off any bind without `SO_REUSEADDR`, so it cannot be taken between a kill and the
//!   restart (the race of picking a free port, releasing it and starting the node later);
//!   the node itself binds with `SO_REUSEADDR` and listens on it, which a bound socket that
//!   never listens allows. A dead node's port refuses
//!   connections, as a crashed machine's would.
//!
//! Every child is given one operator control token, `<dir>/control.token` (created owner-only
//! at the first start, kept across runs; docs/runtime.md "Who can do what"), so `stop`, the
//! harness and `insync inspect --dir` act as the operator without anyone handling the token.
//!
//! The children are the `insync` binary itself (`current_exe()` for the CLI,
//! `CARGO_BIN_EXE_insync` in tests). Every child is killed when the supervisor is dropped
//! (`kill_on_drop`), so a failing test or replay never leaves processes behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::select_all;
use futures::FutureExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

use super::control_token::{ControlToken, CONTROL_TOKEN_FILE_NAME};

use crate::client::ControlClient;
use crate::protocol::NodeId;
use crate::storage::power_loss::TORN_TAIL_BYTES_MAX;
use crate::storage::{simulate_torn_power_loss, PowerLossReport};

/// How long a starting process may take to report its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where children's logs (stderr) go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildLogs {
    /// The parent's stderr (interactive `cluster up`).
    Inherit,
    /// `<dir>/<node>.log`, appended across restarts (tests, bench, the harness).
    Files,
}

/// Where a node listens; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Any,
    Reserved,
    /// An address the operator chose (`cluster up --base-port`); no reservation.
    Fixed(SocketAddr),
}

/// What every supervised process shares.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// The `insync` binary.
    pub binary: PathBuf,
    /// Data directories (`<dir>/<node>/`) and log files go here.
    pub dir: PathBuf,
    pub cluster_id: String,
    pub logs: ChildLogs,
    /// `RUST_LOG` for the children unless the parent's environment sets one.
    pub log_filter: String,
}

/// Why the supervisor could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot reserve a port for {node:?}: {source}")]
    Reserve {
        node: NodeId,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {node:?}: {reason}")]
    Start { node: NodeId, reason: String },
    #[error("cannot simulate the power loss of {node:?}: {reason}")]
    PowerLoss { node: NodeId, reason: String },
    #[error("{node:?} is not supervised")]
    Unknown { node: NodeId },
    #[error("{node:?} is {state}")]
    State { node: NodeId, state: &'static str },
}

/// One supervised node.
#[derive(Debug)]
struct Supervised {
    /// `controller`, `broker-2`: names its data directory and log file.
    name: String,
    /// Everything but `--listen`, `--json` and `--data-dir`, which the supervisor adds.
    args: Vec<String>,
    listen: SocketAddr,
    /// Holds a [`Listen::Reserved`] port; see the module doc.
    _reservation: Option<Reservation>,
    child: Option<Child>,
    /// Held open so the child never writes to a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
    /// Where the running incarnation listens, as it reported.
    bound: Option<SocketAddr>,
}

impl Supervised {
    /// The running incarnation is gone (reaped): its pipe and its address go with it.
    fn incarnation_ended(&mut self) {
        self.child = None;
        self._stdout = None;
        self.bound = None;
    }

    /// Waits until `deadline` for the running child to exit, kills it past that, and ends the
    /// incarnation.
    async fn wait_or_kill(&mut self, deadline: Instant) {
        if let Some(mut child) = self.child.take() {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        self.incarnation_ended();
    }
}

/// The supervised processes. See the module doc.
#[derive(Debug)]
pub struct Supervisor {
    spec: SupervisorSpec,
    token: ControlToken,
    nodes: BTreeMap<NodeId, Supervised>,
    /// Ports held for a node's second listener (a broker's Kafka listener), as its own.
    extra_ports: Vec<Reservation>,
}

impl Supervisor {
    pub fn new(spec: SupervisorSpec) -> std::io::Result<Supervisor> {
        std::fs::create_dir_all(&spec.dir)?;
        let token = ControlToken::load_or_create(&token_path(&spec.dir))
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(Supervisor {
            spec,
            token,
            nodes: BTreeMap::new(),
            extra_ports: Vec::new(),
        })
    }

    /// Registers `node` (not yet started, no arguments yet) and returns where it will listen:
    /// the reserved or fixed address, or `127.0.0.1:0` for [`Listen::Any`].
    pub fn add(&mut self, node: NodeId, listen: Listen) -> Result<SocketAddr, SupervisorError> {
        assert!(!self.nodes.contains_key(&node), "{node:?} added twice");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
        let (listen, reservation) = match listen {
            Listen::Any => (any, None),
            Listen::Fixed(address) => (address, None),
            Listen::Reserved => {
                let (address, reservation) =
                    reserve().map_err(|source| SupervisorError::Reserve { node, source })?;
                (address, Some(reservation))
            }
        };
        let name = node_name(node);
        self.nodes.insert(
            node,
            Supervised {
                name,
                args: Vec::new(),
                listen,
                _reservation: reservation,
                child: None,
                _stdout: None,
                bound: None,
            },
        );
        Ok(listen)
    }

    /// Reserves one more port, held as a node's own are (module doc), for a listener a node
    /// opens besides its main one; `node` only names it in an error.
    pub fn reserve_extra(&mut self, node: NodeId) -> Result<SocketAddr, SupervisorError> {
        let (address, reservation) =
            reserve().map_err(|source| SupervisorError::Reserve { node, source })?;
        self.extra_ports.push(reservation);
        Ok(address)
    }

    /// The command line of every incarnation of `node` (role and flags), without `--listen`,
    /// `--json` and `--data-dir`, which the supervisor adds.
    pub fn set_args(&mut self, node: NodeId, args: Vec<String>) {
        let process = self
            .nodes
            .get_mut(&node)
            .expect("set_args of an added node");
        process.args = args;
    }

    /// Starts `node` with `extra` flags for this incarnation; returns once it reported the
    /// address it bound.
    pub async fn start(
        &mut self,
        node: NodeId,
        extra: &[String],
    ) -> Result<SocketAddr, SupervisorError> {
        let command = self.command(node, extra)?;
        let process = self.supervised(node)?;
        if process.child.is_some() {
            return Err(SupervisorError::State {
                node,
                state: "already running",
            });
        }
        let failed = |reason: String| SupervisorError::Start { node, reason };
        let (child, stdout, bound) = spawn_and_await_address(command, &self.log_hint(node))
            .await
            .map_err(failed)?;
        let process = self.nodes.get_mut(&node).expect("checked above");
        if process.listen.port() != 0 && bound != process.listen {
            return Err(failed(format!(
                "bound {bound}, not its reserved {}",
                process.listen
            )));
        }
        process.child = Some(child);
        process._stdout = Some(stdout);
        process.bound = Some(bound);
        Ok(bound)
    }

    /// `SIGKILL`, and reap: a crash with no chance to flush or close anything.
    pub async fn kill(&mut self, node: NodeId) -> Result<(), SupervisorError> {
        let process = self
            .nodes
            .get_mut(&node)
            .ok_or(SupervisorError::Unknown { node })?;
        let mut child = process.child.take().ok_or(SupervisorError::State {
            node,
            state: "not running",
        })?;
        // Kill fails only if the child already exited, which the wait below reaps.
        let _ = child.start_kill();
        let _ = child.wait().await;
        process.incarnation_ended();
        Ok(())
    }

    /// Starts a dead broker again on its data directory after a [`power_loss`](Self::power_loss).
    pub async fn restart_after_power_loss(
        &mut self,
        node: NodeId,
        extra: &[String],
    ) -> Result<PowerLossReport, SupervisorError> {
        let report = self.power_loss(node)?;
        self.start(node, extra).await?;
        Ok(report)
    }

    /// Makes a dead broker's data directory look as a power loss would leave it
    /// (`storage::simulate_torn_power_loss`): what no fsync covered is gone but for a torn
    /// piece shorter than a record, which recovery must cut. Returns what it removed.
    pub fn power_loss(&mut self, node: NodeId) -> Result<PowerLossReport, SupervisorError> {
        let dir = self.data_dir(node)?;
        if self.is_running(node) {
            return Err(SupervisorError::State {
                node,
                state: "running",
            });
        }
        simulate_torn_power_loss(&dir, TORN_TAIL_BYTES_MAX).map_err(|error| {
            SupervisorError::PowerLoss {
                node,
                reason: error.to_string(),
            }
        })
    }

    /// Where the running incarnation of `node` listens.
    pub fn address(&self, node: NodeId) -> Option<SocketAddr> {
        self.nodes.get(&node).and_then(|process| process.bound)
    }

    pub fn is_running(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|process| process.child.is_some())
    }

    /// The process id of a running node (to stop it with `SIGSTOP` in tests).
    pub fn pid(&self, node: NodeId) -> Option<u32> {
        self.nodes.get(&node)?.child.as_ref()?.id()
    }

    pub fn data_dir(&self, node: NodeId) -> Result<PathBuf, SupervisorError> {
        let process = self.supervised(node)?;
        Ok(self.spec.dir.join(&process.name))
    }

    /// The node's log file (stderr of every incarnation), with [`ChildLogs::Files`].
    pub fn log_path(&self, node: NodeId) -> Option<PathBuf> {
        let process = self.nodes.get(&node)?;
        Some(self.spec.dir.join(format!("{}.log", process.name)))
    }

    /// The operator's token every supervised node was given.
    pub fn control_token(&self) -> &ControlToken {
        &self.token
    }

    /// Where the token file is: `<dir>/control.token`.
    pub fn control_token_path(&self) -> PathBuf {
        token_path(&self.spec.dir)
    }

    pub fn cluster_id(&self) -> &str {
        &self.spec.cluster_id
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.keys().copied()
    }

    /// Waits until a running child exits by itself (a crash, or someone's `kill -9`) and
    /// reaps it; `None` when nothing runs.
    pub async fn next_exit(&mut self) -> Option<(NodeId, ExitStatus)> {
        let running: Vec<(NodeId, &mut Child)> = self
            .nodes
            .iter_mut()
            .filter_map(|(node, process)| process.child.as_mut().map(|child| (*node, child)))
            .collect();
        if running.is_empty() {
            return None;
        }
        let waits = running
            .into_iter()
            .map(|(node, child)| child.wait().map(move |status| (node, status)).boxed());
        let ((node, status), _, _) = select_all(waits).await;
        self.nodes
            .get_mut(&node)
            .expect("a supervised node")
            .incarnation_ended();
        let status = status.unwrap_or_else(|_| ExitStatus::default());
        Some((node, status))
    }

    /// Reaps every child that has exited by itself, without waiting: each exited node and its
    /// status (a chaos run restarts them, and reports those no fault explains).
    pub fn reap_exited(&mut self) -> Vec<(NodeId, ExitStatus)> {
        let mut exited = Vec::new();
        for (node, process) in self.nodes.iter_mut() {
            let status = match process.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                Some(Err(_)) => ExitStatus::default(),
                Some(Ok(None)) | None => continue,
            };
            process.incarnation_ended();
            exited.push((*node, status));
        }
        exited
    }

    /// Graceful stop of one node: `Shutdown` on its control channel, then wait for it to
    /// exit, killing it if it does not within `grace`.
    pub async fn stop_node(
        &mut self,
        node: NodeId,
        grace: Duration,
    ) -> Result<(), SupervisorError> {
        let address = self.address(node).ok_or(SupervisorError::State {
            node,
            state: "not running",
        })?;
        self.ask_to_shut_down(address).await;
        let process = self.nodes.get_mut(&node).expect("addressed above");
        process.wait_or_kill(Instant::now() + grace).await;
        Ok(())
    }

    /// Graceful stop: `Shutdown` on every running node's control channel, then wait for each
    /// child to exit, killing those that do not within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let running: Vec<SocketAddr> = self.nodes.values().filter_map(|p| p.bound).collect();
        for address in running {
            self.ask_to_shut_down(address).await;
        }
        let deadline = Instant::now() + grace;
        for process in self.nodes.values_mut() {
            if process.child.is_some() {
                process.wait_or_kill(deadline).await;
            }
        }
    }

    /// Sends `Shutdown` on the control channel at `address`; a node that cannot be reached is
    /// left to the wait that follows.
    async fn ask_to_shut_down(&self, address: SocketAddr) {
        let address = address.to_string();
        let connect =
            ControlClient::connect_with_token(&address, &self.spec.cluster_id, &self.token);
        if let Ok(mut control) = connect.await {
            let _ = control.shutdown().await;
        }
    }

    fn supervised(&self, node: NodeId) -> Result<&Supervised, SupervisorError> {
        self.nodes
            .get(&node)
            .ok_or(SupervisorError::Unknown { node })
    }

    fn log_hint(&self, node: NodeId) -> String {
        match (&self.spec.logs, self.log_path(node)) {
            (ChildLogs::Files, Some(path)) => format!("; see {}", path.display()),
            _ => String::new(),
        }
    }

    fn command(&self, node: NodeId, extra: &[String]) -> Result<Command, SupervisorError> {
        let process = self.supervised(node)?;
        let data_dir = self.spec.dir.join(&process.name);
        let mut command = Command::new(&self.spec.binary);
        command
            .args(&process.args)
            .args(["--listen".to_string(), process.listen.to_string()])
            .args(["--json".to_string(), "--data-dir".to_string()])
            .arg(&data_dir)
            .arg("--control-token-file")
            .arg(token_path(&self.spec.dir))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", &self.spec.log_filter);
        }
        match self.spec.logs {
            ChildLogs::Inherit => command.stderr(Stdio::inherit()),
            ChildLogs::Files => {
                let path = self.log_path(node).expect("a supervised node");
                let file = File::options().create(true).append(true).open(&path);
                let file = file.map_err(|error| SupervisorError::Start {
                    node,
                    reason: format!("log file {}: {error}", path.display()),
                })?;
                command.stderr(Stdio::from(file))
            }
        };
        Ok(command)
    }
}

fn token_path(dir: &Path) -> PathBuf {
    dir.join(CONTROL_TOKEN_FILE_NAME)
}

/// `controller`, `broker-2`.
pub fn node_name(node: NodeId) -> String {
    match node {
        NodeId::Controller => "controller".into(),
        NodeId::Broker(id) => format!("broker-{id}"),
        NodeId::Client(id) => format!("client-{id}"),
    }
}

/// The lowest port a reservation takes; reservations stay below the kernel's ephemeral range.
const RESERVED_PORT_MIN: u16 = 20_000;
/// Ports tried before a reservation gives up.
const RESERVE_ATTEMPTS_MAX: u32 = 2_048;

/// Ports this process holds: two bound, non-listening `SO_REUSEADDR` sockets may share a port,
/// so the supervisor itself must never hand one out twice.
static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port held for a node by a bound socket that never listens; released when dropped.
#[derive(Debug)]
struct Reservation {
    port: u16,
    _socket: TcpSocket,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = RESERVED_PORTS.lock().unwrap_or_else(|p| p.into_inner());
        reserved.remove(&self.port);
    }
}

/// A free loopback port below the kernel's ephemeral range, held. Below that range neither a
/// bind to port 0 nor an outgoing connection is ever given it by the kernel (within the range
/// an outgoing connection may share a port with a bound socket, and then the node cannot
/// listen there); the start is spread by process id so concurrent supervisors rarely probe the
/// same ports.
fn reserve() -> std::io::Result<(SocketAddr, Reservation)> {
    let ceiling = ephemeral_port_min().max(RESERVED_PORT_MIN + 1_000);
    let span = u32::from(ceiling - RESERVED_PORT_MIN);
    let start = std::process::id().wrapping_mul(7_919) % span;
    let mut reserved = RESERVED_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    for attempt in 0..RESERVE_ATTEMPTS_MAX {
        let offset = (start + attempt) % span;
        let port = RESERVED_PORT_MIN + u16::try_from(offset).expect("span fits a port");
        if reserved.contains(&port) {
            continue;
        }
        match hold(port) {
            Ok(socket) => {
                reserved.insert(port);
                let address = SocketAddr::from(([127, 0, 0, 1], port));
                let reservation = Reservation {
                    port,
                    _socket: socket,
                };
                return Ok((address, reservation));
            }
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free loopback port to reserve",
    ))
}

/// Binds `port` without listening, after a probe showed that a node could listen there (a
/// listener elsewhere, or a socket without `SO_REUSEADDR`, would make the probe fail).
fn hold(port: u16) -> std::io::Result<TcpSocket> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let probe = TcpSocket::new_v4()?;
    probe.set_reuseaddr(true)?;
    probe.bind(address)?;
    drop(probe.listen(1)?);
    Ok(socket)
}

/// The first port of `ip_local_port_range` (Linux's default, 32768, if it cannot be read).
fn ephemeral_port_min() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
    let first = range.ok().and_then(|text| {
        let first = text.split_whitespace().next()?;
        first.parse::<u16>().ok()
    });
    first.unwrap_or(32_768)
}

/// Spawns, then awaits the node's first stdout line: its bound address.
async fn spawn_and_await_address(
    mut command: Command,
    log_hint: &str,
) -> Result<(Child, BufReader<ChildStdout>, SocketAddr), String> {
    let mut child = command.spawn().map_err(|error| error.to_string())?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await;
    let bound = match read {
        Ok(Ok(count)) if count > 0 => parse_bound(&line)?,
        Ok(Ok(_)) => {
            let status = child.wait().await.ok();
            return Err(format!("exited before listening ({status:?}){log_hint}"));
        }
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err(format!("no address within {START_TIMEOUT:?}{log_hint}")),
    };
    Ok((child, stdout, bound))
}

/// `{"role":..,"id":..,"listen":"127.0.0.1:PORT"}` → the address.
pub fn parse_bound(line: &str) -> Result<SocketAddr, String> {
    let value: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|error| format!("bad address line {line:?}: {error}"))?;
    value
        .get("listen")
        .and_then(|listen| listen.as_str())
        .ok_or_else(|| format!("no \"listen\" in {line:?}"))?
        .parse()
        .map_err(|error| format!("bad address in {line:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_line_parses() {
        let line = r#"{"role":"broker","id":2,"listen":"127.0.0.1:4567"}"#;
        assert_eq!(parse_bound(line).unwrap().port(), 4567);
        assert!(parse_bound("broker 2 listening").is_err());
        assert!(parse_bound(r#"{"listen":"nowhere"}"#).is_err());
    }

    /// Goal: a node can listen on its reserved port, a dead node's port refuses connections,
    /// and the restarted node gets the same port. Method: reserve, bind as the node does
    /// (tokio's `SO_REUSEADDR` bind), connect, drop, connect again, bind again.
    #[tokio::test]
    async fn a_reserved_port_serves_each_incarnation_of_its_node() {
        let (address, reservation) = reserve().unwrap();
        assert!(address.port() < ephemeral_port_min(), "{address}");
        let (other, _held) = reserve().unwrap();
        assert_ne!(other, address, "a port is reserved once");
        let node = tokio::net::TcpListener::bind(address).await.unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_ok());
        drop(node);
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
        let again = tokio::net::TcpListener::bind(address).await;
        assert!(again.is_ok(), "the node binds its port again after a crash");
        drop((again, reservation));
        assert!(!RESERVED_PORTS.lock().unwrap().contains(&address.port()));
    }
}
