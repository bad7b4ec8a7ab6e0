//! Outbound channels: one task per peer that owns one TCP connection to it, reconnecting with
//! doubling back-off, fed by a bounded queue.
//!
//! Every protocol message a node sends to a peer travels on the connection *this* node opened
//! to the peer's configured address; a node never answers a peer on the peer's own connection.
//! So each `(src, dst)` channel is exactly one TCP connection with `src` in the handshake and
//! `dst` given by the address, which is what lets the conformance harness, listening on one
//! address per destination, own every channel.
//!
//! While the peer is unreachable, frames wait in the queue (at most [`OUTBOUND_QUEUE_MAX`]) and
//! are delivered on reconnect; once the queue is full further frames are dropped and counted
//! (`ControlReply::Barrier::dropped`). The protocol tolerates loss: followers re-fetch on a
//! timeout, brokers heartbeat, the controller re-sends views.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::shutdown::Shutdown;
use crate::protocol::{NodeId, PeerMessage};
use crate::wire::{handshake_client, Connection, Hello};

/// Frames queued for one peer while its connection is down or slow.
pub const OUTBOUND_QUEUE_MAX: usize = 8192;
/// First reconnect delay; doubles up to [`RECONNECT_BACKOFF_MAX`].
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// The event loop's end of one outbound channel.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    queue: mpsc::Sender<PeerMessage>,
}

impl PeerHandle {
    /// Queues a frame; `false` if the queue is full (the frame is dropped).
    pub fn try_send(&self, message: PeerMessage) -> bool {
        self.queue.try_send(message).is_ok()
    }
}

/// Starts the task that keeps a connection to `target` at `address`.
pub fn spawn_peer(target: NodeId, address: String, hello: Hello, shutdown: Shutdown) -> PeerHandle {
    let (queue, receiver) = mpsc::channel(OUTBOUND_QUEUE_MAX);
    tokio::spawn(run_peer(target, address, hello, receiver, shutdown));
    PeerHandle { queue }
}

async fn run_peer(
    target: NodeId,
    address: String,
    hello: Hello,
    mut queue: mpsc::Receiver<PeerMessage>,
    mut shutdown: Shutdown,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    let mut failures: u64 = 0;
    loop {
        let connected = tokio::select! {
            _ = shutdown.recv() => return,
            connected = connect(&address, &hello) => connected,
        };
        let connection = match connected {
            Ok(connection) => connection,
            Err(reason) => {
                failures += 1;
                // The first failure and then every 20th: a down peer is normal, not news.
                if failures % 20 == 1 {
                    debug!(?target, %address, %reason, failures, "cannot reach peer; retrying");
                }
                tokio::select! {
                    _ = shutdown.recv() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                continue;
            }
        };
        info!(?target, %address, "connected to peer");
        failures = 0;
        backoff = RECONNECT_BACKOFF_MIN;
        let (mut reader, mut writer) = connection.into_split_with(TcpStream::into_split);
        loop {
            tokio::select! {
                _ = shutdown.recv() => {
                    let _ = writer.close().await;
                    return;
                }
                message = queue.recv() => {
                    let Some(message) = message else { return };
                    if let Err(error) = writer.write(&message).await {
                        warn!(?target, %error, "write to peer failed; reconnecting");
                        break;
                    }
                }
                // The peer never writes after the handshake: anything here is its close.
                read = reader.read::<PeerMessage>() => {
                    match read {
                        Ok(None) => info!(?target, "peer closed the connection; reconnecting"),
                        Ok(Some(_)) => warn!(?target, "peer wrote on an outbound channel; reconnecting"),
                        Err(error) => warn!(?target, %error, "peer connection failed; reconnecting"),
                    }
                    break;
                }
            }
        }
    }
}

async fn connect(address: &str, hello: &Hello) -> Result<Connection<TcpStream>, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| error.to_string())?;
    stream
        .set_nodelay(true)
        .map_err(|error| error.to_string())?;
    let (connection, _responder) = handshake_client(Connection::new(stream), hello)
        .await
        .map_err(|error| error.to_string())?;
    Ok(connection)
}
