//! The accept loop and the per-connection handlers (mini-redis `src/server.rs`).
//!
//! The accept loop is bounded by a semaphore ([`CONNECTIONS_MAX`]) and backs off on accept
//! errors; each accepted connection runs in its own task, which does the handshake and then
//! serves one of three kinds of peer, by the name in its hello:
//! - a controller or broker: an inbound protocol channel, read-only (answers go on this
//!   node's own outbound connection to that peer, see `peers`);
//! - a client: requests in, answers back on the same connection;
//! - the harness or an operator: the control channel, one request and one answer at a time.
//!
//! Whatever goes wrong on one connection (handshake refused, garbage, an oversized frame, a
//! reset) is logged with the peer and ends that connection only.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::control_token::ControlToken;
use super::event_loop::{Input, CLIENT_QUEUE_MAX};
use super::shutdown::Shutdown;
use crate::protocol::{
    BrokerId, ClientReply, ClientRequest, Control, ControlReply, PeerId, PeerMessage,
};
use crate::wire::{handshake_server_control, Accepted, Connection, FrameReader, PeerName};

/// Connections served at once; the accept loop waits for a slot beyond that.
pub const CONNECTIONS_MAX: usize = 1024;
/// Longest back-off after repeated accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What every connection handler of a node shares.
#[derive(Debug)]
pub struct ListenerContext {
    pub cluster_id: String,
    /// This node's name, sent in the handshake reply.
    pub local: PeerName,
    /// Broker ids allowed to open protocol channels here.
    pub brokers: BTreeSet<BrokerId>,
    /// Whether a controller may open a protocol channel here (brokers: yes).
    pub accepts_controller: bool,
    /// Whether clients may send protocol requests here (brokers: yes).
    pub accepts_clients: bool,
    /// What a control connection must present to act as the operator.
    pub control_token: ControlToken,
    pub inputs: mpsc::Sender<Input>,
    pub connection_serial: AtomicU64,
    /// The controller process's slot 0: the topic table answers `Topics` and `CreateTopic`
    /// here, without the event loop (the table is no protocol state).
    pub topics: Option<Arc<super::controller_topics::ControllerTopics>>,
}

/// How long, at shutdown, connection handlers may take to finish what they were doing (above
/// all, writing the acknowledgement of a `Shutdown`) before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Accepts connections until shutdown, then lets the handlers finish (see [`SHUTDOWN_GRACE`]):
/// the process exits after this returns, and an operator's `Shutdown` must get its answer.
pub async fn serve(listener: TcpListener, context: Arc<ListenerContext>, mut shutdown: Shutdown) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut backoff = Duration::from_millis(10);
    // At most CONNECTIONS_MAX handlers run; finished ones are reaped at every accept.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.recv() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.recv() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let context = context.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, address, context, shutdown).await;
            drop(permit);
        });
    }
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, finished)
        .await
        .is_err()
    {
        debug!("connection handlers still busy at shutdown; aborted");
    }
}

async fn serve_connection(
    stream: TcpStream,
    address: SocketAddr,
    context: Arc<ListenerContext>,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let connection = Connection::new(stream);
    let admits = |credential: &_| context.control_token.admits(credential);
    let handshake =
        handshake_server_control(connection, &context.cluster_id, context.local, admits);
    let (connection, Accepted { peer, operator }) = match handshake.await {
        Ok(accepted) => accepted,
        Err(error) => {
            warn!(%address, %error, "handshake failed; connection closed");
            return;
        }
    };
    if let Err(reason) = admit(&context, peer) {
        warn!(%address, ?peer, reason, "peer refused; connection closed");
        return;
    }
    debug!(%address, ?peer, "connection accepted");
    let (reader, writer) = connection.into_split_with(TcpStream::into_split);
    let outcome = match peer {
        PeerName::Controller => serve_peer(reader, PeerId::Controller, &context, shutdown).await,
        PeerName::Broker(id) => serve_peer(reader, PeerId::Broker(id), &context, shutdown).await,
        PeerName::Client(client) => serve_client(reader, writer, client, &context, shutdown).await,
        PeerName::Harness => serve_control(reader, writer, operator, &context, shutdown).await,
    };
    match outcome {
        Ok(()) => debug!(%address, ?peer, "connection closed"),
        Err(reason) => warn!(%address, ?peer, %reason, "connection closed"),
    }
}

fn admit(context: &ListenerContext, peer: PeerName) -> Result<(), &'static str> {
    match peer {
        PeerName::Controller if !context.accepts_controller => {
            Err("this node does not take messages from a controller")
        }
        PeerName::Broker(id) if !context.brokers.contains(&id) => Err("unknown broker id"),
        PeerName::Broker(_) if peer == context.local => Err("a broker cannot connect to itself"),
        PeerName::Client(_) if !context.accepts_clients => {
            Err("this node serves no client requests; use the control channel")
        }
        _ => Ok(()),
    }
}

type Reader = FrameReader<tokio::net::tcp::OwnedReadHalf>;
type Writer = crate::wire::FrameWriter<tokio::net::tcp::OwnedWriteHalf>;

/// An inbound peer channel: only peer messages decode on it. The write half is held (not
/// dropped) so the peer does not see a half-close, which it would take for the end of the
/// connection.
async fn serve_peer(
    mut reader: Reader,
    from: PeerId,
    context: &ListenerContext,
    mut shutdown: Shutdown,
) -> Result<(), String> {
    loop {
        let message = tokio::select! {
            _ = shutdown.recv() => return Ok(()),
            read = reader.read::<PeerMessage>() => read.map_err(|error| error.to_string())?,
        };
        let Some(message) = message else {
            return Ok(());
        };
        let input = Input::Peer { from, message };
        if context.inputs.send(input).await.is_err() {
            return Ok(());
        }
    }
}

async fn serve_client(
    mut reader: Reader,
    mut writer: Writer,
    client: u64,
    context: &ListenerContext,
    mut shutdown: Shutdown,
) -> Result<(), String> {
    let connection = context.connection_serial.fetch_add(1, Ordering::Relaxed);
    let (replies, mut reply_queue) = mpsc::channel::<ClientReply>(CLIENT_QUEUE_MAX);
    let opened = Input::ClientOpened {
        client,
        connection,
        replies,
    };
    if context.inputs.send(opened).await.is_err() {
        return Ok(());
    }
    let writing = tokio::spawn(async move {
        while let Some(reply) = reply_queue.recv().await {
            if let Err(error) = writer.write(&reply).await {
                return Err(error.to_string());
            }
        }
        Ok(())
    });
    // A client connection is read as client requests only: whatever a client writes reaches
    // the core as a `ClientRequest` or closes the connection as an undecodable frame.
    let result = loop {
        let request = tokio::select! {
            _ = shutdown.recv() => break Ok(()),
            read = reader.read::<ClientRequest>() => match read {
                Ok(Some(request)) => request,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error.to_string()),
            },
        };
        if context
            .inputs
            .send(Input::Client { client, request })
            .await
            .is_err()
        {
            break Ok(());
        }
    };
    // Unregistering drops the event loop's sender, which ends the writer once it has drained.
    let _ = context
        .inputs
        .send(Input::ClientClosed { client, connection })
        .await;
    writing.abort();
    result
}

/// `operator`: the connection presented the control token (see `event_loop` for what that
/// allows).
async fn serve_control(
    mut reader: Reader,
    mut writer: Writer,
    operator: bool,
    context: &ListenerContext,
    mut shutdown: Shutdown,
) -> Result<(), String> {
    loop {
        let request = tokio::select! {
            _ = shutdown.recv() => return Ok(()),
            read = reader.read::<Control>() => read.map_err(|error| error.to_string())?,
        };
        let Some(request) = request else {
            return Ok(());
        };
        if let (Some(topics), true) = (&context.topics, is_topic_request(&request)) {
            let answer = tokio::select! {
                _ = shutdown.recv() => return Ok(()),
                answer = topics.answer(request) => answer,
            };
            writer
                .write(&answer)
                .await
                .map_err(|error| error.to_string())?;
            continue;
        }
        let asks_shutdown = request == Control::Shutdown;
        let (reply, answer) = oneshot::channel();
        let input = Input::Control {
            request,
            operator,
            reply,
        };
        if context.inputs.send(input).await.is_err() {
            return Ok(());
        }
        let answer = tokio::select! {
            _ = shutdown.recv(), if !asks_shutdown => return Ok(()),
            answer = answer => match answer {
                Ok(answer) => answer,
                Err(_) => return Err("the node refused the request".into()),
            },
        };
        let stopping = answer == ControlReply::ShuttingDown;
        writer
            .write(&answer)
            .await
            .map_err(|error| error.to_string())?;
        if stopping {
            info!("acknowledged a shutdown request");
            return Ok(());
        }
    }
}

/// `Topics` and `CreateTopic`: open to anyone, as Kafka's CreateTopics is to anyone who
/// reaches a Kafka port (docs/runtime.md, "Who can do what"); bounded by the slots.
fn is_topic_request(request: &Control) -> bool {
    matches!(request, Control::Topics | Control::CreateTopic { .. })
}
