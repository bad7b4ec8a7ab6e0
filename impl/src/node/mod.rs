//! The node runtime: the tokio processes that run the protocol cores on real sockets and files.
//!
//! - [`config`]: what a process is told on its command line;
//! - [`listener`]: the bounded accept loop and per-connection handlers (handshake, then a
//!   protocol channel, a client, or the control channel);
//! - [`peers`]: one outbound connection per peer, reconnecting, with a bounded queue;
//! - [`event_loop`]: the single task that owns the core and handles inputs one at a time;
//! - [`broker`], [`controller`]: each role's process: the core over its storage or persisted
//!   state; [`controller_topics`], [`broker_topics`]: the topic table each keeps, and the
//!   partition slots' cores and loops started from it. Every deadline is a timer of the
//!   core, kept by the event loop (real time) or fired by the harness (stepped); the roles
//!   decide nothing about time themselves;
//! - [`shutdown`]: the shutdown signal every task selects on;
//! - [`data_dir_lock`]: one process per data directory (an advisory lock held for life);
//! - [`control_token`]: the operator's credential for the control channel.
//! - [`supervisor`]: nodes as child processes: start, `SIGKILL`, power-loss restart, addresses;
//!   [`local_cluster`]: a directly wired controller and brokers on the supervisor.
//!
//! Task layout of one node: the accept loop, one task per accepted connection, one task per
//! peer, and the event loop. Only the event loop touches protocol state; the rest move frames.

pub mod broker;
pub mod broker_topics;
pub mod config;
pub mod control_token;
pub mod controller;
pub mod controller_topics;
pub mod data_dir_lock;
pub mod event_loop;
pub mod listener;
pub mod local_cluster;
pub mod peers;
pub mod shutdown;
pub mod supervisor;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use crate::protocol::{BrokerId, NodeId};
use crate::storage::StorageError;
use crate::wire::{Hello, PeerName};
use event_loop::{EventLoop, Input, Outbound, Role, INPUT_QUEUE_MAX};
use listener::ListenerContext;
use shutdown::{Shutdown, ShutdownTrigger};

pub use config::{
    BrokerConfig, ConfigError, ControllerConfig, NodeOptions, PartitionNodes, Timing, TopicsConfig,
};
pub use control_token::{ControlToken, TokenError};
pub use data_dir_lock::{DataDirLock, LockError};

/// Why a node process stops with an error. Any of these exits the process: a storage failure
/// is a crash, the fault the protocol is built to survive.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the protocol core failed: {0}")]
    Core(String),
    #[error(transparent)]
    DataDir(#[from] LockError),
    #[error(transparent)]
    ControlToken(#[from] TokenError),
    #[error("cannot record the trace log: {0}")]
    Trace(#[from] crate::trace_log::TraceFileError),
}

/// What a node holds for its whole life: its data directory's lock and its control token.
#[derive(Debug)]
pub(crate) struct Claim {
    _lock: DataDirLock,
    token: ControlToken,
}

/// Opens `node`'s trace log when `--trace-log` asked for one.
pub(crate) fn open_trace(
    node: NodeId,
    options: &NodeOptions,
) -> Result<Option<(crate::trace_log::TraceLog, crate::trace_log::TraceHeader)>, NodeError> {
    let Some(dir) = &options.trace_log else {
        return Ok(None);
    };
    let trace =
        crate::trace_log::TraceLog::open(&crate::trace_log::TraceOptions::new(dir.clone()), node)?;
    let header = crate::trace_log::TraceHeader {
        node,
        protocol: options.protocol.clone(),
        fsync_always: options.fsync == crate::storage::FsyncPolicy::Always,
    };
    info!(dir = %dir.display(), "recording a trace log");
    Ok(Some((trace, header)))
}

/// Locks `data_dir` (before anything in it is read), then loads or creates the control token
/// (`--control-token-file`, else `<data-dir>/control.token`). Both happen before the node
/// binds, so whoever waits for the bound address can read the token.
pub(crate) fn claim_data_dir(data_dir: &Path, options: &NodeOptions) -> Result<Claim, NodeError> {
    let lock = DataDirLock::acquire(data_dir)?;
    let path = match &options.control_token_file {
        Some(path) => path.clone(),
        None => ControlToken::default_path(data_dir),
    };
    let token = ControlToken::load_or_create(&path)?;
    info!(token_file = %path.display(), "control token loaded");
    Ok(Claim { _lock: lock, token })
}

/// A bound listening socket: bind first, so the address is known (and printed) before anything
/// else starts, and port 0 works. `on_bound` is told the address that was bound.
pub async fn bind(
    address: &str,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<TcpListener, NodeError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Bind {
            address: address.to_owned(),
            source,
        })?;
    if let Ok(bound) = listener.local_addr() {
        on_bound(bound);
    }
    Ok(listener)
}

/// Who a node is and whom it talks to; what `run_node` needs besides the role.
pub(crate) struct Wiring {
    pub name: PeerName,
    pub cluster_id: String,
    /// `None` in stepped mode: no timer fires by itself.
    pub timing: Option<Timing>,
    pub peers: BTreeMap<NodeId, String>,
    pub brokers: BTreeSet<BrokerId>,
    pub accepts_controller: bool,
    pub accepts_clients: bool,
    pub claim: Claim,
    /// `--trace-log`: the recorder and this incarnation's header.
    pub trace: Option<(crate::trace_log::TraceLog, crate::trace_log::TraceHeader)>,
    /// `--kafka-listen`: a Kafka listener in front of this node's core (brokers only).
    pub kafka: Option<crate::kafka::KafkaStart>,
    /// The event loop's input channel, when the caller made it (a partition other than 0,
    /// whose sender the Kafka listener of partition 0 routes to); `None`: a fresh one.
    pub channel: Option<(mpsc::Sender<Input>, mpsc::Receiver<Input>)>,
    /// The controller process's slot 0: the topic table, which answers `Topics` and
    /// `CreateTopic` on this node's control channel.
    pub topics: Option<Arc<controller_topics::ControllerTopics>>,
}

/// A fresh event-loop input channel, bounded as every node's is.
pub(crate) fn input_channel() -> (mpsc::Sender<Input>, mpsc::Receiver<Input>) {
    mpsc::channel::<Input>(INPUT_QUEUE_MAX)
}

/// Where partition `index` (1, 2, ...) of a node keeps its state: a directory of its own
/// inside the node's data directory. Partition 0 keeps the data directory itself, as a
/// cluster of one partition always has.
pub fn partition_data_dir(data_dir: &Path, index: u32) -> std::path::PathBuf {
    data_dir.join(format!("partition-{index}"))
}

/// The options partition `index` (1, 2, ...) of a node runs with: those of partition 0, with
/// the replica assignment rotated by `index` (so initial leaders spread over the brokers,
/// `ProtocolConfig::for_partition`), partition 0's control token (one credential a process)
/// and no trace log (only partition 0, the one the conformance harness checks, records one).
pub(crate) fn partition_options(options: &NodeOptions, data_dir: &Path, index: u32) -> NodeOptions {
    let token = match &options.control_token_file {
        Some(path) => path.clone(),
        None => ControlToken::default_path(data_dir),
    };
    NodeOptions {
        control_token_file: Some(token),
        trace_log: None,
        protocol: options.protocol.for_partition(index),
        ..options.clone()
    }
}

/// Waits for partition 0's node (`main`) and every other partition's (`others`, each spawned
/// on its own task): they share one shutdown, so when one stops all do. The first error wins.
pub(crate) async fn join_partitions(
    main: impl std::future::Future<Output = Result<(), NodeError>>,
    others: Vec<tokio::task::JoinHandle<Result<(), NodeError>>>,
) -> Result<(), NodeError> {
    let mut result = main.await;
    for other in others {
        let joined = other
            .await
            .unwrap_or_else(|panic| Err(NodeError::Core(format!("a partition panicked: {panic}"))));
        if result.is_ok() {
            result = joined;
        }
    }
    result
}

/// Runs a node until shutdown (a signal, `Control::Shutdown`, or a fatal error).
pub(crate) async fn run_node<R: Role>(
    listener: TcpListener,
    role: R,
    wiring: Wiring,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
) -> Result<(), NodeError> {
    let local: SocketAddr = listener.local_addr().map_err(|source| NodeError::Bind {
        address: "(bound socket)".into(),
        source,
    })?;
    let hello = Hello::new(wiring.cluster_id.clone(), wiring.name);
    let handles = wiring
        .peers
        .iter()
        .map(|(peer, address)| {
            let handle = peers::spawn_peer(*peer, address.clone(), hello.clone(), shutdown.clone());
            (*peer, handle)
        })
        .collect();
    let (inputs, receiver) = wiring.channel.unwrap_or_else(input_channel);
    let context = Arc::new(ListenerContext {
        cluster_id: wiring.cluster_id,
        local: wiring.name,
        brokers: wiring.brokers,
        accepts_controller: wiring.accepts_controller,
        accepts_clients: wiring.accepts_clients,
        control_token: wiring.claim.token.clone(),
        inputs,
        connection_serial: AtomicU64::new(0),
        topics: wiring.topics,
    });
    let kafka = wiring.kafka.map(|kafka| kafka.spawn(shutdown.clone()));
    let accepting = tokio::spawn(listener::serve(listener, context, shutdown.clone()));
    let stepped = wiring.timing.is_none();
    info!(name = ?wiring.name, %local, stepped, "node serving");
    let mut event_loop = EventLoop::new(
        role,
        receiver,
        Outbound::new(handles),
        wiring.timing,
        trigger,
    );
    if let Some((trace, header)) = wiring.trace {
        event_loop = event_loop.with_trace(trace, header);
    }
    let result = event_loop.run(shutdown).await;
    let _ = accepting.await;
    if let Some(kafka) = kafka {
        let _ = kafka.await;
    }
    info!(name = ?wiring.name, "node stopped");
    // The data directory stays locked until everything that writes to it has stopped.
    drop(wiring.claim);
    result
}
