//! A client of one node's control channel: `Inspect`, `FireTimer`, `Barrier`, `Shutdown`.
//!
//! The harness opens one control connection per node incarnation, naming itself
//! `PeerName::Harness` in the handshake, and sends one request at a time: a reply always
//! answers the last request, so no request ids are needed. Every request is bounded by a
//! timeout, so a node that stops answering is reported, never waited on forever.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use insync_impl::protocol::{Control, ControlReply, NodeId, Snapshot, Timer};
use insync_impl::wire::{handshake_client, Connection, Hello, PeerName};
use tokio::net::TcpStream;

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the control channel of {node:?} at {addr}: {reason}")]
    Connect {
        node: NodeId,
        addr: SocketAddr,
        reason: String,
    },
    #[error("control request {request} to {node:?} failed: {reason}")]
    Request {
        node: NodeId,
        request: String,
        reason: String,
    },
    #[error("control request {request} to {node:?} got no answer within {after:?}")]
    Timeout {
        node: NodeId,
        request: String,
        after: Duration,
    },
    #[error("control request {request} to {node:?} got an unexpected answer: {reply:?}")]
    Unexpected {
        node: NodeId,
        request: String,
        /// Boxed: a snapshot reply is large, and errors travel by value.
        reply: Box<ControlReply>,
    },
    #[error("{node:?} refused to fire {timer:?}: it is not armed")]
    TimerNotArmed { node: NodeId, timer: Timer },
}

/// A barrier's answer: frames emitted per outbound channel, and those of them dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BarrierCounts {
    pub emitted: BTreeMap<NodeId, u64>,
    pub dropped: BTreeMap<NodeId, u64>,
}

/// One node's control connection.
pub struct ControlClient {
    node: NodeId,
    connection: Connection<TcpStream>,
    timeout: Duration,
}

impl ControlClient {
    /// Connects and handshakes. `addr` is where the node serves its control channel.
    pub async fn connect(
        node: NodeId,
        addr: SocketAddr,
        cluster_id: &str,
        timeout: Duration,
    ) -> Result<ControlClient, ControlError> {
        let connect_error = |reason: String| ControlError::Connect { node, addr, reason };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        stream.set_nodelay(true).ok();
        let hello = Hello::new(cluster_id, PeerName::Harness);
        let (connection, _) = handshake_client(Connection::new(stream), &hello)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(ControlClient {
            node,
            connection,
            timeout,
        })
    }

    async fn request(&mut self, request: Control) -> Result<ControlReply, ControlError> {
        let name = format!("{request:?}");
        let node = self.node;
        let failed = |reason: String| ControlError::Request {
            node,
            request: name.clone(),
            reason,
        };
        let exchange = async {
            self.connection
                .write(&request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            match self.connection.read::<ControlReply>().await {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(failed("connection closed".into())),
                Err(error) => Err(failed(error.to_string())),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ControlError::Timeout {
                node,
                request: name,
                after: self.timeout,
            }),
        }
    }

    /// The node's observable state.
    pub async fn inspect(&mut self) -> Result<Snapshot, ControlError> {
        match self.request(Control::Inspect).await? {
            ControlReply::Inspect(snapshot) => Ok(snapshot),
            reply => Err(self.unexpected("Inspect", reply)),
        }
    }

    /// Fires one armed timer.
    pub async fn fire(&mut self, timer: Timer) -> Result<(), ControlError> {
        match self.request(Control::FireTimer(timer.clone())).await? {
            ControlReply::TimerFired => Ok(()),
            ControlReply::TimerNotArmed(timer) => Err(ControlError::TimerNotArmed {
                node: self.node,
                timer,
            }),
            reply => Err(self.unexpected("FireTimer", reply)),
        }
    }

    /// Waits until the node has processed `received` frames per inbound channel; returns the
    /// frames it has emitted per outbound channel.
    pub async fn barrier(
        &mut self,
        received: BTreeMap<NodeId, u64>,
    ) -> Result<BarrierCounts, ControlError> {
        match self.request(Control::Barrier { received }).await? {
            ControlReply::Barrier { emitted, dropped } => Ok(BarrierCounts { emitted, dropped }),
            reply => Err(self.unexpected("Barrier", reply)),
        }
    }

    /// Asks the node to stop.
    pub async fn shutdown(&mut self) -> Result<(), ControlError> {
        match self.request(Control::Shutdown).await? {
            ControlReply::ShuttingDown => Ok(()),
            reply => Err(self.unexpected("Shutdown", reply)),
        }
    }

    fn unexpected(&self, request: &str, reply: ControlReply) -> ControlError {
        ControlError::Unexpected {
            node: self.node,
            request: request.to_owned(),
            reply: Box::new(reply),
        }
    }
}
