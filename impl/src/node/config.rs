//! Process configuration: what every node needs to know before it starts, and the parsing of
//! the command line's `1=ADDR,2=ADDR,...` peer lists.
//!
//! Addresses stay strings (`host:port`) until a connection is made, so a peer may be named by a
//! host name that resolves later; listening addresses are bound at start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::ProtocolConfig;
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
    fn timing_relations_are_checked() {
        assert!(Timing::default().validate().is_ok());
        let timing = Timing {
            fetch_max_wait: Duration::from_secs(5),
            ..Timing::default()
        };
        assert!(timing.validate().is_err());
    }
}
