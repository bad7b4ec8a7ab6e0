//! The stepped controller as the conformance harness drives it (docs/conformance-notes.md):
//! the test owns the brokers' addresses (so it sees every frame the controller emits and on
//! which channel), plays broker 2 on an inbound channel, fires timers on the control channel,
//! and uses `Barrier` to know when an input was processed and how many frames it produced.
//! A restart on the same data directory resumes the persisted view.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use insync_impl::client::ControlClient;
use insync_impl::core::{ProtocolConfig, Variant};
use insync_impl::node::config::{ControllerConfig, NodeOptions, Timing};
use insync_impl::node::control_token::ControlToken;
use insync_impl::node::controller::run_controller;
use insync_impl::protocol::{NodeId, PeerMessage, Snapshot, Timer, View};
use insync_impl::storage::FsyncPolicy;
use insync_impl::wire::{handshake_client, Connection, Hello, PeerName};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

mod stepped_support;

const CLUSTER: &str = "stepped-test";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A fake broker address: accepts the controller's outbound channel and forwards each frame.
async fn fake_broker(id: u32, frames: mpsc::UnboundedSender<(u32, PeerMessage)>) -> String {
    let (name, controller) = (PeerName::Broker(id), PeerName::Controller);
    stepped_support::fake_peer(CLUSTER, name, controller, id, frames).await
}

fn config(brokers: &BTreeMap<u32, String>, dir: &std::path::Path) -> ControllerConfig {
    ControllerConfig {
        listen: "127.0.0.1:0".into(),
        brokers: brokers.clone(),
        data_dir: dir.to_owned(),
        options: NodeOptions {
            cluster_id: CLUSTER.into(),
            protocol: ProtocolConfig {
                variant: Variant::Kip966,
                unclean_leader_election: false,
                min_insync_replicas: 2,
                brokers: vec![1, 2, 3],
            },
            fsync: FsyncPolicy::Always,
            stepped: true,
            control_token_file: None,
            trace_log: None,
            // Absurdly short clocks: in stepped mode none of them may fire.
            timing: Timing {
                session_timeout: Duration::from_millis(5),
                heartbeat_interval: Duration::from_millis(1),
                ..Timing::default()
            },
        },
    }
}

async fn start(config: ControllerConfig) -> (String, tokio::task::JoinHandle<()>) {
    let (bound, address) = oneshot::channel();
    let running = tokio::spawn(async move {
        run_controller(config, move |address| {
            let _ = bound.send(address.to_string());
        })
        .await
        .unwrap();
    });
    (address.await.unwrap(), running)
}

async fn next_frames(
    frames: &mut mpsc::UnboundedReceiver<(u32, PeerMessage)>,
    count: usize,
) -> Vec<(u32, PeerMessage)> {
    let mut received = Vec::new();
    for _ in 0..count {
        let frame = tokio::time::timeout(TIMEOUT, frames.recv())
            .await
            .unwrap()
            .unwrap();
        received.push(frame);
    }
    received.sort_by_key(|(id, _)| *id);
    received
}

fn view_to_all(received: &[(u32, PeerMessage)], view: &View) {
    let expected: Vec<(u32, PeerMessage)> = (1..=3)
        .map(|id| (id, PeerMessage::LeaderAndIsr(view.clone())))
        .collect();
    assert_eq!(received, expected.as_slice());
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
async fn stepped_controller_counts_frames_fires_named_timers_and_persists_its_view() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut frames) = mpsc::unbounded_channel();
    let mut brokers = BTreeMap::new();
    for id in 1..=3 {
        brokers.insert(id, fake_broker(id, sender.clone()).await);
    }
    let (address, running) = start(config(&brokers, dir.path())).await;
    let mut control = operator(&address, dir.path()).await;
    let Snapshot::Controller(initial) = control.inspect().await.unwrap() else {
        panic!()
    };
    assert_eq!(initial.view.partition_epoch, 1);
    let all_expiries: BTreeSet<Timer> = (1..=3).map(Timer::Expire).collect();
    assert_eq!(initial.armed_timers, all_expiries);
    assert!(
        !control.fire_timer(Timer::Lag(1)).await.unwrap(),
        "Lag is not armed here"
    );

    // Broker 2 (played by the test) registers at broker epoch 1 (its first restart): removed
    // from the ISR; `RegisterBrokerResponse` to it first (KIP-903), then the view to everyone.
    let stream = TcpStream::connect(&address).await.unwrap();
    let hello = Hello::new(CLUSTER, PeerName::Broker(2));
    let (mut broker_2, _) = handshake_client(Connection::new(stream), &hello)
        .await
        .unwrap();
    let register = PeerMessage::RegisterBroker { broker_epoch: 1 };
    broker_2.write(&register).await.unwrap();
    let received = BTreeMap::from([(NodeId::Broker(2), 1)]);
    let (emitted, dropped) = control.barrier(received, TIMEOUT).await.unwrap();
    let registered_counts = BTreeMap::from([
        (NodeId::Broker(1), 1),
        (NodeId::Broker(2), 2),
        (NodeId::Broker(3), 1),
    ]);
    assert_eq!(
        emitted, registered_counts,
        "one LeaderAndIsr per broker, an answer to 2"
    );
    assert!(dropped.is_empty());
    let registered = View {
        isr: BTreeSet::from([1, 3]),
        partition_epoch: 2,
        ..initial.view.clone()
    };
    let mut received = next_frames(&mut frames, 4).await;
    let answer = received.remove(1);
    assert_eq!(answer, (2, PeerMessage::RegisterBrokerResponse));
    view_to_all(&received, &registered);
    let Snapshot::Controller(state) = control.inspect().await.unwrap() else {
        panic!()
    };
    assert_eq!(state.broker_epochs, BTreeMap::from([(2, 1)]));

    // The harness fires Expire(3) by name; nothing expired by itself meanwhile.
    let Snapshot::Controller(before) = control.inspect().await.unwrap() else {
        panic!()
    };
    assert!(before.fenced.is_empty(), "no session clock in stepped mode");
    assert!(control.fire_timer(Timer::Expire(3)).await.unwrap());
    let (emitted, _) = control.barrier(BTreeMap::new(), TIMEOUT).await.unwrap();
    let expired_counts: BTreeMap<NodeId, u64> = registered_counts
        .iter()
        .map(|(id, count)| (*id, count + 1))
        .collect();
    assert_eq!(emitted, expired_counts);
    let expired = View {
        isr: BTreeSet::from([1]),
        partition_epoch: 3,
        ..initial.view.clone()
    };
    view_to_all(&next_frames(&mut frames, 3).await, &expired);

    // A restart on the same directory resumes the persisted view.
    control.shutdown().await.unwrap();
    // The data directory stays locked until the stopped node has let go of it.
    running.await.unwrap();
    // Port 0 again: the new process need not reuse the old port.
    let (address, _running) = start(config(&brokers, dir.path())).await;
    let mut control = operator(&address, dir.path()).await;
    let Snapshot::Controller(resumed) = control.inspect().await.unwrap() else {
        panic!()
    };
    assert_eq!(resumed.view, expired);
    assert_eq!(resumed.fenced, BTreeSet::from([3]));
    assert_eq!(resumed.broker_epochs, BTreeMap::from([(2, 1)]));
    // A fenced broker arms `Heartbeat(b)`, the others `Expire(b)` (§4.10).
    let armed = BTreeSet::from([Timer::Expire(1), Timer::Expire(2), Timer::Heartbeat(3)]);
    assert_eq!(resumed.armed_timers, armed);
}
