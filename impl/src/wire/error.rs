//! [`WireError`]: everything that can end a connection, worded for an operator reading logs.

use std::time::Duration;

use super::codec::CodecError;

/// Why a connection failed. Any of these ends that connection only; the node carries on.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed (reset, broken pipe, ...).
    #[error("connection I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame's length prefix exceeds the limit; detected before any buffer is allocated.
    #[error("peer announced a {len}-byte frame, more than the limit of {max} bytes")]
    FrameTooLarge { len: u64, max: u64 },
    /// A complete frame arrived but is not a valid message.
    #[error("peer sent a malformed frame: {0}")]
    Malformed(#[from] CodecError),
    /// An outgoing message could not be encoded (a bug or an oversized message on this side).
    #[error("cannot encode an outgoing message: {0}")]
    Encode(CodecError),
    /// The peer closed the connection in the middle of a frame.
    #[error("peer closed the connection mid-frame ({buffered} bytes of a frame received)")]
    UnexpectedEof { buffered: u64 },
    /// The peer closed the connection before the handshake completed.
    #[error("peer closed the connection during the handshake")]
    ClosedDuringHandshake,
    /// The peer belongs to another cluster (misconfigured address or cluster id).
    #[error("peer belongs to cluster {got:?}, expected cluster {expected:?}")]
    WrongCluster { expected: String, got: String },
    /// The peer speaks another protocol version (mixed-version deployment).
    #[error("peer speaks protocol version {theirs}, this node speaks version {ours}")]
    VersionMismatch { ours: u16, theirs: u16 },
    /// The peer's hello is invalid for a reason other than cluster or version.
    #[error("peer's hello was rejected: {reason}")]
    HelloInvalid { reason: String },
    /// The node refused the control credential presented (a wrong or stale token file).
    #[error("the node refused the control credential (wrong control token?)")]
    CredentialRefused,
    /// The handshake did not complete in time (a silent or stuck peer).
    #[error("handshake did not complete within {after:?}")]
    HandshakeTimeout { after: Duration },
}
