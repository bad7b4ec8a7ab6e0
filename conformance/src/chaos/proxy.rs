//! [`FaultProxy`]: the network between the nodes of a chaos run, on loopback. Every directed
//! channel `(src, dst)` gets a listener of its own, and `src` is configured to reach `dst` at
//! that listener (a broker's `--peers` and `--controller`, the controller's `--brokers`), so
//! each channel's bytes pass one place where they can be held back.
//!
//! A cut link stalls: bytes already read wait, nothing more is forwarded either way, and a new
//! connection is accepted but not connected through, as on a network that drops packets (TCP
//! keeps the connection and delivers the backlog once the partition heals; the nodes' own
//! timeouts decide what to do meanwhile). A delayed link forwards each chunk after a delay.
//! While stalled each direction holds at most one chunk ([`CHUNK_BYTES_MAX`]); the kernel's
//! socket buffers and the node's bounded outbound queue hold the rest.
//!
//! Clients reach nodes through these addresses too (a node's `Metadata` lists the addresses
//! it was configured with), but the faults are between nodes: the proxy reads the dialler's
//! `Hello` and forwards a client's or operator's connection untouched.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use insync_impl::protocol::NodeId;
use insync_impl::wire::{decode, Hello, PeerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes forwarded at once, per direction.
pub const CHUNK_BYTES_MAX: usize = 16 * 1024;
/// A first frame above this is no `Hello`: the connection is forwarded as a node's.
const HELLO_BYTES_MAX: usize = 4 * 1024;

/// What a link does to its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    pub cut: bool,
    pub delay: Duration,
}

/// One directed channel's listener and its state.
#[derive(Debug)]
struct Link {
    address: SocketAddr,
    state: watch::Sender<LinkState>,
    accept: JoinHandle<()>,
}

/// The proxy of every channel between the given nodes. See the module doc.
#[derive(Debug)]
pub struct FaultProxy {
    links: BTreeMap<(NodeId, NodeId), Link>,
}

impl FaultProxy {
    /// A listener for each ordered pair of distinct `nodes`, forwarding to `targets[dst]`.
    pub async fn start(targets: &BTreeMap<NodeId, SocketAddr>) -> std::io::Result<Self> {
        let mut links = BTreeMap::new();
        for &source in targets.keys() {
            for (&target, &address) in targets.iter().filter(|(node, _)| **node != source) {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let listen = listener.local_addr()?;
                let (state, watched) = watch::channel(LinkState::default());
                let accept = tokio::spawn(accept_loop(listener, address, watched));
                let link = Link {
                    address: listen,
                    state,
                    accept,
                };
                links.insert((source, target), link);
            }
        }
        Ok(FaultProxy { links })
    }

    /// Where `source` must dial to reach `target`.
    pub fn address(&self, source: NodeId, target: NodeId) -> SocketAddr {
        self.links[&(source, target)].address
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_between(&self, a: NodeId, b: NodeId, state: LinkState) {
        for key in [(a, b), (b, a)] {
            if let Some(link) = self.links.get(&key) {
                link.state.send_replace(state);
            }
        }
    }

    /// Every link back to normal.
    pub fn heal_all(&self) {
        for link in self.links.values() {
            link.state.send_replace(LinkState::default());
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for link in self.links.values() {
            link.accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: watch::Receiver<LinkState>) {
    // Bounded by the nodes: each holds at most one connection per channel, plus clients'.
    while let Ok((stream, _)) = listener.accept().await {
        stream.set_nodelay(true).ok();
        tokio::spawn(forward(stream, target, state.clone()));
    }
}

/// One connection: read the dialler's first frame, connect through once the link is up
/// (unless the dialler is a client or the operator), then pump both ways.
async fn forward(mut inbound: TcpStream, target: SocketAddr, state: watch::Receiver<LinkState>) {
    let Ok((first, exempt)) = first_frame(&mut inbound).await else {
        return;
    };
    let mut state = state;
    if !exempt && wait_open(&mut state).await.is_err() {
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    outbound.set_nodelay(true).ok();
    if outbound.write_all(&first).await.is_err() {
        return;
    }
    let (inbound_read, inbound_write) = inbound.into_split();
    let (outbound_read, outbound_write) = outbound.into_split();
    let faults = (!exempt).then_some(state);
    let there = pump(inbound_read, outbound_write, faults.clone());
    let back = pump(outbound_read, inbound_write, faults);
    // Either side closing ends the connection, as one TCP connection would.
    tokio::select! {
        _ = there => {}
        _ = back => {}
    }
}

/// The dialler's first frame (its `Hello`), whole, and whether it names a client or the
/// operator.
async fn first_frame(inbound: &mut TcpStream) -> std::io::Result<(Vec<u8>, bool)> {
    let mut header = [0u8; 4];
    inbound.read_exact(&mut header).await?;
    let length = u32::from_be_bytes(header) as usize;
    let mut frame = header.to_vec();
    if length > HELLO_BYTES_MAX {
        return Ok((frame, false));
    }
    frame.resize(4 + length, 0);
    inbound.read_exact(&mut frame[4..]).await?;
    let sender = decode::<Hello>(&frame[4..]).map(|hello| hello.sender);
    let exempt = matches!(sender, Ok(PeerName::Client(_) | PeerName::Harness));
    Ok((frame, exempt))
}

/// Waits while the link is cut; `Err` when the proxy is gone.
async fn wait_open(state: &mut watch::Receiver<LinkState>) -> Result<LinkState, ()> {
    let open = state.wait_for(|link| !link.cut).await.map_err(|_| ())?;
    Ok(*open)
}

/// Copies `from` to `to` chunk by chunk, each after the link lets it through.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut faults: Option<watch::Receiver<LinkState>>,
) {
    let mut buffer = vec![0u8; CHUNK_BYTES_MAX];
    loop {
        let count = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(count) => count,
        };
        if let Some(state) = faults.as_mut() {
            let Ok(open) = wait_open(state).await else {
                break;
            };
            if !open.delay.is_zero() {
                // A delay is the fault itself: there is no event to wait for.
                tokio::time::sleep(open.delay).await;
            }
        }
        if to.write_all(&buffer[..count]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_impl::wire::encode;

    /// Goal: bytes pass an open link, wait on a cut one and arrive once it heals; a client's
    /// connection passes a cut link. Method: an echo server behind a two-node proxy.
    #[tokio::test]
    async fn a_cut_link_stalls_node_traffic_but_not_clients() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_address = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        let (a, b) = (NodeId::Broker(1), NodeId::Broker(2));
        let targets = BTreeMap::from([(a, echo_address), (b, echo_address)]);
        let proxy = FaultProxy::start(&targets).await.unwrap();
        let hello = |sender| {
            let body = encode(&Hello::new("c", sender)).unwrap();
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend(body);
            frame
        };
        let cut = LinkState {
            cut: true,
            delay: Duration::ZERO,
        };
        proxy.set_between(a, b, cut);
        let mut node = TcpStream::connect(proxy.address(a, b)).await.unwrap();
        node.write_all(&hello(PeerName::Broker(1))).await.unwrap();
        let mut client = TcpStream::connect(proxy.address(a, b)).await.unwrap();
        let client_hello = hello(PeerName::Client(9));
        client.write_all(&client_hello).await.unwrap();
        let mut echoed = vec![0u8; client_hello.len()];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, client_hello, "a client passes a cut link");
        let mut byte = [0u8; 1];
        let stalled = tokio::time::timeout(Duration::from_millis(300), node.read(&mut byte));
        assert!(stalled.await.is_err(), "nothing passes a cut link");
        proxy.heal_all();
        let mut echoed = vec![0u8; hello(PeerName::Broker(1)).len()];
        node.read_exact(&mut echoed).await.unwrap();
        assert_eq!(
            echoed,
            hello(PeerName::Broker(1)),
            "delivered after the heal"
        );
    }
}
