//! Shared by the stepped-node tests: a fake peer that owns one of the node's outbound
//! addresses, as the conformance harness does, and hands the test every frame it receives.

use insync_impl::protocol::PeerMessage;
use insync_impl::wire::{handshake_server, Connection, PeerName};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Listens as `name` for the node under test (which must introduce itself as
/// `expected_sender`) and forwards each frame, tagged with `tag`. Returns the address.
pub async fn fake_peer<T: Clone + Send + 'static>(
    cluster: &'static str,
    name: PeerName,
    expected_sender: PeerName,
    tag: T,
    frames: mpsc::UnboundedSender<(T, PeerMessage)>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (frames, tag) = (frames.clone(), tag.clone());
            tokio::spawn(async move {
                let connection = Connection::new(stream);
                let (mut connection, sender) =
                    handshake_server(connection, cluster, name).await.unwrap();
                assert_eq!(sender, expected_sender, "the channel names its source");
                while let Ok(Some(message)) = connection.read::<PeerMessage>().await {
                    let _ = frames.send((tag.clone(), message));
                }
            });
        }
    });
    address
}
