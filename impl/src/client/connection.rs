//! A client's protocol connection to one broker: handshake as `Client(id)`, then requests and
//! their answers on the same connection.

use std::time::Duration;

use tokio::net::TcpStream;

use super::ClientError;
use crate::protocol::{BrokerId, ClientReply, ClientRequest};
use crate::wire::{handshake_client, Connection, Hello, PeerName};

#[derive(Debug)]
pub(crate) struct BrokerConnection {
    pub broker: BrokerId,
    pub address: String,
    connection: Connection<TcpStream>,
}

impl BrokerConnection {
    pub async fn connect(
        broker: BrokerId,
        address: &str,
        cluster_id: &str,
        client_id: u64,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let exchange = async {
            let stream = TcpStream::connect(address)
                .await
                .map_err(|error| ClientError::connect(address, error))?;
            stream.set_nodelay(true).ok();
            let hello = Hello::new(cluster_id, PeerName::Client(client_id));
            let (connection, _) = handshake_client(Connection::new(stream), &hello)
                .await
                .map_err(|error| ClientError::wire(address, error))?;
            Ok(connection)
        };
        let connection = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to broker {broker} at {address}"),
            })??;
        Ok(BrokerConnection {
            broker,
            address: address.to_owned(),
            connection,
        })
    }

    pub async fn send(&mut self, request: &ClientRequest) -> Result<(), ClientError> {
        self.connection
            .write(request)
            .await
            .map_err(|error| ClientError::wire(&self.address, error))
    }

    /// The broker's next reply, waiting at most `timeout`.
    pub async fn receive(&mut self, timeout: Duration) -> Result<ClientReply, ClientError> {
        match tokio::time::timeout(timeout, self.connection.read::<ClientReply>()).await {
            Err(_) => Err(ClientError::Timeout {
                what: format!("waiting for broker {} at {}", self.broker, self.address),
            }),
            Ok(Ok(Some(reply))) => Ok(reply),
            Ok(Ok(None)) => Err(ClientError::Closed {
                address: self.address.clone(),
            }),
            Ok(Err(error)) => Err(ClientError::wire(&self.address, error)),
        }
    }

    pub async fn close(mut self) {
        let _ = self.connection.close().await;
    }
}
