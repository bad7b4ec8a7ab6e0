//! Every timer of the cores fires in real time (docs/protocol.md §6), on real node runtimes
//! (not `--stepped`): each deadline is kept by the event loop and passes by the clock alone.
//!
//! Method: three nodes run in this process, each with its peers played by the test (fake
//! listeners that collect every frame the node sends them, and connections on which the test
//! speaks as a peer). The test only withholds or sends messages; every re-send, release, shrink,
//! heartbeat and expiry below is the node's own, seen as the frame it sends and as the
//! per-kind fire count in its `Inspect` snapshot. Waits are bounded by `WAIT`; nothing sleeps.
//!
//! - A follower (broker 2) whose leader never answers re-sends its fetch (`FetchRetry`); told
//!   `UnknownLeaderEpoch`, it fetches again after the back-off (`FetchBackoff`); it
//!   heartbeats the controller throughout (`BrokerHeartbeat`). Sent a record and a HW of 1
//!   under `fsync = lazy`, it makes the record durable (`Flush`) and checkpoints the HW
//!   (`HwCheckpoint`, after its fixed 5 s interval).
//! - A leader (broker 1) answers a parked fetch from broker 2 with no records after the
//!   maximum wait (`ParkedRelease(2)`) and proposes dropping broker 3, which never fetches, from
//!   the ISR (`Lag(3)`).
//! - A controller whose brokers are silent fences them (`Expire(b)`), and lets broker 3 back in
//!   when its heartbeat arrives while fenced (`Heartbeat(3)`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use insync_impl::client::ControlClient;
use insync_impl::core::{ProtocolConfig, Variant};
use insync_impl::node::broker::run_broker;
use insync_impl::node::config::{BrokerConfig, ControllerConfig, NodeOptions, Timing};
use insync_impl::node::control_token::ControlToken;
use insync_impl::node::controller::run_controller;
use insync_impl::protocol::{
    BrokerSnapshot, FetchResult, PeerMessage, Record, Snapshot, TIMER_KINDS,
};
use insync_impl::storage::FsyncPolicy;
use insync_impl::wire::{handshake_client, Connection, Hello, PeerName};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

mod stepped_support;

const CLUSTER: &str = "realtime-timers-test";
/// Every wait gives up after this long.
const WAIT: Duration = Duration::from_secs(20);

type Frames = mpsc::UnboundedReceiver<(PeerName, PeerMessage)>;

/// Short clocks, in the relations `Timing::validate` requires.
fn timing() -> Timing {
    Timing {
        heartbeat_interval: Duration::from_millis(100),
        session_timeout: Duration::from_millis(600),
        replica_lag_time_max: Duration::from_millis(600),
        fetch_timeout: Duration::from_millis(300),
        fetch_max_wait: Duration::from_millis(100),
        fetch_backoff: Duration::from_millis(50),
        flush_interval: Duration::from_millis(200),
    }
}

fn options() -> NodeOptions {
    NodeOptions {
        cluster_id: CLUSTER.into(),
        protocol: ProtocolConfig {
            variant: Variant::Kip966,
            unclean_leader_election: false,
            min_insync_replicas: 2,
            brokers: vec![1, 2, 3],
        },
        fsync: FsyncPolicy::Lazy,
        stepped: false,
        timing: timing(),
        control_token_file: None,
        trace_log: None,
    }
}

/// Fake listeners for `names`, all feeding one frame queue (each frame tagged by whom the
/// node sent it to), and their addresses.
async fn fake_peers(names: &[PeerName], sender: PeerName) -> (BTreeMap<PeerName, String>, Frames) {
    let (frames_in, frames) = mpsc::unbounded_channel();
    let mut addresses = BTreeMap::new();
    for name in names {
        let address =
            stepped_support::fake_peer(CLUSTER, *name, sender, *name, frames_in.clone()).await;
        addresses.insert(*name, address);
    }
    (addresses, frames)
}

/// Waits for the first frame to `target` that `wanted` accepts; other frames are skipped.
async fn frame_to(frames: &mut Frames, target: PeerName, wanted: impl Fn(&PeerMessage) -> bool) {
    let found = async {
        while let Some((to, message)) = frames.recv().await {
            if to == target && wanted(&message) {
                return;
            }
        }
        panic!("the node's frames ended");
    };
    tokio::time::timeout(WAIT, found)
        .await
        .unwrap_or_else(|_| panic!("no matching frame to {target:?} within {WAIT:?}"));
}

/// Connects to the node at `address` as `name`, for sending it protocol messages.
async fn connect_as(address: &str, name: PeerName) -> Connection<TcpStream> {
    let stream = TcpStream::connect(address).await.unwrap();
    let (connection, _) = handshake_client(Connection::new(stream), &Hello::new(CLUSTER, name))
        .await
        .unwrap();
    connection
}

/// The node's snapshot, read as its operator.
async fn inspect(address: &str, dir: &std::path::Path) -> Snapshot {
    let token = ControlToken::read(&ControlToken::default_path(dir)).unwrap();
    let mut control = ControlClient::connect_with_token(address, CLUSTER, &token)
        .await
        .unwrap();
    control.inspect().await.unwrap()
}

/// The node's fire counts, by timer kind.
async fn timers_fired(address: &str, dir: &std::path::Path) -> BTreeMap<String, u64> {
    match inspect(address, dir).await {
        Snapshot::Broker(snapshot) => snapshot.timers_fired,
        Snapshot::Controller(snapshot) => snapshot.timers_fired,
    }
}

async fn broker_snapshot(address: &str, dir: &std::path::Path) -> BrokerSnapshot {
    match inspect(address, dir).await {
        Snapshot::Broker(snapshot) => snapshot,
        Snapshot::Controller(_) => panic!("a broker answers a broker snapshot"),
    }
}

async fn start_broker(
    id: u32,
    peers: &BTreeMap<PeerName, String>,
    dir: &std::path::Path,
) -> String {
    let broker_peers = peers
        .iter()
        .filter_map(|(name, address)| match name {
            PeerName::Broker(peer) => Some((*peer, address.clone())),
            _ => None,
        })
        .collect();
    let config = BrokerConfig {
        id,
        listen: "127.0.0.1:0".into(),
        controller: peers[&PeerName::Controller].clone(),
        peers: broker_peers,
        data_dir: dir.to_owned(),
        options: options(),
        simulate_power_loss_on_start: false,
    };
    let (bound, address) = oneshot::channel();
    tokio::spawn(async move {
        run_broker(config, move |address| {
            let _ = bound.send(address.to_string());
        })
        .await
        .unwrap();
    });
    address.await.unwrap()
}

/// Broker 2, follower of broker 1 (played by the test): `FetchRetry`, `FetchBackoff`,
/// `BrokerHeartbeat`, then `Flush` and `HwCheckpoint`.
async fn follower_timers(dir: &std::path::Path) -> BTreeMap<String, u64> {
    let names = [
        PeerName::Broker(1),
        PeerName::Broker(3),
        PeerName::Controller,
    ];
    let (peers, mut frames) = fake_peers(&names, PeerName::Broker(2)).await;
    let address = start_broker(2, &peers, dir).await;
    let first_fetch = |message: &PeerMessage| {
        matches!(
            message,
            PeerMessage::Fetch {
                leader_epoch: 1,
                fetch_offset: 0,
                ..
            }
        )
    };
    frame_to(&mut frames, PeerName::Broker(1), first_fetch).await;
    // Unanswered: the same fetch again, once the fetch timeout passed.
    frame_to(&mut frames, PeerName::Broker(1), first_fetch).await;
    frame_to(&mut frames, PeerName::Controller, |message| {
        matches!(
            message,
            PeerMessage::Heartbeat {
                partition_epoch: 1,
                broker_epoch: 0
            }
        )
    })
    .await;
    // A fencing answer stops the follower; the back-off resumes it.
    let mut leader = connect_as(&address, PeerName::Broker(1)).await;
    let fenced = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 0,
        result: FetchResult::UnknownLeaderEpoch,
    };
    leader.write(&fenced).await.unwrap();
    wait_fired(&address, dir, "FetchBackoff").await;
    frame_to(&mut frames, PeerName::Broker(1), first_fetch).await;
    durability_timers(&address, dir, &mut leader).await
}

/// The follower gets one record and a HW of 1 from its leader (`leader`, played by the test):
/// the record waits for `Flush` (`fsync = lazy`), the HW for `HwCheckpoint`.
async fn durability_timers(
    address: &str,
    dir: &std::path::Path,
    leader: &mut Connection<TcpStream>,
) -> BTreeMap<String, u64> {
    let record = Record {
        offset: 0,
        leader_epoch: 1,
        producer_id: 7,
        sequence: 0,
        value: vec![b'v'; 4],
    };
    let records = PeerMessage::FetchResponse {
        leader_epoch: 1,
        fetch_offset: 0,
        result: FetchResult::Records {
            records: vec![record],
            high_watermark: 1,
        },
    };
    leader.write(&records).await.unwrap();
    wait_fired(address, dir, "Flush").await;
    let fired = wait_fired(address, dir, "HwCheckpoint").await;
    let snapshot = broker_snapshot(address, dir).await;
    assert_eq!(
        (snapshot.durable_end_offset, snapshot.hw_checkpoint),
        (1, 1),
        "the record is durable and the HW checkpointed"
    );
    fired
}

/// Broker 1, leader of the initial view; broker 2 played by the test, broker 3 silent:
/// `ParkedRelease(2)`, `Lag(3)`.
async fn leader_timers(dir: &std::path::Path) -> BTreeMap<String, u64> {
    let names = [
        PeerName::Broker(2),
        PeerName::Broker(3),
        PeerName::Controller,
    ];
    let (peers, mut frames) = fake_peers(&names, PeerName::Broker(1)).await;
    let address = start_broker(1, &peers, dir).await;
    let mut follower = connect_as(&address, PeerName::Broker(2)).await;
    let fetch = PeerMessage::Fetch {
        leader_epoch: 1,
        fetch_offset: 0,
        last_fetched_epoch: 0,
        broker_epoch: 0,
    };
    follower.write(&fetch).await.unwrap();
    // Nothing to send at first: parked, then released empty after the maximum wait.
    let empty = |message: &PeerMessage| {
        matches!(
            message,
            PeerMessage::FetchResponse {
                leader_epoch: 1,
                fetch_offset: 0,
                result: FetchResult::Records { records, high_watermark: 0 },
            } if records.is_empty()
        )
    };
    frame_to(&mut frames, PeerName::Broker(2), empty).await;
    let without_3: BTreeSet<u32> = [1, 2].into_iter().collect();
    frame_to(
        &mut frames,
        PeerName::Controller,
        |message| matches!(message, PeerMessage::AlterPartition { isr, .. } if *isr == without_3),
    )
    .await;
    wait_fired(&address, dir, "Lag").await
}

/// The controller, with every broker played by the test: `Expire(b)`, `Heartbeat(3)`.
async fn controller_timers(dir: &std::path::Path) -> BTreeMap<String, u64> {
    let names = [
        PeerName::Broker(1),
        PeerName::Broker(2),
        PeerName::Broker(3),
    ];
    let (peers, mut frames) = fake_peers(&names, PeerName::Controller).await;
    let brokers = peers
        .iter()
        .filter_map(|(name, address)| match name {
            PeerName::Broker(id) => Some((*id, address.clone())),
            _ => None,
        })
        .collect();
    let config = ControllerConfig {
        listen: "127.0.0.1:0".into(),
        brokers,
        data_dir: dir.to_owned(),
        options: options(),
    };
    let (bound, address) = oneshot::channel();
    tokio::spawn(async move {
        run_controller(config, move |address| {
            let _ = bound.send(address.to_string());
        })
        .await
        .unwrap();
    });
    let address = address.await.unwrap();
    // Nobody heartbeats: sessions expire, and broker 3 learns a view without it.
    frame_to(
        &mut frames,
        PeerName::Broker(3),
        |message| matches!(message, PeerMessage::LeaderAndIsr(view) if !view.isr.contains(&1)),
    )
    .await;
    let fired = wait_fired(&address, dir, "Expire").await;
    assert!(fired["Expire"] >= 1);
    // Broker 3 was never down: its heartbeat, fenced, lets it back in.
    let mut broker = connect_as(&address, PeerName::Broker(3)).await;
    let heartbeat = PeerMessage::Heartbeat {
        partition_epoch: 1,
        broker_epoch: 0,
    };
    broker.write(&heartbeat).await.unwrap();
    frame_to(&mut frames, PeerName::Broker(3), |message| {
        matches!(message, PeerMessage::RegisterBrokerResponse)
    })
    .await;
    wait_fired(&address, dir, "Heartbeat").await
}

/// Polls the node until `kind` has fired at least once; returns all its fire counts.
async fn wait_fired(address: &str, dir: &std::path::Path, kind: &str) -> BTreeMap<String, u64> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let fired = timers_fired(address, dir).await;
        if fired.get(kind).is_some_and(|count| *count > 0) {
            return fired;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind} never fired: {fired:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// Goal: every timer kind of the cores fires at least once in real time, each with the
/// protocol effect that is its reason to exist (see the module doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_core_timer_fires_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let follower = follower_timers(&dir.path().join("broker-2")).await;
    let leader = leader_timers(&dir.path().join("broker-1")).await;
    let controller = controller_timers(&dir.path().join("controller")).await;
    let mut fired: BTreeSet<String> = BTreeSet::new();
    for counts in [&follower, &leader, &controller] {
        fired.extend(
            counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, _)| k.clone()),
        );
    }
    let all: BTreeSet<String> = TIMER_KINDS.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        fired, all,
        "follower {follower:?}, leader {leader:?}, controller {controller:?}"
    );
}
