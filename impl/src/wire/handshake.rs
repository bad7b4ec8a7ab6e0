//! The handshake: the first frame on every connection, in both directions.
//!
//! The dialling side sends a [`Hello`] naming itself; the accepting side checks the protocol
//! version and the cluster id and answers [`HelloReply::HelloOk`] (naming itself in turn) or
//! [`HelloReply::HelloRejected`] with a typed reason, after which it closes. Only then do
//! protocol messages flow. Naming the sender is what lets the conformance harness, which sits
//! in the middle of every connection, know which `(src, dst)` channel a frame belongs to.
//!
//! The control handshake: a dialler that names itself [`PeerName::Harness`] (the control
//! channel) sends a second frame right behind its hello, without waiting, a [`ControlHello`]
//! with the operator's [`Credential`] or none. The acceptor reads it only after the hello
//! passed, so the hello keeps its encoding and a version mismatch is still reported as one.
//! No credential: the connection is anonymous (it may ask `Metadata`, nothing else). A
//! credential that does not match: [`RejectReason::CredentialRefused`]. What each kind of
//! caller may do is the node's decision (docs/runtime.md, "Who can do what").
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
/// Version 3: the control handshake's [`ControlHello`] and `ControlReply::Refused`. Version 4:
/// the core's named timers (`FetchRetry`, `FetchBackoff`, `ParkedRelease`, `BrokerHeartbeat`) and
/// the snapshots' `timers_fired`. Version 5: one message type per channel (`PeerMessage` on
/// peer connections, `ClientRequest` / `ClientReply` on client connections) in place of the
/// one `Message` enum, whose variant tags both encodings renumber. Version 6: the control
/// channel's `Topics` and `CreateTopic` and their replies (the topic table).
pub const PROTOCOL_VERSION: u16 = 6;

/// How long either side waits for the whole handshake before giving up on the peer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest accepted cluster id, in bytes.
pub const CLUSTER_ID_BYTES_MAX: usize = 255;

/// A rejected control dialler's pipelined [`ControlHello`] is awaited this long at most.
const CONTROL_HELLO_DRAIN: Duration = Duration::from_millis(200);

/// The longest accepted credential, in bytes.
pub const CREDENTIAL_BYTES_MAX: usize = 256;

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

/// A secret presented in the control handshake (the operator's control token). It is never
/// printed (`Debug` shows its length only) and compares in constant time.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credential(String);

impl Credential {
    pub fn new(secret: impl Into<String>) -> Self {
        Credential(secret.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for Credential {}

impl std::fmt::Debug for Credential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Credential({} bytes, redacted)", self.0.len())
    }
}

/// Equality whose time depends on the lengths only, never on where the bytes differ, so a
/// caller who can time the answers learns nothing about a secret byte by byte. Hand-written
/// rather than a crate: ten lines, one use; `black_box` keeps the optimiser from turning the
/// fold back into an early-exit comparison.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | std::hint::black_box(a ^ b));
    std::hint::black_box(difference) == 0
}

/// The second frame a control dialler sends, right behind its [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlHello {
    pub credential: Option<Credential>,
}

/// What the accepting side learned from a completed handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub peer: PeerName,
    /// A control connection that presented the operator's credential.
    pub operator: bool,
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
    VersionMismatch {
        ours: u16,
        theirs: u16,
    },
    WrongCluster {
        expected: String,
        got: String,
    },
    ClusterIdTooLong {
        len: u64,
        max: u64,
    },
    /// The control connection's credential is not this node's (or is over-long).
    CredentialRefused,
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
            RejectReason::CredentialRefused => WireError::CredentialRefused,
        }
    }
}

/// Dialling side: sends `hello`, waits for the answer. Returns the connection and the name the
/// accepting side gave. A rejection becomes the matching [`WireError`], from the peer's view:
/// in `VersionMismatch`, `ours` is the acceptor's version. A control dialler (`Harness`)
/// presents no credential: see [`handshake_control`].
pub async fn handshake_client<S: AsyncRead + AsyncWrite + Unpin>(
    connection: Connection<S>,
    hello: &Hello,
) -> Result<(Connection<S>, PeerName), WireError> {
    let control = (hello.sender == PeerName::Harness).then_some(ControlHello { credential: None });
    dial(connection, hello, control).await
}

/// Dialling side of the control handshake: `hello` (which must name `Harness`), then the
/// [`ControlHello`] presenting `credential`, then the answer.
pub async fn handshake_control<S: AsyncRead + AsyncWrite + Unpin>(
    connection: Connection<S>,
    hello: &Hello,
    credential: Option<Credential>,
) -> Result<(Connection<S>, PeerName), WireError> {
    assert_eq!(
        hello.sender,
        PeerName::Harness,
        "only the control channel presents a credential"
    );
    dial(connection, hello, Some(ControlHello { credential })).await
}

async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<S>,
    hello: &Hello,
    control: Option<ControlHello>,
) -> Result<(Connection<S>, PeerName), WireError> {
    let exchange = async {
        connection.write(hello).await?;
        if let Some(control) = &control {
            connection.write(control).await?;
        }
        match connection.read::<HelloReply>().await? {
            None => Err(WireError::ClosedDuringHandshake),
            Some(HelloReply::HelloOk { sender }) => Ok(sender),
            Some(HelloReply::HelloRejected { reason }) => Err(WireError::from(reason)),
        }
    };
    let responder = with_timeout(exchange).await?;
    Ok((connection, responder))
}

/// Accepting side for a node that takes no control credential (every credential presented is
/// refused): see [`handshake_server_control`]. Returns the connection and the peer's name.
pub async fn handshake_server<S: AsyncRead + AsyncWrite + Unpin>(
    connection: Connection<S>,
    expected_cluster_id: &str,
    local: PeerName,
) -> Result<(Connection<S>, PeerName), WireError> {
    let (connection, accepted) =
        handshake_server_control(connection, expected_cluster_id, local, |_| false).await?;
    Ok((connection, accepted.peer))
}

/// Accepting side: reads the peer's hello, checks it against this node's version and
/// `expected_cluster_id`; for a control connection reads its [`ControlHello`] and asks `admits`
/// about a presented credential. Answers, and returns the connection and what it accepted. On
/// a rejection it sends the reason, closes, and returns the matching error.
pub async fn handshake_server_control<S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<S>,
    expected_cluster_id: &str,
    local: PeerName,
    admits: impl Fn(&Credential) -> bool,
) -> Result<(Connection<S>, Accepted), WireError> {
    let exchange = async {
        let hello = match connection.read::<Hello>().await? {
            None => return Err(WireError::ClosedDuringHandshake),
            Some(hello) => hello,
        };
        let mut checked = check_hello(&hello, expected_cluster_id).map(|()| false);
        let mut pipelined = hello.sender == PeerName::Harness;
        if checked.is_ok() && pipelined {
            pipelined = false;
            let control = match connection.read::<ControlHello>().await? {
                None => return Err(WireError::ClosedDuringHandshake),
                Some(control) => control,
            };
            checked = check_credential(control.credential.as_ref(), &admits);
        }
        match checked {
            Ok(operator) => {
                let reply = HelloReply::HelloOk { sender: local };
                connection.write(&reply).await?;
                let peer = hello.sender;
                Ok(Accepted { peer, operator })
            }
            Err(reason) => {
                let reply = HelloReply::HelloRejected {
                    reason: reason.clone(),
                };
                connection.write(&reply).await?;
                if pipelined {
                    // Read what the dialler sent behind its hello: closing a socket with
                    // unread bytes resets it, and the reset could overtake the reason.
                    let drain = connection.read::<ControlHello>();
                    let _ = tokio::time::timeout(CONTROL_HELLO_DRAIN, drain).await;
                }
                connection.close().await?;
                Err(WireError::from(reason))
            }
        }
    };
    let accepted = with_timeout(exchange).await?;
    Ok((connection, accepted))
}

/// `Ok(false)`: anonymous; `Ok(true)`: the operator; a credential not admitted is refused.
pub fn check_credential(
    credential: Option<&Credential>,
    admits: impl Fn(&Credential) -> bool,
) -> Result<bool, RejectReason> {
    match credential {
        None => Ok(false),
        Some(credential) if credential.as_bytes().len() > CREDENTIAL_BYTES_MAX => {
            Err(RejectReason::CredentialRefused)
        }
        Some(credential) if admits(credential) => Ok(true),
        Some(_) => Err(RejectReason::CredentialRefused),
    }
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

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(constant_time_eq(b"", b""));
    }

    /// Runs the control handshake with `presented` against a node whose token is "right".
    async fn control_handshake(
        presented: Option<&str>,
    ) -> (Result<Accepted, WireError>, Result<PeerName, WireError>) {
        let (client, server) = tokio::io::duplex(1024);
        let hello = Hello::new("main", PeerName::Harness);
        let credential = presented.map(Credential::new);
        let dial = tokio::spawn(async move {
            let dialled = handshake_control(Connection::new(client), &hello, credential).await;
            dialled.map(|(_, responder)| responder)
        });
        let right = Credential::new("right");
        let admits = |credential: &Credential| *credential == right;
        let served = handshake_server_control(
            Connection::new(server),
            "main",
            PeerName::Controller,
            admits,
        );
        let served = served.await.map(|(_, accepted)| accepted);
        (served, dial.await.unwrap())
    }

    #[tokio::test]
    async fn the_control_handshake_tells_the_operator_from_a_stranger_and_refuses_a_wrong_token() {
        let (served, dialled) = control_handshake(Some("right")).await;
        let operator = Accepted {
            peer: PeerName::Harness,
            operator: true,
        };
        assert_eq!(served.unwrap(), operator);
        assert_eq!(dialled.unwrap(), PeerName::Controller);

        let (served, dialled) = control_handshake(None).await;
        assert!(
            !served.unwrap().operator,
            "no token: anonymous, not refused"
        );
        assert!(dialled.is_ok());

        let (served, dialled) = control_handshake(Some("wrong")).await;
        assert!(
            matches!(served, Err(WireError::CredentialRefused)),
            "{served:?}"
        );
        assert!(
            matches!(dialled, Err(WireError::CredentialRefused)),
            "{dialled:?}"
        );
        let too_long = "x".repeat(CREDENTIAL_BYTES_MAX + 1);
        let (served, _) = control_handshake(Some(&too_long)).await;
        assert!(
            matches!(served, Err(WireError::CredentialRefused)),
            "{served:?}"
        );
    }

    #[test]
    fn a_credential_is_never_printed() {
        let hello = ControlHello {
            credential: Some(Credential::new("hunter2-hunter2")),
        };
        assert!(!format!("{hello:?}").contains("hunter2"));
    }
}
