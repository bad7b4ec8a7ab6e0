//! Process configuration: what every node needs to know before it starts, and the parsing of
//! the command line's `1=ADDR,2=ADDR,...` peer lists.
//!
//! Addresses stay strings (`host:port`) until a connection is made, so a peer may be named by a
//! host name that resolves later; listening addresses are bound at start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::core::ProtocolConfig;
use crate::kafka::partitions::PARTITIONS_MAX;
use crate::kafka::{TopicSpec, DEFAULT_TOPIC};
use crate::protocol::{BrokerId, NodeId, Timer};
use crate::storage::FsyncPolicy;

/// The cluster id used when none is given: every process of one cluster must agree on it.
pub const DEFAULT_CLUSTER_ID: &str = "insync";

/// Real time only: how long after the core arms `HwCheckpoint` the runtime fires it (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms`, default 5 s).
pub const HIGH_WATERMARK_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Real-time clocks of a node (never used in stepped mode): the duration of each timer kind
/// (docs/protocol.md §6), looked up by [`Timing::duration`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Broker: how often it heartbeats the controller.
    pub heartbeat_interval: Duration,
    /// Controller: a broker silent for this long has its `Expire(b)` timer fired.
    pub session_timeout: Duration,
    /// Leader: `Lag(f)` fires when f has not caught up for this long.
    pub replica_lag_time_max: Duration,
    /// Follower: a `Fetch` (or epoch lookup) unanswered for this long is sent again.
    pub fetch_timeout: Duration,
    /// Leader: a parked fetch is answered empty after at most this long.
    pub fetch_max_wait: Duration,
    /// Follower: stopped by a fencing answer, it fetches again after this long (the new view
    /// is usually a moment away).
    pub fetch_backoff: Duration,
    /// Broker, `fsync = lazy`: how long after the log first holds unflushed records its
    /// `Flush` timer fires.
    pub flush_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(500),
            session_timeout: Duration::from_millis(3000),
            replica_lag_time_max: Duration::from_millis(5000),
            fetch_timeout: Duration::from_millis(2000),
            fetch_max_wait: Duration::from_millis(500),
            fetch_backoff: Duration::from_millis(50),
            flush_interval: Duration::from_millis(1000),
        }
    }
}

impl Timing {
    /// How long an armed `timer` runs before it fires; `None` for a timer no clock fires
    /// (the controller's `Heartbeat(b)` is fired by a broker's heartbeat message). This table
    /// is the runtime's only knowledge of timers: what a timer means is the core's business.
    pub fn duration(&self, timer: &Timer) -> Option<Duration> {
        match timer {
            Timer::Lag(_) => Some(self.replica_lag_time_max),
            Timer::Expire(_) => Some(self.session_timeout),
            Timer::Heartbeat(_) => None,
            Timer::FetchRetry => Some(self.fetch_timeout),
            Timer::FetchBackoff => Some(self.fetch_backoff),
            Timer::ParkedRelease(_) => Some(self.fetch_max_wait),
            Timer::BrokerHeartbeat => Some(self.heartbeat_interval),
            Timer::Flush => Some(self.flush_interval),
            Timer::HwCheckpoint => Some(HIGH_WATERMARK_CHECKPOINT_INTERVAL),
        }
    }
}

impl Timing {
    /// Checks the relations between clocks that the protocol relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fetch_max_wait >= self.fetch_timeout {
            return Err(ConfigError::Timing(
                "--fetch-max-wait-ms must be below --fetch-timeout-ms, or idle followers \
                 would time out waiting for a parked fetch"
                    .into(),
            ));
        }
        if self.heartbeat_interval >= self.session_timeout {
            return Err(ConfigError::Timing(
                "--heartbeat-interval-ms must be below --session-timeout-ms".into(),
            ));
        }
        Ok(())
    }
}

/// What every process of a cluster shares.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub cluster_id: String,
    pub protocol: ProtocolConfig,
    pub fsync: FsyncPolicy,
    /// No clock at all: only the control channel fires timers (docs/conformance-notes).
    pub stepped: bool,
    pub timing: Timing,
    /// The operator's control token (docs/runtime.md); `None`: `<data-dir>/control.token`.
    /// Created with a fresh secret when the file is absent.
    pub control_token_file: Option<PathBuf>,
    /// Record a trace log of every input the core handles in this directory (one file per
    /// node, `trace_log`); `None`: no recording.
    pub trace_log: Option<PathBuf>,
}

/// `insync broker`.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub id: BrokerId,
    pub listen: String,
    pub controller: String,
    /// Every other broker's address (this broker's own entry, if given, is ignored).
    pub peers: BTreeMap<BrokerId, String>,
    pub data_dir: PathBuf,
    pub options: NodeOptions,
    /// Before opening the log, cut it back to what was durable (a stepped power loss).
    pub simulate_power_loss_on_start: bool,
}

/// `insync controller`.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub listen: String,
    pub brokers: BTreeMap<BrokerId, String>,
    pub data_dir: PathBuf,
    pub options: NodeOptions,
}

/// A configuration the node refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("peer list entry {entry:?} is not ID=ADDR (e.g. 2=127.0.0.1:9092)")]
    PeerSyntax { entry: String },
    #[error("peer list entry {entry:?}: broker ids are 1, 2, 3, ...")]
    PeerId { entry: String },
    #[error("broker {id} appears twice in the peer list")]
    DuplicatePeer { id: BrokerId },
    #[error("the peer list is empty")]
    NoPeers,
    #[error("{0}")]
    Timing(String),
    #[error(
        "--partition-nodes {entry:?}: {reason} (the form is P/0=ADDR,1=ADDR,2=ADDR,...: \
         partition slot P's controller core (0) and every broker)"
    )]
    PartitionNodes { entry: String, reason: String },
}

/// Where partition slot `index` (1, 2, ...) is served: its controller core's address and
/// every broker's (`--partition-nodes`). Slot 0 is served where the node's own flags say
/// (`--listen`, `--controller`, `--peers`), exactly as a cluster of one partition is; each
/// other slot has a port of its own on every node, so its peer channels are its own
/// (docs/protocol.md §7). Which topic's partition a slot serves is the topic table's say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionNodes {
    pub index: u32,
    pub controller: String,
    pub brokers: BTreeMap<BrokerId, String>,
}

impl PartitionNodes {
    /// Parses `P/0=ADDR,1=ADDR,...`: `0` is the controller, `1...` the brokers.
    pub fn parse(text: &str) -> Result<PartitionNodes, ConfigError> {
        let refuse = |reason: &str| ConfigError::PartitionNodes {
            entry: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (index, nodes) = text.split_once('/').ok_or_else(|| refuse("no '/'"))?;
        let index: u32 = match index.trim().parse() {
            Ok(index) if index >= 1 => index,
            _ => return Err(refuse("P is a partition slot, 1 or more")),
        };
        let mut controller = None;
        let mut brokers = Vec::new();
        for entry in nodes.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('=') {
                Some((id, address)) if id.trim() == "0" => {
                    if controller.replace(address.trim().to_owned()).is_some() {
                        return Err(refuse("the controller (0) appears twice"));
                    }
                }
                _ => brokers.push(entry),
            }
        }
        let controller = controller.ok_or_else(|| refuse("no controller address (0=ADDR)"))?;
        if !controller.contains(':') {
            return Err(refuse("the controller's address is not HOST:PORT"));
        }
        let brokers =
            parse_peers(&brokers.join(",")).map_err(|error| refuse(&error.to_string()))?;
        Ok(PartitionNodes {
            index,
            controller,
            brokers,
        })
    }

    /// The `--partition-nodes` value this parses from.
    pub fn format(&self) -> String {
        format!(
            "{}/0={},{}",
            self.index,
            self.controller,
            format_peers(&self.brokers)
        )
    }

    /// Checks a node's slot pool: slots 1, 2, ... each once, in order, at most
    /// `PARTITIONS_MAX` slots with slot 0, each naming exactly the brokers of slot 0.
    pub fn check_list(
        list: &[PartitionNodes],
        brokers: &BTreeSet<BrokerId>,
    ) -> Result<(), ConfigError> {
        let refuse = |entry: String, reason: String| ConfigError::PartitionNodes { entry, reason };
        if list.len() as u64 + 1 > u64::from(PARTITIONS_MAX) {
            return Err(refuse(
                format!("{} given", list.len()),
                format!("at most {PARTITIONS_MAX} slots in all, slot 0 included"),
            ));
        }
        for (expected, nodes) in (1..).zip(list) {
            if nodes.index != expected {
                let reason = format!("slot {expected} expected here, in order");
                return Err(refuse(nodes.format(), reason));
            }
            let named: BTreeSet<BrokerId> = nodes.brokers.keys().copied().collect();
            if &named != brokers {
                let reason = format!("names brokers {named:?}, slot 0 has {brokers:?}");
                return Err(refuse(nodes.format(), reason));
            }
        }
        Ok(())
    }
}

/// The topics a process starts with (`--topic`, repeatable; they make the topic table on a
/// fresh start) and the partition slots after 0 it has addresses for (`--partition-nodes`).
#[derive(Clone, Debug)]
pub struct TopicsConfig {
    pub topics: Vec<TopicSpec>,
    pub pool: Vec<PartitionNodes>,
}

impl TopicsConfig {
    /// One topic of one partition, [`DEFAULT_TOPIC`], and no slot beyond 0: a cluster of one
    /// partition, as it always was.
    pub fn default_topic() -> TopicsConfig {
        let topic = TopicSpec::parse(DEFAULT_TOPIC).expect("a valid name");
        TopicsConfig {
            topics: vec![topic],
            pool: Vec::new(),
        }
    }
}

/// Parses `1=127.0.0.1:9001,2=127.0.0.1:9002`. Whitespace around entries is ignored.
pub fn parse_peers(text: &str) -> Result<BTreeMap<BrokerId, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (id, address) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::PeerSyntax {
                entry: entry.to_owned(),
            })?;
        let id: BrokerId = id.trim().parse().map_err(|_| ConfigError::PeerId {
            entry: entry.to_owned(),
        })?;
        if id == 0 {
            return Err(ConfigError::PeerId {
                entry: entry.to_owned(),
            });
        }
        let address = address.trim();
        if address.is_empty() || !address.contains(':') {
            return Err(ConfigError::PeerSyntax {
                entry: entry.to_owned(),
            });
        }
        if peers.insert(id, address.to_owned()).is_some() {
            return Err(ConfigError::DuplicatePeer { id });
        }
    }
    if peers.is_empty() {
        return Err(ConfigError::NoPeers);
    }
    Ok(peers)
}

/// Renders a peer list back into the `1=ADDR,2=ADDR` form.
pub fn format_peers(peers: &BTreeMap<BrokerId, String>) -> String {
    let entries: Vec<String> = peers
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect();
    entries.join(",")
}

/// The command line that starts `node` as a process of a local cluster (before the options
/// every node shares): a broker names its controller and peers, the controller its brokers.
pub fn node_command(node: NodeId, controller: &str, peers: &str) -> Vec<String> {
    match node {
        NodeId::Broker(id) => vec![
            "broker".to_string(),
            "--id".into(),
            id.to_string(),
            "--controller".into(),
            controller.to_owned(),
            "--peers".into(),
            peers.to_owned(),
        ],
        NodeId::Controller | NodeId::Client(_) => {
            vec![
                "controller".to_string(),
                "--brokers".into(),
                peers.to_owned(),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_round_trip() {
        let peers = parse_peers(" 1=127.0.0.1:9001, 2=localhost:9002,").unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[&2], "localhost:9002");
        assert_eq!(format_peers(&peers), "1=127.0.0.1:9001,2=localhost:9002");
    }

    #[test]
    fn bad_peer_lists_are_rejected_with_the_entry() {
        assert!(matches!(
            parse_peers("1:9001"),
            Err(ConfigError::PeerSyntax { .. })
        ));
        assert!(matches!(
            parse_peers("x=h:1"),
            Err(ConfigError::PeerId { .. })
        ));
        assert!(matches!(
            parse_peers("0=h:1"),
            Err(ConfigError::PeerId { .. })
        ));
        assert!(matches!(
            parse_peers("1=h"),
            Err(ConfigError::PeerSyntax { .. })
        ));
        assert_eq!(
            parse_peers("1=h:1,1=h:2"),
            Err(ConfigError::DuplicatePeer { id: 1 })
        );
        assert_eq!(parse_peers(""), Err(ConfigError::NoPeers));
    }

    /// Goal: every timer a clock fires has a positive duration from the node's flags, and the
    /// controller's `Heartbeat(b)` (fired by a message) has none.
    #[test]
    fn every_timer_kind_has_its_duration() {
        let timing = Timing::default();
        for timer in [
            Timer::Lag(2),
            Timer::Expire(2),
            Timer::FetchRetry,
            Timer::FetchBackoff,
            Timer::ParkedRelease(2),
            Timer::BrokerHeartbeat,
        ] {
            let duration = timing.duration(&timer);
            assert!(duration.is_some_and(|d| !d.is_zero()), "{timer:?}");
        }
        assert_eq!(timing.duration(&Timer::Heartbeat(2)), None);
        assert_eq!(
            timing.duration(&Timer::ParkedRelease(3)),
            Some(timing.fetch_max_wait)
        );
    }

    #[test]
    fn partition_nodes_parse_round_trip_and_are_checked() {
        let text = "2/0=127.0.0.1:9100,1=127.0.0.1:9101,2=127.0.0.1:9102";
        let nodes = PartitionNodes::parse(text).unwrap();
        assert_eq!(
            (nodes.index, nodes.controller.as_str()),
            (2, "127.0.0.1:9100")
        );
        assert_eq!(nodes.brokers.len(), 2);
        assert_eq!(nodes.format(), text);
        for bad in [
            "0=h:1,1=h:2",
            "0/0=h:1,1=h:2",
            "1/1=h:2",
            "1/0=h:1,0=h:3,1=h:2",
            "1/0=h,1=h:2",
            "1/0=h:1",
            "1/0=h:1,x=h:2",
        ] {
            let refused = PartitionNodes::parse(bad).unwrap_err();
            assert!(refused.to_string().contains("P/0=ADDR"), "{bad}: {refused}");
        }
        let brokers: BTreeSet<BrokerId> = [1, 2].into();
        let one = PartitionNodes::parse("1/0=h:1,1=h:2,2=h:3").unwrap();
        assert!(PartitionNodes::check_list(&[], &brokers).is_ok());
        assert!(PartitionNodes::check_list(std::slice::from_ref(&one), &brokers).is_ok());
        assert!(PartitionNodes::check_list(std::slice::from_ref(&nodes), &brokers).is_err());
        let other_brokers: BTreeSet<BrokerId> = [1, 3].into();
        assert!(PartitionNodes::check_list(std::slice::from_ref(&one), &other_brokers).is_err());
        let slot = |index: u32| PartitionNodes {
            index,
            ..one.clone()
        };
        let most: Vec<PartitionNodes> = (1..PARTITIONS_MAX).map(slot).collect();
        assert!(PartitionNodes::check_list(&most, &brokers).is_ok());
        let over: Vec<PartitionNodes> = (1..=PARTITIONS_MAX).map(slot).collect();
        assert!(PartitionNodes::check_list(&over, &brokers).is_err());
    }

    #[test]
    fn timing_relations_are_checked() {
        assert!(Timing::default().validate().is_ok());
        let timing = Timing {
            fetch_max_wait: Duration::from_secs(5),
            ..Timing::default()
        };
        assert!(timing.validate().is_err());
    }
}
