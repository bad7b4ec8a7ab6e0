//! A stepped broker as the conformance harness drives it: a fresh data directory starts with
//! the initial view (broker 2 follows broker 1 and fetches from its start handler); the test,
//! owning broker 1's and the controller's addresses, answers that fetch with records; `Barrier`
//! tells when they were appended and the next fetch emitted. Under `fsync = lazy` nothing is
//! flushed in stepped mode, so a restart with `--simulate-power-loss-on-start` finds an empty
//! log, holds no view and registers with the controller (docs/protocol.md §2).

use std::collections::BTreeMap;
use std::time::Duration;

use insync_impl::client::ControlClient;
use insync_impl::core::{ProtocolConfig, Variant};
use insync_impl::node::broker::run_broker;
use insync_impl::node::config::{BrokerConfig, NodeOptions, Timing};
use insync_impl::node::control_token::ControlToken;
use insync_impl::protocol::{FetchResult, FetchState, NodeId, PeerMessage, Record, Snapshot};
use insync_impl::storage::FsyncPolicy;
use insync_impl::wire::{handshake_client, Connection, Hello, PeerName};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod stepped_support;

const CLUSTER: &str = "stepped-broker-test";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts the broker's outbound channel to `name` and forwards each frame.
async fn fake_peer(
    name: PeerName,
    frames: mpsc::UnboundedSender<(PeerName, PeerMessage)>,
) -> String {
    stepped_support::fake_peer(CLUSTER, name, PeerName::Broker(2), name, frames).await
}

fn config(dir: &std::path::Path, peers: &BTreeMap<u32, String>, controller: &str) -> BrokerConfig {
    BrokerConfig {
        id: 2,
        listen: "127.0.0.1:0".into(),
        controller: controller.into(),
        peers: peers.clone(),
        data_dir: dir.to_owned(),
        options: NodeOptions {
            cluster_id: CLUSTER.into(),
            protocol: ProtocolConfig {
                variant: Variant::Kip966,
                unclean_leader_election: false,
                min_insync_replicas: 2,
                brokers: vec![1, 2, 3],
            },
            fsync: FsyncPolicy::Lazy,
            stepped: true,
            control_token_file: None,
            trace_log: None,
            timing: Timing::default(),
        },
        simulate_power_loss_on_start: false,
    }
}

async fn start(config: BrokerConfig) -> (String, JoinHandle<()>) {
    let (bound, address) = oneshot::channel();
    let running = tokio::spawn(async move {
        run_broker(config, move |address| {
            let _ = bound.send(address.to_string());
        })
        .await
        .unwrap();
    });
    (address.await.unwrap(), running)
}

async fn next_frame(
    frames: &mut mpsc::UnboundedReceiver<(PeerName, PeerMessage)>,
) -> (PeerName, PeerMessage) {
    tokio::time::timeout(TIMEOUT, frames.recv())
        .await
        .unwrap()
        .unwrap()
}

async fn broker_snapshot(control: &mut ControlClient) -> insync_impl::protocol::BrokerSnapshot {
    match control.inspect().await.unwrap() {
        Snapshot::Broker(snapshot) => snapshot,
        other => panic!("{other:?}"),
    }
}

/// The operator's control connection: the token the node created in its data directory
/// before it printed its address.
async fn operator(address: &str, data_dir: &std::path::Path) -> ControlClient {
    let token = ControlToken::read(&ControlToken::default_path(data_dir)).unwrap();
    ControlClient::connect_with_token(address, CLUSTER, &token)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stepped_follower_replicates_on_delivery_and_loses_unflushed_records_on_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut frames) = mpsc::unbounded_channel();
    let mut peers = BTreeMap::new();
    for id in [1, 3] {
        peers.insert(id, fake_peer(PeerName::Broker(id), sender.clone()).await);
    }
    let controller = fake_peer(PeerName::Controller, sender.clone()).await;
    let (address, running) = start(config(dir.path(), &peers, &controller)).await;
    let mut control = operator(&address, dir.path()).await;

    // First start: the initial view is installed and the follower fetches from broker 1.
    let first_fetch = PeerMessage::Fetch {
        leader_epoch: 1,
        fetch_offset: 0,
        last_fetched_epoch: 0,
        broker_epoch: 0,
    };
    assert_eq!(
        next_frame(&mut frames).await,
        (PeerName::Broker(1), first_fetch)
    );
    let snapshot = broker_snapshot(&mut control).await;
    assert_eq!(
        snapshot.view.as_ref().map(|view| view.leader),
        Some(Some(1))
    );
    assert_eq!(snapshot.fetch_state, FetchState::Fetching);

    // The test, as broker 1, answers with two records.
    let stream = TcpStream::connect(&address).await.unwrap();
    let hello = Hello::new(CLUSTER, PeerName::Broker(1));
    let (mut leader, _) = handshake_client(Connection::new(stream), &hello)
        .await
        .unwrap();
    let record = |offset: u64| Record {
        offset,
        leader_epoch: 1,
        producer_id: 7,
        sequence: offset as u32,
        value: vec![b'v'; 4],
    };
    let records = vec![record(0), record(1)];
    let result = FetchResult::Records {
        records,
        high_watermark: 0,
    };
    let answer = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 0,
        result,
    };
    leader.write(&answer).await.unwrap();
    let received = BTreeMap::from([(NodeId::Broker(1), 1)]);
    let (emitted, dropped) = control.barrier(received, TIMEOUT).await.unwrap();
    assert_eq!(
        emitted,
        BTreeMap::from([(NodeId::Broker(1), 2)]),
        "the next fetch"
    );
    assert!(dropped.is_empty());
    let next_fetch = PeerMessage::Fetch {
        leader_epoch: 1,
        fetch_offset: 2,
        last_fetched_epoch: 1,
        broker_epoch: 0,
    };
    assert_eq!(
        next_frame(&mut frames).await,
        (PeerName::Broker(1), next_fetch)
    );
    assert_eq!(broker_snapshot(&mut control).await.log_end_offset, 2);

    // Crash (stop) and power loss: the lazy log was never flushed in stepped mode.
    control.shutdown().await.unwrap();
    running.await.unwrap();
    let mut restart = config(dir.path(), &peers, &controller);
    restart.simulate_power_loss_on_start = true;
    let (address, running) = start(restart).await;
    let mut control = operator(&address, dir.path()).await;
    assert_eq!(
        next_frame(&mut frames).await,
        (
            PeerName::Controller,
            PeerMessage::RegisterBroker { broker_epoch: 1 }
        ),
        "the first restart is broker epoch 1, read back from the data directory"
    );
    let snapshot = broker_snapshot(&mut control).await;
    assert_eq!(snapshot.log_end_offset, 0, "unflushed records are gone");
    assert_eq!((snapshot.broker_epoch, snapshot.registered), (1, false));
    assert_eq!(
        snapshot.view, None,
        "a restarted broker waits for the controller's view"
    );
    control.shutdown().await.unwrap();
    running.await.unwrap();
}
