//! Protocol messages, exactly as named in `docs/protocol.md` §3.
//!
//! These types travel on the wire (encoded by `wire::codec`), so changing a field is a
//! protocol change: bump `wire::handshake::PROTOCOL_VERSION`.
//!
//! Each channel has its own message type (docs/protocol.md §3): the peer channel between the
//! controller and the brokers and between brokers carries [`PeerMessage`]; the client channel
//! carries [`ClientRequest`] one way and [`ClientReply`] the other; the control channel used by
//! operators and the conformance harness carries [`Control`] / [`ControlReply`]. Each
//! connection is read as its channel's type only, so what a client writes reaches the core as
//! a client request or not at all.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A broker's id, `1..=N`.
pub type BrokerId = u32;
/// A log offset.
pub type Offset = u64;
/// A leader epoch or partition epoch.
pub type Epoch = u32;
/// A broker's epoch (KIP-903): how many times it restarted from its data directory, durable in
/// that directory. The first start is epoch 0.
pub type BrokerEpoch = u32;
/// A client record's identity as the protocol sees it: (producer id, sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId {
    pub producer_id: u64,
    pub sequence: u32,
}

impl RecordId {
    pub const fn new(producer_id: u64, sequence: u32) -> Self {
        RecordId {
            producer_id,
            sequence,
        }
    }
}

/// Who a node is talking to. The controller, a broker, or a client connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeId {
    Controller,
    Broker(BrokerId),
    Client(ClientId),
}

/// A client connection's id, as its handshake named it.
pub type ClientId = u64;

/// The other end of a peer channel: the controller or a broker, never a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerId {
    Controller,
    Broker(BrokerId),
}

impl From<PeerId> for NodeId {
    fn from(peer: PeerId) -> NodeId {
        match peer {
            PeerId::Controller => NodeId::Controller,
            PeerId::Broker(id) => NodeId::Broker(id),
        }
    }
}

/// A message the core asks the runtime to send, on the channel its type names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    Peer(PeerId, PeerMessage),
    Client(ClientId, ClientReply),
}

impl Outgoing {
    /// The channel it leaves on.
    pub fn target(&self) -> NodeId {
        match self {
            Outgoing::Peer(peer, _) => NodeId::from(*peer),
            Outgoing::Client(client, _) => NodeId::Client(*client),
        }
    }
}

/// A record as replicated: the storage record carries it (see `storage::record`).
pub use crate::storage::record::Record;

/// The partition's view: every change of leader or ISR is a new one (`partition_epoch` + 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct View {
    pub leader: Option<BrokerId>,
    pub leader_epoch: Epoch,
    pub isr: BTreeSet<BrokerId>,
    pub partition_epoch: Epoch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Acks {
    /// Acknowledge once appended by the leader.
    One,
    /// Acknowledge once committed (below the high watermark).
    All,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterPartitionError {
    FencedLeaderEpoch,
    InvalidUpdateVersion,
    IneligibleReplica,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchResult {
    Records {
        records: Vec<Record>,
        high_watermark: Offset,
    },
    DivergingEpoch {
        epoch: Epoch,
        end_offset: Offset,
    },
    OffsetOutOfRange {
        log_end_offset: Offset,
    },
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    NotLeader,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetsForLeaderEpochResult {
    Ok { epoch: Epoch, end_offset: Offset },
    NotLeader,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProduceResult {
    /// `offset` is the offset of the batch's first record.
    Ok {
        offset: Offset,
    },
    NotLeader,
    /// Refused before the append: acks=all and the ISR is below `min_insync_replicas`.
    NotEnoughReplicas,
    /// The batch was appended and the HW passed it, but by then the ISR the HW was computed
    /// over (view ISR ∪ pending ISR) had fewer than `min_insync_replicas` members: not
    /// acknowledged. Retriable: the retry is recognised as a duplicate (Kafka's
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`).
    NotEnoughReplicasAfterAppend,
    /// Implementation only (the model has no sequences): the batch neither continues the
    /// producer's sequence nor repeats a batch already in the log. `expected` is the next
    /// sequence the leader would accept.
    OutOfOrderSequence {
        expected: u32,
    },
    /// Implementation only: the leader already holds `core::WAITING_REQUESTS_MAX` acks=all
    /// requests; nothing was appended, retry later.
    Overloaded,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumeResult {
    Ok {
        records: Vec<Record>,
        high_watermark: Offset,
    },
    NotLeader,
}

/// The messages of the peer channel: controller ↔ broker and broker ↔ broker
/// (docs/protocol.md §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    // controller -> broker
    LeaderAndIsr(View),
    AlterPartitionResponse {
        result: Result<View, AlterPartitionError>,
    },
    // broker -> controller
    AlterPartition {
        isr: BTreeSet<BrokerId>,
        leader_epoch: Epoch,
        partition_epoch: Epoch,
        /// `(broker, broker_epoch)` of each *added* member, as of its last fetch (KIP-903).
        broker_epochs: Vec<(BrokerId, BrokerEpoch)>,
    },
    /// Sent by a broker when it (re)starts from its data directory, with its new broker epoch.
    RegisterBroker {
        broker_epoch: BrokerEpoch,
    },
    /// Real-time liveness only (never in stepped mode): "I am alive". The controller's answer
    /// is the current view, sent as `LeaderAndIsr` when the broker's view is older; from a
    /// fenced broker at its registered `broker_epoch` it is the controller's `Heartbeat(b)`
    /// timer (the broker was falsely suspected and comes back, §4.10).
    Heartbeat {
        partition_epoch: Epoch,
        broker_epoch: BrokerEpoch,
    },
    // controller -> broker (registration)
    /// The registration is processed; views from now on are for this incarnation.
    RegisterBrokerResponse,
    // broker -> broker
    Fetch {
        leader_epoch: Epoch,
        fetch_offset: Offset,
        last_fetched_epoch: Epoch,
        /// The follower's broker epoch (KIP-903).
        broker_epoch: BrokerEpoch,
    },
    /// `leader_epoch` and `fetch_offset` echo the request: a follower applies only the answer
    /// to the fetch it would send now.
    FetchResponse {
        leader_epoch: Epoch,
        fetch_offset: Offset,
        result: FetchResult,
    },
    OffsetsForLeaderEpoch {
        requested_epoch: Epoch,
    },
    OffsetsForLeaderEpochResponse {
        result: OffsetsForLeaderEpochResult,
    },
}

/// What a client asks of a broker (docs/protocol.md §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// A batch: the records' ids are consecutive sequences of one producer, starting at
    /// `first_sequence`.
    Produce {
        producer_id: u64,
        first_sequence: u32,
        #[serde(with = "crate::storage::value_bytes::many")]
        values: Vec<Vec<u8>>,
        acks: Acks,
    },
    Consume {
        fetch_offset: Offset,
        max_records: u32,
    },
}

/// A broker's answer to a client (docs/protocol.md §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// Echoes the request's `producer_id` and `first_sequence`.
    ProduceResponse {
        producer_id: u64,
        first_sequence: u32,
        result: ProduceResult,
    },
    ConsumeResponse {
        result: ConsumeResult,
    },
}

impl PeerMessage {
    /// The message's name, for error reports.
    pub fn name(&self) -> &'static str {
        match self {
            PeerMessage::LeaderAndIsr(_) => "LeaderAndIsr",
            PeerMessage::AlterPartitionResponse { .. } => "AlterPartitionResponse",
            PeerMessage::AlterPartition { .. } => "AlterPartition",
            PeerMessage::RegisterBroker { .. } => "RegisterBroker",
            PeerMessage::Heartbeat { .. } => "Heartbeat",
            PeerMessage::RegisterBrokerResponse => "RegisterBrokerResponse",
            PeerMessage::Fetch { .. } => "Fetch",
            PeerMessage::FetchResponse { .. } => "FetchResponse",
            PeerMessage::OffsetsForLeaderEpoch { .. } => "OffsetsForLeaderEpoch",
            PeerMessage::OffsetsForLeaderEpochResponse { .. } => "OffsetsForLeaderEpochResponse",
        }
    }
}

/// Timers, named as in the model (docs/protocol.md §4). In stepped mode only the harness fires
/// them; in real-time mode the node's clock does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Leader: follower `f` fell behind for longer than the lag window.
    Lag(BrokerId),
    /// Controller: broker `b`'s session expired.
    Expire(BrokerId),
    /// Controller: fenced broker `b`, which was never down, heartbeats again (its expiry was a
    /// false suspicion); handled like a registration at its registered broker epoch. Armed for
    /// every fenced broker; in real time a `Heartbeat` message fires it.
    Heartbeat(BrokerId),
    // Broker timers that end a wait (docs/protocol.md §4.12).
    /// Follower: the request in flight got no answer in time; send it again.
    FetchRetry,
    /// Follower: stopped by a fencing answer; fetch from the leader again.
    FetchBackoff,
    /// Leader: the fetch parked from follower `f` waited long enough; answer it now.
    ParkedRelease(BrokerId),
    /// Broker: send the controller a heartbeat (distinct from the controller's `Heartbeat(b)`,
    /// which that heartbeat fires when b is fenced).
    BrokerHeartbeat,
    /// Broker: fsync the log up to its end; armed while the durable end offset is below the
    /// log end offset (only under `fsync = lazy`, since `always` fsyncs every append).
    Flush,
    /// Broker: write the HW checkpoint; armed while it differs from the HW in memory.
    HwCheckpoint,
}

impl Timer {
    /// The timer's kind: its name without the broker id, as in docs/protocol.md §6.
    pub fn kind(&self) -> &'static str {
        match self {
            Timer::Lag(_) => "Lag",
            Timer::Expire(_) => "Expire",
            Timer::Heartbeat(_) => "Heartbeat",
            Timer::FetchRetry => "FetchRetry",
            Timer::FetchBackoff => "FetchBackoff",
            Timer::ParkedRelease(_) => "ParkedRelease",
            Timer::BrokerHeartbeat => "BrokerHeartbeat",
            Timer::Flush => "Flush",
            Timer::HwCheckpoint => "HwCheckpoint",
        }
    }
}

/// Every timer kind of the cores ([`Timer::kind`]), for coverage and fire counts.
pub const TIMER_KINDS: &[&str] = &[
    "Lag",
    "Expire",
    "Heartbeat",
    "FetchRetry",
    "FetchBackoff",
    "ParkedRelease",
    "BrokerHeartbeat",
    "Flush",
    "HwCheckpoint",
];

/// Requests on the control channel (operators, `cluster`, and the conformance harness).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Report observable state.
    Inspect,
    /// Fire one armed timer (stepped mode). Firing an unarmed timer is an error reply.
    FireTimer(Timer),
    /// Answer once the node has processed at least `received[src]` protocol frames from each
    /// named inbound channel (the harness counts what it delivered), with the number of
    /// protocol frames the node has emitted so far on each outbound channel. Inputs arrive on
    /// different sockets, so "everything sent before this request" cannot be inferred from
    /// arrival order; the counts make the barrier exact.
    Barrier { received: BTreeMap<NodeId, u64> },
    /// Where the partition's leader is: the node's view and the addresses it knows. Clients
    /// use it to find the leader from any bootstrap node (broker or controller).
    Metadata,
    /// Stop gracefully.
    Shutdown,
    /// The cluster's topic table (docs/protocol.md §7). Served by the controller process,
    /// which owns the table; brokers ask it to learn new topics. Open to anyone, as Metadata.
    Topics,
    /// Create a topic of `partitions` partitions on free partition slots, persisting the table
    /// before the answer; with `validate_only`, only say whether it could be. Served by the
    /// controller process; open to anyone, as CreateTopics is on Kafka's port (docs/runtime.md).
    CreateTopic {
        name: String,
        partitions: u32,
        validate_only: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlReply {
    Inspect(Snapshot),
    TimerFired,
    TimerNotArmed(Timer),
    /// `emitted` counts every protocol frame handed to an outbound channel, including those
    /// then dropped; `dropped` counts those of them that were discarded instead of being
    /// queued, because the channel's bounded queue was full (its peer unreachable for long) or
    /// the client connection was gone. Frames queued while a peer is down are delivered on
    /// reconnect. A frame written to a socket that then breaks is lost like a TCP segment
    /// and is not counted as dropped.
    Barrier {
        emitted: BTreeMap<NodeId, u64>,
        dropped: BTreeMap<NodeId, u64>,
    },
    Metadata(Metadata),
    ShuttingDown,
    /// Answer to `Topics`.
    Topics(crate::kafka::topic_table::TopicTable),
    /// Answer to `CreateTopic`: created (or, validate only, creatable); the table after it.
    TopicCreated(crate::kafka::topic_table::TopicTable),
    /// Answer to `CreateTopic`: not created, and why.
    TopicRefused(crate::kafka::topic_table::TopicRefusal),
    /// The node will not do this for this caller (docs/runtime.md, "Who can do what").
    Refused(ControlRefusal),
}

/// Why a control request was refused; the connection stays open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControlRefusal {
    /// `Inspect`, `Shutdown`, `FireTimer` and `Barrier` need the operator's credential.
    #[error("{request} needs the operator's control token (presented in the control handshake)")]
    OperatorOnly { request: String },
    /// `FireTimer` and `Barrier` exist for the conformance harness: a node in real time runs
    /// its own clocks, and a timer fired from outside would fence or shrink on command.
    #[error(
        "{request} is only served by a node started with --stepped; this one runs in real time"
    )]
    SteppedOnly { request: String },
    /// `Topics` and `CreateTopic` are served by the controller process's own listener (slot
    /// 0's), which owns the topic table; a broker or another slot's core has none.
    #[error("{request} is served by the controller process at its --listen address, not here")]
    NoTopicTable { request: String },
}

/// Answer to `Control::Metadata`. The view may be stale (a broker's last installed one);
/// clients retry on `NotLeader`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The node that answered.
    pub node: NodeId,
    pub view: Option<View>,
    /// Every broker's address as configured on this node (including its own).
    pub brokers: BTreeMap<BrokerId, String>,
    /// The controller's address, when this node knows it.
    pub controller: Option<String>,
}

/// Observable state, with the model's field names (docs/protocol.md §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Snapshot {
    Controller(ControllerSnapshot),
    Broker(BrokerSnapshot),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerSnapshot {
    pub view: View,
    pub fenced: BTreeSet<BrokerId>,
    pub elr: BTreeSet<BrokerId>,
    /// The last known leader (`kip-966` only, §4.10).
    pub last_known_leader: Option<BrokerId>,
    /// Each broker's epoch from its last registration (absent: 0, never restarted).
    pub broker_epochs: BTreeMap<BrokerId, BrokerEpoch>,
    pub armed_timers: BTreeSet<Timer>,
    /// How many times each timer kind has fired in this process, by [`Timer::kind`].
    pub timers_fired: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub fetch_offset: Option<Offset>,
    pub hw_sent: Offset,
    pub parked: bool,
    /// The broker epoch of the follower's last fetch (KIP-903).
    pub broker_epoch: BrokerEpoch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchState {
    Idle,
    Truncating,
    Fetching,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerSnapshot {
    pub id: BrokerId,
    /// How many times it restarted (KIP-903).
    pub broker_epoch: BrokerEpoch,
    /// False from a restart until the controller's `RegisterBrokerResponse`.
    pub registered: bool,
    pub view: Option<View>,
    /// `(offset, leader_epoch, record_id)` for every record.
    pub log: Vec<(Offset, Epoch, RecordId)>,
    pub log_end_offset: Offset,
    pub hw: Offset,
    /// The log end offset as of the last fsync: what a crash now keeps.
    pub durable_end_offset: Offset,
    /// The HW as last written to the checkpoint.
    pub hw_checkpoint: Offset,
    /// Leader only.
    pub leader_epoch_start_offset: Option<Offset>,
    pub replicas: BTreeMap<BrokerId, ReplicaProgress>,
    pub pending_isr: Option<BTreeSet<BrokerId>>,
    /// acks=all produce requests waiting for the HW: (record, offset).
    pub waiting: Vec<(RecordId, Offset)>,
    /// Follower only.
    pub fetch_state: FetchState,
    pub armed_timers: BTreeSet<Timer>,
    /// How many times each timer kind has fired in this process, by [`Timer::kind`].
    pub timers_fired: BTreeMap<String, u64>,
}
