//! The handshake: the first frame on every connection, in both directions.
//!
//! The dialling side sends a [`Hello`] naming itself; the accepting side checks the protocol
//! version and the cluster id and answers [`HelloReply::HelloOk`] (naming itself in turn) or
//! [`HelloReply::HelloRejected`] with a typed reason, after which it closes. Only then do
//! protocol messages flow. Naming the sender is what lets the conformance harness, which sits
//! in the middle of every connection, know which `(src, dst)` channel a frame belongs to.
//!
//! Both functions take the connection by value and give it back only on success, so a failed
//! handshake always drops (closes) the connection. Both are bounded by [`HANDSHAKE_TIMEOUT`]:
//! a peer that connects and then says nothing cannot hold a task or a connection slot.
//!
//! Compatibility: [`Hello`] and [`HelloReply`] must keep their encoding across protocol
//! versions, since they are what detects a version mismatch.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::Connection;
use super::error::WireError;

/// The version of the message protocol spoken after the handshake. Bump on any change to the
/// encoding of a message; peers with different versions refuse each other.
pub const PROTOCOL_VERSION: u16 = 3;

/// How long either side waits for the whole handshake before giving up on the peer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest accepted cluster id, in bytes.
pub const CLUSTER_ID_BYTES_MAX: usize = 255;

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PeerName {
    Controller,
    Broker(u32),
    Client(u64),
    Harness,
}

/// The first frame the dialling side sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    pub cluster_id: String,
    pub sender: PeerName,
}

impl Hello {
    /// A hello at this build's [`PROTOCOL_VERSION`].
    pub fn new(cluster_id: impl Into<String>, sender: PeerName) -> Self {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: cluster_id.into(),
            sender,
        }
    }
}

/// The accepting side's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    HelloOk { sender: PeerName },
    HelloRejected { reason: RejectReason },
}

/// Why the accepting side refused a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    VersionMismatch { ours: u16, theirs: u16 },
    WrongCluster { expected: String, got: String },
    ClusterIdTooLong { len: u64, max: u64 },
}

impl From<RejectReason> for WireError {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::VersionMismatch { ours, theirs } => {
                WireError::VersionMismatch { ours, theirs }
            }
            RejectReason::WrongCluster { expected, got } => {
                WireError::WrongCluster { expected, got }
            }
            RejectReason::ClusterIdTooLong { len, max } => WireError::HelloInvalid {
                reason: format!("cluster id of {len} bytes exceeds {max} bytes"),
            },
        }
    }
}

/// Dialling side: sends `hello`, waits for the answer. Returns the connection and the name the
/// accepting side gave. A rejection becomes the matching [`WireError`], from the peer's view:
/// in `VersionMismatch`, `ours` is the acceptor's version.
pub async fn handshake_client<S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<S>,
    hello: &Hello,
) -> Result<(Connection<S>, PeerName), WireError> {
    let exchange = async {
        connection.write(hello).await?;
        match connection.read::<HelloReply>().await? {
            None => Err(WireError::ClosedDuringHandshake),
            Some(HelloReply::HelloOk { sender }) => Ok(sender),
            Some(HelloReply::HelloRejected { reason }) => Err(WireError::from(reason)),
        }
    };
    let responder = with_timeout(exchange).await?;
    Ok((connection, responder))
}

/// Accepting side: reads the peer's hello, checks it against this node's version and
/// `expected_cluster_id`, answers, and returns the connection and the peer's name. On a
/// rejection it sends the reason, closes, and returns the matching error.
pub async fn handshake_server<S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<S>,
    expected_cluster_id: &str,
    local: PeerName,
) -> Result<(Connection<S>, PeerName), WireError> {
    let exchange = async {
        let hello = match connection.read::<Hello>().await? {
            None => return Err(WireError::ClosedDuringHandshake),
            Some(hello) => hello,
        };
        match check_hello(&hello, expected_cluster_id) {
            Ok(()) => {
                let reply = HelloReply::HelloOk { sender: local };
                connection.write(&reply).await?;
                Ok(hello.sender)
            }
            Err(reason) => {
                let reply = HelloReply::HelloRejected {
                    reason: reason.clone(),
                };
                connection.write(&reply).await?;
                connection.close().await?;
                Err(WireError::from(reason))
            }
        }
    };
    let sender = with_timeout(exchange).await?;
    Ok((connection, sender))
}

/// The acceptance test for a hello: same version, same cluster, bounded cluster id.
pub fn check_hello(hello: &Hello, expected_cluster_id: &str) -> Result<(), RejectReason> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(RejectReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: hello.protocol_version,
        });
    }
    if hello.cluster_id.len() > CLUSTER_ID_BYTES_MAX {
        return Err(RejectReason::ClusterIdTooLong {
            len: hello.cluster_id.len() as u64,
            max: CLUSTER_ID_BYTES_MAX as u64,
        });
    }
    if hello.cluster_id != expected_cluster_id {
        return Err(RejectReason::WrongCluster {
            expected: expected_cluster_id.to_owned(),
            got: hello.cluster_id.clone(),
        });
    }
    Ok(())
}

async fn with_timeout<T>(
    exchange: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_elapsed) => Err(WireError::HandshakeTimeout {
            after: HANDSHAKE_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_hello_orders_version_before_cluster() {
        let mut hello = Hello::new("other", PeerName::Broker(1));
        hello.protocol_version = PROTOCOL_VERSION + 1;
        assert!(matches!(
            check_hello(&hello, "main"),
            Err(RejectReason::VersionMismatch { .. })
        ));
        hello.protocol_version = PROTOCOL_VERSION;
        assert!(matches!(
            check_hello(&hello, "main"),
            Err(RejectReason::WrongCluster { .. })
        ));
        assert_eq!(
            check_hello(&Hello::new("main", PeerName::Harness), "main"),
            Ok(())
        );
    }

    #[test]
    fn long_cluster_id_is_rejected() {
        let hello = Hello::new("x".repeat(CLUSTER_ID_BYTES_MAX + 1), PeerName::Client(9));
        let reason = check_hello(&hello, "x").unwrap_err();
        assert!(matches!(reason, RejectReason::ClusterIdTooLong { .. }));
    }
}
