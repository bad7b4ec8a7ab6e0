//! [`ControlClient`]: the one client of a node's control channel, used by operators
//! (`insync inspect`), the supervisor, the process tests and the conformance harness: connect
//! with the handshake name `Harness`, then one request and one reply at a time (a reply always
//! answers the last request, so no request ids are needed). Every request is bounded by the
//! client's timeout, so a node that stops answering is reported, never waited on forever.
//! [`ControlClient::connect`] is anonymous (enough for `Metadata`, `Topics`, `CreateTopic`);
//! [`ControlClient::connect_with_token`] presents the operator's control token in the
//! handshake, which `Inspect`, `Shutdown` and the harness's requests need (docs/runtime.md).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpStream;

use super::ClientError;
use crate::kafka::topic_table::TopicTable;
use crate::node::control_token::ControlToken;
use crate::protocol::{Control, ControlReply, Metadata, NodeId, Snapshot, Timer};
use crate::wire::{handshake_control, Connection, Credential, Hello, PeerName};

/// How long a control request may take before the client gives up on the node. `Barrier`
/// requests are bounded by the caller instead.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// One control connection to one node.
#[derive(Debug)]
pub struct ControlClient {
    connection: Connection<TcpStream>,
    address: String,
    /// Bound on connecting and on every request but a `Barrier` given its own.
    timeout: Duration,
}

impl ControlClient {
    /// An anonymous control connection (the node answers `Metadata` only), with
    /// [`CONTROL_TIMEOUT`] as the bound.
    pub async fn connect(address: &str, cluster_id: &str) -> Result<Self, ClientError> {
        Self::connect_within(address, cluster_id, None, CONTROL_TIMEOUT).await
    }

    /// A control connection as the operator, with [`CONTROL_TIMEOUT`] as the bound.
    pub async fn connect_with_token(
        address: &str,
        cluster_id: &str,
        token: &ControlToken,
    ) -> Result<Self, ClientError> {
        Self::connect_within(address, cluster_id, Some(token), CONTROL_TIMEOUT).await
    }

    /// Connects and handshakes, presenting `token` when given; `timeout` bounds the
    /// connection and every later request.
    pub async fn connect_within(
        address: &str,
        cluster_id: &str,
        token: Option<&ControlToken>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let credential = token.map(ControlToken::credential);
        let connect = TcpStream::connect(address);
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to {address}"),
            })?
            .map_err(|error| ClientError::connect(address, error))?;
        stream.set_nodelay(true).ok();
        let connection =
            tokio::time::timeout(timeout, handshake(stream, address, cluster_id, credential))
                .await
                .map_err(|_| ClientError::Timeout {
                    what: format!("handshake with {address}"),
                })??;
        Ok(ControlClient {
            connection,
            address: address.to_owned(),
            timeout,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `request` and waits up to `timeout` for the reply.
    pub async fn request_within(
        &mut self,
        request: &Control,
        timeout: Duration,
    ) -> Result<ControlReply, ClientError> {
        let address = self.address.clone();
        let exchange = async {
            self.connection
                .write(request)
                .await
                .map_err(|error| ClientError::wire(&address, error))?;
            match self.connection.read::<ControlReply>().await {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(ClientError::Closed {
                    address: address.clone(),
                }),
                Err(error) => Err(ClientError::wire(&address, error)),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("{request:?} on {}", self.address),
            })?
    }

    pub async fn request(&mut self, request: &Control) -> Result<ControlReply, ClientError> {
        self.request_within(request, self.timeout).await
    }

    pub async fn inspect(&mut self) -> Result<Snapshot, ClientError> {
        match self.request(&Control::Inspect).await? {
            ControlReply::Inspect(snapshot) => Ok(snapshot),
            other => Err(ClientError::unexpected(&self.address, other)),
        }
    }

    pub async fn metadata(&mut self) -> Result<Metadata, ClientError> {
        match self.request(&Control::Metadata).await? {
            ControlReply::Metadata(metadata) => Ok(metadata),
            other => Err(ClientError::unexpected(&self.address, other)),
        }
    }

    /// The cluster's topic table (the controller process answers; open to anyone).
    pub async fn topics(&mut self) -> Result<TopicTable, ClientError> {
        match self.request(&Control::Topics).await? {
            ControlReply::Topics(table) => Ok(table),
            other => Err(ClientError::unexpected(&self.address, other)),
        }
    }

    /// Fires a timer; `Ok(false)` when the node says it is not armed.
    pub async fn fire_timer(&mut self, timer: Timer) -> Result<bool, ClientError> {
        match self.request(&Control::FireTimer(timer)).await? {
            ControlReply::TimerFired => Ok(true),
            ControlReply::TimerNotArmed(_) => Ok(false),
            other => Err(ClientError::unexpected(&self.address, other)),
        }
    }

    /// Waits until the node processed `received`; returns (emitted, dropped) per channel.
    pub async fn barrier(
        &mut self,
        received: BTreeMap<NodeId, u64>,
        timeout: Duration,
    ) -> Result<(BTreeMap<NodeId, u64>, BTreeMap<NodeId, u64>), ClientError> {
        match self
            .request_within(&Control::Barrier { received }, timeout)
            .await?
        {
            ControlReply::Barrier { emitted, dropped } => Ok((emitted, dropped)),
            other => Err(ClientError::unexpected(&self.address, other)),
        }
    }

    /// Asks the node to stop; returns once it acknowledged.
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        match self.request(&Control::Shutdown).await? {
            ControlReply::ShuttingDown => Ok(()),
            other => Err(ClientError::unexpected(&self.address, other)),
        }
    }
}

/// The control channel's handshake, the one place that says how the harness or an operator
/// introduces itself to a node.
async fn handshake(
    stream: TcpStream,
    address: &str,
    cluster_id: &str,
    credential: Option<Credential>,
) -> Result<Connection<TcpStream>, ClientError> {
    let hello = Hello::new(cluster_id, PeerName::Harness);
    let (connection, _) = handshake_control(Connection::new(stream), &hello, credential)
        .await
        .map_err(|error| ClientError::wire(address, error))?;
    Ok(connection)
}
