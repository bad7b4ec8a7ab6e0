//! Shared helpers for the process-level tests: a local cluster of real `insync` processes
//! with test-speed clocks, and polling helpers that wait for events with a deadline (never a
//! fixed sleep). The cluster kills its processes when dropped, so a failing test leaves none.
//! `cli` runs the binary to completion, for the tests of its commands.
#![allow(dead_code)]

pub mod cli;

use std::path::PathBuf;
use std::time::Duration;

use insync_impl::client::ClientConfig;
use insync_impl::node::local_cluster::{ChildLogs, LocalCluster, LocalClusterSpec};
use insync_impl::protocol::{BrokerId, BrokerSnapshot, ControllerSnapshot, Snapshot};
use tokio::time::Instant;

/// Clocks fast enough for tests, slow enough for a loaded 2-core CI machine.
pub const FAST_CLOCKS: &[&str] = &[
    "--heartbeat-interval-ms",
    "100",
    "--session-timeout-ms",
    "1500",
    "--replica-lag-time-max-ms",
    "3000",
    "--fetch-timeout-ms",
    "1000",
    "--fetch-max-wait-ms",
    "200",
    "--flush-interval-ms",
    "200",
];

/// Every wait in these tests gives up after this long and fails with what it last saw.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct TestCluster {
    pub cluster: LocalCluster,
    /// Keeps the data directories alive for the test's duration.
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts a controller and `brokers` brokers with `extra` flags on every process, and
    /// waits until every broker holds a view.
    pub async fn start(brokers: u32, extra: &[&str]) -> TestCluster {
        Self::start_with_broker_flags(brokers, extra, &[]).await
    }

    /// As `start`, with `broker_extra` flags on the brokers only.
    pub async fn start_with_broker_flags(
        brokers: u32,
        extra: &[&str],
        broker_extra: &[&str],
    ) -> TestCluster {
        Self::start_spec(brokers, extra, broker_extra, Vec::new(), None).await
    }

    /// As `start`, with every broker serving the Kafka protocol for `topic` too.
    pub async fn start_with_kafka(brokers: u32, extra: &[&str], topic: &str) -> TestCluster {
        Self::start_with_topics(brokers, extra, &[topic], None).await
    }

    /// As `start`, with every broker serving the Kafka protocol, `topics` at start and
    /// `slots` partition slots (`None`: those the topics use).
    pub async fn start_with_topics(
        brokers: u32,
        extra: &[&str],
        topics: &[&str],
        slots: Option<u32>,
    ) -> TestCluster {
        let topics = topics.iter().map(|topic| topic.to_string()).collect();
        Self::start_spec(brokers, extra, &[], topics, slots).await
    }

    async fn start_spec(
        brokers: u32,
        extra: &[&str],
        broker_extra: &[&str],
        kafka_topics: Vec<String>,
        partition_slots: Option<u32>,
    ) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut node_args: Vec<String> = FAST_CLOCKS.iter().map(|flag| flag.to_string()).collect();
        node_args.extend(extra.iter().map(|flag| flag.to_string()));
        let spec = LocalClusterSpec {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_insync")),
            brokers,
            dir: dir.path().to_owned(),
            cluster_id: "insync-test".into(),
            node_args,
            broker_args: broker_extra.iter().map(|flag| flag.to_string()).collect(),
            base_port: None,
            logs: ChildLogs::Files,
            kafka_topics,
            partition_slots,
        };
        let cluster = LocalCluster::start(spec).await.expect("cluster starts");
        let test = TestCluster { cluster, dir };
        if let Err(error) = test.cluster.wait_ready(WAIT).await {
            test.dump_logs();
            panic!("cluster not ready: {error}");
        }
        test
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.cluster.bootstrap(), self.cluster.cluster_id());
        config.delivery_timeout = WAIT;
        config
    }

    pub async fn controller(&self) -> ControllerSnapshot {
        match self
            .cluster
            .inspect(self.cluster.controller_address())
            .await
        {
            Ok(Snapshot::Controller(snapshot)) => snapshot,
            other => panic!("controller inspect: {other:?}"),
        }
    }

    pub async fn broker(&self, id: BrokerId) -> BrokerSnapshot {
        match self.cluster.inspect(self.cluster.broker_address(id)).await {
            Ok(Snapshot::Broker(snapshot)) => snapshot,
            other => panic!("broker {id} inspect: {other:?}"),
        }
    }

    /// Polls the controller until `condition` holds.
    pub async fn wait_controller(
        &self,
        what: &str,
        condition: impl Fn(&ControllerSnapshot) -> bool,
    ) -> ControllerSnapshot {
        let address = self.cluster.controller_address().to_owned();
        let snapshot = self
            .wait_for(&address, what, |snapshot| match snapshot {
                Snapshot::Controller(controller) => condition(controller),
                Snapshot::Broker(_) => false,
            })
            .await;
        match snapshot {
            Snapshot::Controller(controller) => controller,
            Snapshot::Broker(_) => unreachable!(),
        }
    }

    /// Polls the controller until it names a leader other than `old_leader`.
    pub async fn wait_new_leader(&self, old_leader: BrokerId) -> ControllerSnapshot {
        self.wait_controller("a new leader", |controller| {
            controller
                .view
                .leader
                .is_some_and(|leader| leader != old_leader)
        })
        .await
    }

    /// Polls broker `id` until `condition` holds.
    pub async fn wait_broker(
        &self,
        id: BrokerId,
        what: &str,
        condition: impl Fn(&BrokerSnapshot) -> bool,
    ) -> BrokerSnapshot {
        let address = self.cluster.broker_address(id).to_owned();
        let snapshot = self
            .wait_for(&address, what, |snapshot| match snapshot {
                Snapshot::Broker(broker) => condition(broker),
                Snapshot::Controller(_) => false,
            })
            .await;
        match snapshot {
            Snapshot::Broker(broker) => broker,
            Snapshot::Controller(_) => unreachable!(),
        }
    }

    async fn wait_for(
        &self,
        address: &str,
        what: &str,
        condition: impl Fn(&Snapshot) -> bool,
    ) -> Snapshot {
        let deadline = Instant::now() + WAIT;
        match self
            .cluster
            .wait_for(address, deadline, what, condition)
            .await
        {
            Ok(snapshot) => snapshot,
            Err(error) => {
                self.dump_logs();
                panic!("{error}");
            }
        }
    }

    /// Prints the children's logs (shown by the test harness when the test fails).
    pub fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|extension| extension == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("===== {} (last 60 lines)", path.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The text of a node's log file (`broker-1`, `controller`).
    pub fn log_text(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{node}.log"))).unwrap_or_default()
    }
}

/// Sends `name` (`-STOP`, `-CONT`, `-9`, ...) to process `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {name} {pid}");
}

/// The values `prefix-i` for every `i` in `range`.
pub fn values(prefix: &str, range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range
        .map(|index| format!("{prefix}-{index}").into_bytes())
        .collect()
}
