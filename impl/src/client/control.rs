//! [`ControlClient`]: the control channel as an operator, the `cluster` command, tests or the
//! conformance harness use it: connect with the handshake name `Harness`, then one request and
//! one reply at a time. [`ControlClient::connect`] is anonymous (enough for `Metadata`);
//! [`ControlClient::connect_with_token`] presents the operator's control token in the
//! handshake, which `Inspect`, `Shutdown` and the harness's requests need.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpStream;

use super::ClientError;
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
}

impl ControlClient {
    /// An anonymous control connection: the node answers `Metadata` only.
    pub async fn connect(address: &str, cluster_id: &str) -> Result<Self, ClientError> {
        Self::connect_presenting(address, cluster_id, None).await
    }

    /// A control connection as the operator.
    pub async fn connect_with_token(
        address: &str,
        cluster_id: &str,
        token: &ControlToken,
    ) -> Result<Self, ClientError> {
        Self::connect_presenting(address, cluster_id, Some(token.credential())).await
    }

    async fn connect_presenting(
        address: &str,
        cluster_id: &str,
        credential: Option<Credential>,
    ) -> Result<Self, ClientError> {
        let connect = TcpStream::connect(address);
        let stream = tokio::time::timeout(CONTROL_TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to {address}"),
            })?
            .map_err(|error| ClientError::connect(address, error))?;
        stream.set_nodelay(true).ok();
        let hello = Hello::new(cluster_id, PeerName::Harness);
        let (connection, _) = handshake_control(Connection::new(stream), &hello, credential)
            .await
            .map_err(|error| ClientError::wire(address, error))?;
        Ok(ControlClient {
            connection,
            address: address.to_owned(),
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
        self.request_within(request, CONTROL_TIMEOUT).await
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
