//! The wire: how nodes exchange messages over TCP, below any message semantics.
//!
//! - [`codec`]: value <-> bytes (the only file that names the serialization crate);
//! - [`frame`]: byte stream <-> length-prefixed frames, incomplete versus malformed;
//! - [`connection`]: typed messages over a framed stream, whole or split into halves;
//! - [`handshake`]: the first frame each way, naming the peer and checking version and cluster;
//! - [`error`]: [`WireError`], everything that ends a connection.
//!
//! An error from this module ends that one connection, never the node: the caller logs it with
//! the peer's name and the core sees at most a peer-gone event.

pub mod codec;
pub mod connection;
pub mod error;
pub mod frame;
pub mod handshake;

pub use codec::{decode, encode, CodecError};
pub use connection::{Connection, FrameReader, FrameWriter};
pub use error::WireError;
pub use frame::{FrameCodec, FRAME_BYTES_MAX};
pub use handshake::{
    handshake_client, handshake_control, handshake_server, handshake_server_control, Accepted,
    ControlHello, Credential, Hello, HelloReply, PeerName, RejectReason, HANDSHAKE_TIMEOUT,
    PROTOCOL_VERSION,
};
