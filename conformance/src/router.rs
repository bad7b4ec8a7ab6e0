//! The harness is the network (overview §4, conformance-notes "The harness is the network").
//!
//! Every node is started with its peers' addresses pointing at the [`Router`]: one loopback
//! listener per destination node. A node that dials "broker 2" reaches the router's listener
//! for broker 2; the handshake names the dialling node, so every frame read on that connection
//! goes onto the `(sender, broker 2)` FIFO queue and stays there until a trace step delivers
//! or drops it.
//!
//! Delivery writes the head frame to the destination over a connection the router opened to
//! the destination's real listen address, with a handshake naming the original sender: the
//! destination sees the frame as coming from that sender. Frames the destination writes back
//! on such a connection (a node may answer on the connection it accepted) are queued on the
//! reverse channel, so the router works whichever way the runtime routes replies. The
//! harness's client actor uses the same links, named `NodeId::Client(_)`.
//!
//! Counting: the router counts frames *arrived* from each sender per channel (reset when the
//! sender restarts, matching the node's own emitted counters) and frames *delivered* to each
//! destination per channel (reset when the destination restarts), which is what
//! `Control::Barrier` takes and returns.
//!
//! Bounds: one listener per node, one link per channel, one queue per channel; a queue holds
//! at most [`QUEUE_FRAMES_MAX`] frames (a node flooding a channel is a divergence, reported).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use insync_impl::protocol::{ClientReply, ClientRequest, NodeId, PeerMessage};
use insync_impl::wire::{
    handshake_client, handshake_server, Connection, FrameReader, FrameWriter, Hello, PeerName,
    WireError,
};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The most frames one channel may hold before the router calls it a flood.
pub const QUEUE_FRAMES_MAX: usize = 10_000;

/// Client connections reach a broker through its router address when a client discovers
/// the leader from the controller's metadata (which names router addresses). Those of any
/// client but the trace's own (`mapping::HARNESS_CLIENT_ID`, which the harness never dials
/// through the router) are passed through untouched: an operator's `insync consume` after a
/// replay is not part of the trace.
pub const PASS_THROUGH_EXCEPT: u64 = crate::mapping::HARNESS_CLIENT_ID;

/// A directed channel `(src, dst)`, FIFO like a TCP connection.
pub type Channel = (NodeId, NodeId);

/// One frame, of the type its channel carries (docs/protocol.md §3): requests from a client,
/// replies to one, peer messages between the controller and the brokers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Peer(PeerMessage),
    Request(ClientRequest),
    Reply(ClientReply),
}

impl Frame {
    async fn read(
        reader: &mut FrameReader<OwnedReadHalf>,
        (src, dst): Channel,
    ) -> Result<Option<Frame>, WireError> {
        Ok(match (src, dst) {
            (NodeId::Client(_), _) => reader.read().await?.map(Frame::Request),
            (_, NodeId::Client(_)) => reader.read().await?.map(Frame::Reply),
            _ => reader.read().await?.map(Frame::Peer),
        })
    }

    async fn write(&self, writer: &mut FrameWriter<OwnedWriteHalf>) -> Result<(), WireError> {
        match self {
            Frame::Peer(message) => writer.write(message).await,
            Frame::Request(request) => writer.write(request).await,
            Frame::Reply(reply) => writer.write(reply).await,
        }
    }
}

/// Why a router operation failed. Each is reported as a divergence or a harness error.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot bind a router listener: {0}")]
    Bind(std::io::Error),
    #[error("no frame queued on channel {src:?} -> {dst:?}")]
    Empty { src: NodeId, dst: NodeId },
    #[error("no listen address known for {0:?}")]
    UnknownNode(NodeId),
    #[error("cannot connect to {dst:?} at {addr} as {src:?}: {reason}")]
    Connect {
        src: NodeId,
        dst: NodeId,
        addr: SocketAddr,
        reason: String,
    },
    #[error("cannot write to {dst:?} as {src:?}: {reason}")]
    Write {
        src: NodeId,
        dst: NodeId,
        reason: String,
    },
    #[error(
        "timed out after {after:?} waiting for frames from {src:?}: expected {expected:?}, \
         arrived {arrived:?}"
    )]
    WaitTimeout {
        src: NodeId,
        expected: BTreeMap<NodeId, u64>,
        arrived: BTreeMap<NodeId, u64>,
        after: Duration,
    },
    #[error("channel {src:?} -> {dst:?} holds more than {QUEUE_FRAMES_MAX} frames")]
    Flood { src: NodeId, dst: NodeId },
}

/// The name a node gives itself in a handshake.
pub fn peer_name(node: NodeId) -> PeerName {
    match node {
        NodeId::Controller => PeerName::Controller,
        NodeId::Broker(id) => PeerName::Broker(id),
        NodeId::Client(id) => PeerName::Client(id),
    }
}

/// The node a handshake names, `None` for the harness's own control connections.
pub fn node_of(name: PeerName) -> Option<NodeId> {
    match name {
        PeerName::Controller => Some(NodeId::Controller),
        PeerName::Broker(id) => Some(NodeId::Broker(id)),
        PeerName::Client(id) => Some(NodeId::Client(id)),
        PeerName::Harness => None,
    }
}

#[derive(Default)]
struct Queues {
    queued: BTreeMap<Channel, VecDeque<Frame>>,
    /// Frames arrived per channel from the sender's current incarnation.
    arrived: BTreeMap<Channel, u64>,
    /// Frames delivered per channel to the destination's current incarnation.
    delivered: BTreeMap<Channel, u64>,
    /// Frames that arrived since the last `take_arrivals`, in arrival order.
    fresh: Vec<(NodeId, NodeId, Frame)>,
    /// Problems seen by background tasks (bad handshake, flood): reported at the next check.
    faults: Vec<String>,
    /// Per-sender incarnation, so a late frame from a killed incarnation is not counted twice.
    incarnation: BTreeMap<NodeId, u64>,
    /// Nodes that are down (killed, not yet restarted). Frames to them from anyone but a
    /// client are lost, as TCP loses them when the connection breaks (the model's
    /// `break_connections`); client requests wait, standing for the client's retry.
    down: BTreeSet<NodeId>,
    /// Frames lost that way, per channel, since the router started.
    lost: BTreeMap<Channel, u64>,
}

struct Shared {
    queues: Mutex<Queues>,
    arrived: Notify,
    /// Where each node really listens (for pass-through client connections).
    node_addrs: Mutex<BTreeMap<NodeId, SocketAddr>>,
    cluster_id: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().expect("router state poisoned")
    }

    fn push(&self, src: NodeId, dst: NodeId, message: Frame, incarnation: u64) {
        let mut queues = self.lock();
        if queues.incarnation.get(&src).copied().unwrap_or(0) != incarnation {
            queues.faults.push(format!(
                "frame from a previous incarnation of {src:?} to {dst:?} arrived late: {message:?}"
            ));
            return;
        }
        if queues.down.contains(&dst) && !matches!(src, NodeId::Client(_)) {
            *queues.arrived.entry((src, dst)).or_insert(0) += 1;
            *queues.lost.entry((src, dst)).or_insert(0) += 1;
            drop(queues);
            self.arrived.notify_waiters();
            return;
        }
        let queue = queues.queued.entry((src, dst)).or_default();
        if queue.len() >= QUEUE_FRAMES_MAX {
            queues
                .faults
                .push(RouterError::Flood { src, dst }.to_string());
            return;
        }
        queue.push_back(message.clone());
        *queues.arrived.entry((src, dst)).or_insert(0) += 1;
        queues.fresh.push((src, dst, message));
        drop(queues);
        self.arrived.notify_waiters();
    }

    fn fault(&self, text: String) {
        self.lock().faults.push(text);
        self.arrived.notify_waiters();
    }
}

/// A harness-opened connection to `dst`, speaking as `src`.
struct Link {
    writer: FrameWriter<OwnedWriteHalf>,
    reader_task: JoinHandle<()>,
}

/// The network between the nodes. See the module doc.
pub struct Router {
    cluster_id: String,
    shared: Arc<Shared>,
    /// Where peers must dial to reach a node (the router's listener for it).
    router_addrs: BTreeMap<NodeId, SocketAddr>,
    /// Where a node really listens.
    node_addrs: BTreeMap<NodeId, SocketAddr>,
    links: HashMap<Channel, Link>,
    accept_tasks: Vec<JoinHandle<()>>,
}

impl Drop for Router {
    fn drop(&mut self) {
        for task in &self.accept_tasks {
            task.abort();
        }
        for link in self.links.values() {
            link.reader_task.abort();
        }
    }
}

impl Router {
    /// Binds one loopback listener per node in `nodes` (the destinations peers dial).
    pub async fn bind(nodes: &[NodeId], cluster_id: &str) -> Result<Router, RouterError> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            arrived: Notify::new(),
            node_addrs: Mutex::new(BTreeMap::new()),
            cluster_id: cluster_id.to_owned(),
        });
        let mut router_addrs = BTreeMap::new();
        let mut accept_tasks = Vec::new();
        for &node in nodes {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(RouterError::Bind)?;
            router_addrs.insert(node, listener.local_addr().map_err(RouterError::Bind)?);
            let task = tokio::spawn(accept_loop(
                listener,
                node,
                cluster_id.to_owned(),
                Arc::clone(&shared),
            ));
            accept_tasks.push(task);
        }
        Ok(Router {
            cluster_id: cluster_id.to_owned(),
            shared,
            router_addrs,
            node_addrs: BTreeMap::new(),
            links: HashMap::new(),
            accept_tasks,
        })
    }

    /// The address a node's peers are given for `node`.
    pub fn router_addr(&self, node: NodeId) -> SocketAddr {
        self.router_addrs[&node]
    }

    /// Records where `node` really listens (it may change across restarts).
    pub fn set_node_addr(&mut self, node: NodeId, addr: SocketAddr) {
        self.node_addrs.insert(node, addr);
        let mut shared = self
            .shared
            .node_addrs
            .lock()
            .expect("router state poisoned");
        shared.insert(node, addr);
    }

    /// Queues a frame the harness itself sends (its client actor's requests).
    pub fn inject(&self, src: NodeId, dst: NodeId, message: Frame) {
        let incarnation = self
            .shared
            .lock()
            .incarnation
            .get(&src)
            .copied()
            .unwrap_or(0);
        self.shared.push(src, dst, message, incarnation);
    }

    /// The frame at the head of `(src, dst)`, if any.
    pub fn head(&self, src: NodeId, dst: NodeId) -> Option<Frame> {
        let queues = self.shared.lock();
        queues
            .queued
            .get(&(src, dst))
            .and_then(|q| q.front().cloned())
    }

    /// Removes and returns the head of `(src, dst)` without sending it anywhere: a model
    /// `Drop`, or a delivery to the harness's own client actor.
    pub fn pop(&self, src: NodeId, dst: NodeId) -> Result<Frame, RouterError> {
        let mut queues = self.shared.lock();
        let message = queues
            .queued
            .get_mut(&(src, dst))
            .and_then(VecDeque::pop_front)
            .ok_or(RouterError::Empty { src, dst })?;
        *queues.delivered.entry((src, dst)).or_insert(0) += 1;
        Ok(message)
    }

    /// Delivers the head of `(src, dst)` to `dst`, as if `src` sent it. Returns the frame.
    pub async fn deliver(&mut self, src: NodeId, dst: NodeId) -> Result<Frame, RouterError> {
        let message = self.head(src, dst).ok_or(RouterError::Empty { src, dst })?;
        self.ensure_link(src, dst).await?;
        let link = self.links.get_mut(&(src, dst)).expect("link just ensured");
        if let Err(error) = message.write(&mut link.writer).await {
            self.links.remove(&(src, dst));
            return Err(RouterError::Write {
                src,
                dst,
                reason: error.to_string(),
            });
        }
        self.pop(src, dst)
    }

    async fn ensure_link(&mut self, src: NodeId, dst: NodeId) -> Result<(), RouterError> {
        if self.links.contains_key(&(src, dst)) {
            return Ok(());
        }
        let addr = *self
            .node_addrs
            .get(&dst)
            .ok_or(RouterError::UnknownNode(dst))?;
        let connect_error = |reason: String| RouterError::Connect {
            src,
            dst,
            addr,
            reason,
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        stream.set_nodelay(true).ok();
        let hello = Hello::new(self.cluster_id.clone(), peer_name(src));
        let (connection, _) = handshake_client(Connection::new(stream), &hello)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let (reader, writer) = connection.into_split_with(TcpStream::into_split);
        let incarnation = self
            .shared
            .lock()
            .incarnation
            .get(&dst)
            .copied()
            .unwrap_or(0);
        let reader_task = tokio::spawn(read_loop(
            reader,
            dst,
            src,
            incarnation,
            Arc::clone(&self.shared),
        ));
        self.links.insert(
            (src, dst),
            Link {
                writer,
                reader_task,
            },
        );
        Ok(())
    }

    /// `node` was killed: frames queued to or from it on its connections with the controller
    /// and the brokers are lost (a broken connection loses what is in flight, both ways, the
    /// model's `break_connections`), and so are frames sent to it until it restarts (see
    /// `Queues::down`). Client channels keep their frames: they stand for the client's retry.
    pub fn node_down(&mut self, node: NodeId) {
        let mut queues = self.shared.lock();
        queues.down.insert(node);
        let channels: Vec<Channel> = queues
            .queued
            .keys()
            .filter(|(src, dst)| {
                let client = matches!(src, NodeId::Client(_)) || matches!(dst, NodeId::Client(_));
                (*dst == node || *src == node) && !client
            })
            .copied()
            .collect();
        for channel in channels {
            let removed = queues.queued.remove(&channel).map_or(0, |q| q.len() as u64);
            *queues.lost.entry(channel).or_insert(0) += removed;
        }
        drop(queues);
        self.drop_links_to(node);
    }

    fn drop_links_to(&mut self, node: NodeId) {
        let stale: Vec<Channel> = self
            .links
            .keys()
            .filter(|(_, dst)| *dst == node)
            .copied()
            .collect();
        for channel in stale {
            if let Some(link) = self.links.remove(&channel) {
                link.reader_task.abort();
            }
        }
    }

    /// Forgets everything tied to `node`'s previous incarnation: its counters restart at zero
    /// (as the new process's do) and links to it are closed. Frames it sent before dying stay
    /// queued, like messages in flight in the model.
    pub fn node_restarted(&mut self, node: NodeId) {
        let mut queues = self.shared.lock();
        *queues.incarnation.entry(node).or_insert(0) += 1;
        queues.arrived.retain(|(src, _), _| *src != node);
        queues.delivered.retain(|(_, dst), _| *dst != node);
        queues.down.remove(&node);
        drop(queues);
        self.drop_links_to(node);
    }

    /// Frames delivered to `dst`'s current incarnation, per sender: a barrier's `received`.
    pub fn delivered_to(&self, dst: NodeId) -> BTreeMap<NodeId, u64> {
        let queues = self.shared.lock();
        queues
            .delivered
            .iter()
            .filter(|((_, d), _)| *d == dst)
            .map(|((s, _), n)| (*s, *n))
            .collect()
    }

    /// Frames arrived from `src`'s current incarnation, per destination.
    pub fn arrived_from(&self, src: NodeId) -> BTreeMap<NodeId, u64> {
        let queues = self.shared.lock();
        arrived_from(&queues, src)
    }

    /// Waits until exactly `expected[dst]` frames have arrived from `src` on each channel (a
    /// barrier's `emitted`). More than expected is reported at once; fewer after `timeout`.
    pub async fn wait_arrived(
        &self,
        src: NodeId,
        expected: &BTreeMap<NodeId, u64>,
        timeout: Duration,
    ) -> Result<(), RouterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let arrived = self.arrived_from(src);
            let done = expected
                .iter()
                .all(|(dst, n)| arrived.get(dst).copied().unwrap_or(0) >= *n);
            if done {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(RouterError::WaitTimeout {
                    src,
                    expected: expected.clone(),
                    arrived: self.arrived_from(src),
                    after: timeout,
                });
            }
        }
    }

    /// Frames that arrived since the last call, in arrival order (per channel, FIFO).
    pub fn take_arrivals(&self) -> Vec<(NodeId, NodeId, Frame)> {
        std::mem::take(&mut self.shared.lock().fresh)
    }

    /// Frames lost to down nodes, per channel.
    pub fn lost(&self) -> BTreeMap<Channel, u64> {
        self.shared.lock().lost.clone()
    }

    /// Problems background tasks saw since the last call.
    pub fn take_faults(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().faults)
    }

    /// Every queued frame, per channel (empty channels omitted).
    pub fn queues(&self) -> BTreeMap<Channel, Vec<Frame>> {
        let queues = self.shared.lock();
        queues
            .queued
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(c, q)| (*c, q.iter().cloned().collect()))
            .collect()
    }
}

fn arrived_from(queues: &Queues, src: NodeId) -> BTreeMap<NodeId, u64> {
    queues
        .arrived
        .iter()
        .filter(|((s, _), _)| *s == src)
        .map(|((_, d), n)| (*d, *n))
        .collect()
}

async fn accept_loop(listener: TcpListener, dst: NodeId, cluster_id: String, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                shared.fault(format!("router listener for {dst:?} failed: {error}"));
                return;
            }
        };
        stream.set_nodelay(true).ok();
        let shared = Arc::clone(&shared);
        let cluster_id = cluster_id.clone();
        tokio::spawn(async move {
            let handshake =
                handshake_server(Connection::new(stream), &cluster_id, peer_name(dst)).await;
            let (connection, sender) = match handshake {
                Ok(pair) => pair,
                // Our nodes share the cluster id, so a refused handshake is a stranger (another
                // cluster on this machine dialling a port it used to own): not our traffic.
                Err(error) => {
                    tracing::debug!(?dst, %error, "foreign connection refused");
                    return;
                }
            };
            let Some(src) = node_of(sender) else {
                shared.fault(format!("{sender:?} dialled {dst:?}'s protocol listener"));
                return;
            };
            if let NodeId::Client(id) = src {
                if id != PASS_THROUGH_EXCEPT {
                    pass_through(connection, sender, dst, shared).await;
                    return;
                }
            }
            let incarnation = shared.lock().incarnation.get(&src).copied().unwrap_or(0);
            let (reader, _writer) = connection.into_split_with(TcpStream::into_split);
            // The writer half is held by the read loop's future so the connection stays open.
            read_loop_holding(reader, _writer, src, dst, incarnation, shared).await;
        });
    }
}

async fn read_loop_holding(
    reader: FrameReader<OwnedReadHalf>,
    writer: FrameWriter<OwnedWriteHalf>,
    src: NodeId,
    dst: NodeId,
    incarnation: u64,
    shared: Arc<Shared>,
) {
    read_loop(reader, src, dst, incarnation, shared).await;
    drop(writer);
}

/// Reads `src -> dst` frames until the connection ends. A clean close or a reset is how a
/// killed node's connections end, so neither is a fault; a malformed frame is.
async fn read_loop(
    mut reader: FrameReader<OwnedReadHalf>,
    src: NodeId,
    dst: NodeId,
    incarnation: u64,
    shared: Arc<Shared>,
) {
    loop {
        match Frame::read(&mut reader, (src, dst)).await {
            Ok(Some(message)) => shared.push(src, dst, message, incarnation),
            Ok(None) => return,
            Err(WireError::Io(_)) => return,
            Err(error) => {
                shared.fault(format!("bad frame on {src:?} -> {dst:?}: {error}"));
                return;
            }
        }
    }
}

/// Proxies one outside client's connection to the node's real address, both directions.
async fn pass_through(
    connection: Connection<TcpStream>,
    sender: PeerName,
    dst: NodeId,
    shared: Arc<Shared>,
) {
    let addr = shared
        .node_addrs
        .lock()
        .expect("router state poisoned")
        .get(&dst)
        .copied();
    let Some(addr) = addr else { return };
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    let hello = Hello::new(shared.cluster_id.clone(), sender);
    let Ok((upstream, _)) = handshake_client(Connection::new(stream), &hello).await else {
        return;
    };
    let (mut client_reader, mut client_writer) = connection.into_split_with(TcpStream::into_split);
    let (mut node_reader, mut node_writer) = upstream.into_split_with(TcpStream::into_split);
    let requests = async {
        while let Ok(Some(request)) = client_reader.read::<ClientRequest>().await {
            if node_writer.write(&request).await.is_err() {
                break;
            }
        }
    };
    let answers = async {
        while let Ok(Some(reply)) = node_reader.read::<ClientReply>().await {
            if client_writer.write(&reply).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}
