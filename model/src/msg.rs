//! Protocol messages and timers, named exactly as in docs/protocol.md §3.
//!
//! Channels are FIFO per (sender, receiver), like TCP (`Network::new_ordered`). Responses echo
//! what the receiver needs to match them to its one request in flight: `FetchResponse` echoes
//! the request's `leader_epoch` (KIP-320 fencing) and `fetch_offset` (a follower applies only
//! the answer to the fetch it would send now, as Kafka's fetcher does), `ProduceResponse` the
//! `record_id`.

use crate::config::Acks;
use crate::types::{BrokerId, BrokerSet, Epoch, Offset, Record, RecordId, View};
use serde::Serialize;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};

/// Every message of the protocol, by channel (docs/protocol.md §3). Stateright's actors share
/// one message type, so this is the sum of the channels; each actor builds only its own kind.
/// Serialised as the message itself (`untagged`): the channel is implied by the message's name,
/// so traces and reports read `{"Fetch": ..}`, as docs/protocol.md names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Msg {
    /// Controller ↔ broker and broker ↔ broker.
    Peer(PeerMsg),
    /// Client → broker.
    Request(ClientRequest),
    /// Broker → client.
    Reply(ClientReply),
}

/// The messages between the controller and the brokers, and between brokers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PeerMsg {
    /// Controller → broker: install this view.
    LeaderAndIsr(View),
    /// Controller → leader: the answer to its `AlterPartition`.
    AlterPartitionResponse { result: AlterPartitionResult },
    /// Leader → controller: propose a new ISR.
    AlterPartition {
        isr: BrokerSet,
        leader_epoch: Epoch,
        partition_epoch: Epoch,
        /// The broker epoch each *added* member fetched with (KIP-903).
        broker_epochs: Vec<(BrokerId, u8)>,
    },
    /// Broker → controller: sent when it (re)starts from its data directory, with its new
    /// broker epoch (KRaft's registration; the model counts restarts).
    RegisterBroker { broker_epoch: u8 },
    /// Controller → broker: the registration is processed; views from now on are for this
    /// incarnation.
    RegisterBrokerResponse,
    /// Follower → leader.
    Fetch {
        leader_epoch: Epoch,
        fetch_offset: Offset,
        last_fetched_epoch: Epoch,
        /// The follower's broker epoch (KIP-903).
        broker_epoch: u8,
    },
    /// Leader → follower; `leader_epoch` and `fetch_offset` echo the request.
    FetchResponse {
        leader_epoch: Epoch,
        fetch_offset: Offset,
        result: FetchResult,
    },
    /// Follower → leader (`kip-101`, `kip-279`).
    OffsetsForLeaderEpoch { requested_epoch: Epoch },
    /// Leader → follower (`kip-101`, `kip-279`).
    OffsetsForLeaderEpochResponse { result: OffsetsForLeaderEpochResult },
}

/// What a client asks of a broker.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ClientRequest {
    Produce { record_id: RecordId, acks: Acks },
    Consume { fetch_offset: Offset },
}

/// A broker's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ClientReply {
    /// Echoes the request's `record_id`.
    ProduceResponse {
        record_id: RecordId,
        result: ProduceResult,
    },
    ConsumeResponse {
        result: ConsumeResult,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum AlterPartitionResult {
    Ok(View),
    FencedLeaderEpoch,
    InvalidUpdateVersion,
    IneligibleReplica,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FetchResult {
    /// Records from the request's `fetch_offset` on, and the leader's HW.
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

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum OffsetsForLeaderEpochResult {
    Ok { epoch: Epoch, end_offset: Offset },
    NotLeader,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ProduceResult {
    Ok {
        offset: Offset,
    },
    NotLeader,
    /// Refused before the append: the ISR is below `min_insync_replicas` (acks=all only).
    NotEnoughReplicas,
    /// Appended, and the HW passed it, but by then the ISR the HW was computed over had fewer
    /// than `min_insync_replicas` members: not acknowledged (Kafka's
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, retriable; the retry is deduplicated).
    NotEnoughReplicasAfterAppend,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ConsumeResult {
    /// Records from `fetch_offset` up to (not including) the HW.
    Ok {
        records: Vec<Record>,
        high_watermark: Offset,
    },
    NotLeader,
}

/// Timers carry no time; any armed timer may fire (docs/protocol.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Timer {
    /// Leader: follower `f` fell behind for longer than the lag window (§4.8).
    Lag(BrokerId),
    /// Controller: broker `b`'s session expired (§4.10).
    Expire(BrokerId),
    /// Controller: a heartbeat arrives from broker `b`, which is fenced but was never down (its
    /// expiry was a false suspicion); handled like a registration with its current broker
    /// epoch (§4.10). Budgeted by `Config::rejoins`.
    Heartbeat(BrokerId),
    /// Client: send the next record's `Produce` to broker `b` (§4.11).
    Produce(BrokerId),
    /// Client: send `Consume` to broker `b` (§4.11).
    Consume(BrokerId),
    // Broker timers that end a wait (§4.12), budgeted together by `Config::retries`.
    /// Follower: the request in flight got no answer in time; send it again.
    FetchRetry,
    /// Follower: stopped by a fencing answer; fetch from the leader again.
    FetchBackoff,
    /// Leader: answer the fetch parked from follower `f` now.
    ParkedRelease(BrokerId),
    /// Broker, `fsync = lazy`: make the log durable up to the LEO; armed while the durable end
    /// `flushed` is below the LEO (§2).
    Flush,
    /// Broker: save the HW checkpoint; armed while it differs from the HW in memory (§2).
    HwCheckpoint,
}

/// The timer kind names ([`Timer::kind`]), for coverage reports.
pub const TIMER_KINDS: [&str; 10] = [
    "Lag",
    "Expire",
    "Heartbeat",
    "Produce",
    "Consume",
    "FetchRetry",
    "FetchBackoff",
    "ParkedRelease",
    "Flush",
    "HwCheckpoint",
];

impl Timer {
    /// The timer's kind, one of [`TIMER_KINDS`]: its name without the broker id.
    pub fn kind(&self) -> &'static str {
        match self {
            Timer::Lag(_) => "Lag",
            Timer::Expire(_) => "Expire",
            Timer::Heartbeat(_) => "Heartbeat",
            Timer::Produce(_) => "Produce",
            Timer::Consume(_) => "Consume",
            Timer::FetchRetry => "FetchRetry",
            Timer::FetchBackoff => "FetchBackoff",
            Timer::ParkedRelease(_) => "ParkedRelease",
            Timer::Flush => "Flush",
            Timer::HwCheckpoint => "HwCheckpoint",
        }
    }
}

/// The message type names, for coverage reports: the peer messages, then the client's.
pub const MESSAGE_TYPES: [&str; 13] = [
    "LeaderAndIsr",
    "AlterPartitionResponse",
    "AlterPartition",
    "RegisterBroker",
    "RegisterBrokerResponse",
    "Fetch",
    "FetchResponse",
    "OffsetsForLeaderEpoch",
    "OffsetsForLeaderEpochResponse",
    "Produce",
    "ProduceResponse",
    "Consume",
    "ConsumeResponse",
];

impl Msg {
    /// The message's type name, one of [`MESSAGE_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            Msg::Peer(msg) => msg.type_name(),
            Msg::Request(ClientRequest::Produce { .. }) => "Produce",
            Msg::Request(ClientRequest::Consume { .. }) => "Consume",
            Msg::Reply(ClientReply::ProduceResponse { .. }) => "ProduceResponse",
            Msg::Reply(ClientReply::ConsumeResponse { .. }) => "ConsumeResponse",
        }
    }
}

impl PeerMsg {
    pub fn type_name(&self) -> &'static str {
        match self {
            PeerMsg::LeaderAndIsr(_) => "LeaderAndIsr",
            PeerMsg::AlterPartitionResponse { .. } => "AlterPartitionResponse",
            PeerMsg::AlterPartition { .. } => "AlterPartition",
            PeerMsg::RegisterBroker { .. } => "RegisterBroker",
            PeerMsg::RegisterBrokerResponse => "RegisterBrokerResponse",
            PeerMsg::Fetch { .. } => "Fetch",
            PeerMsg::FetchResponse { .. } => "FetchResponse",
            PeerMsg::OffsetsForLeaderEpoch { .. } => "OffsetsForLeaderEpoch",
            PeerMsg::OffsetsForLeaderEpochResponse { .. } => "OffsetsForLeaderEpochResponse",
        }
    }
}

impl From<PeerMsg> for Msg {
    fn from(msg: PeerMsg) -> Msg {
        Msg::Peer(msg)
    }
}

impl From<ClientRequest> for Msg {
    fn from(msg: ClientRequest) -> Msg {
        Msg::Request(msg)
    }
}

impl From<ClientReply> for Msg {
    fn from(msg: ClientReply) -> Msg {
        Msg::Reply(msg)
    }
}

/// Client messages name no broker; only peer messages are rewritten.
impl Rewrite<Id> for Msg {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            Msg::Peer(msg) => Msg::Peer(msg.rewrite(plan)),
            Msg::Request(_) | Msg::Reply(_) => self.clone(),
        }
    }
}

impl Rewrite<Id> for PeerMsg {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            PeerMsg::LeaderAndIsr(view) => PeerMsg::LeaderAndIsr(view.rewrite(plan)),
            PeerMsg::AlterPartitionResponse {
                result: AlterPartitionResult::Ok(view),
            } => PeerMsg::AlterPartitionResponse {
                result: AlterPartitionResult::Ok(view.rewrite(plan)),
            },
            PeerMsg::AlterPartition {
                isr,
                leader_epoch,
                partition_epoch,
                broker_epochs,
            } => PeerMsg::AlterPartition {
                isr: isr.rewrite(plan),
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                broker_epochs: broker_epochs
                    .iter()
                    .map(|(b, e)| (b.rewrite(plan), *e))
                    .collect(),
            },
            other => other.clone(),
        }
    }
}

impl Rewrite<Id> for Timer {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            Timer::Lag(b) => Timer::Lag(b.rewrite(plan)),
            Timer::Expire(b) => Timer::Expire(b.rewrite(plan)),
            Timer::Heartbeat(b) => Timer::Heartbeat(b.rewrite(plan)),
            Timer::Produce(b) => Timer::Produce(b.rewrite(plan)),
            Timer::Consume(b) => Timer::Consume(b.rewrite(plan)),
            Timer::FetchRetry => Timer::FetchRetry,
            Timer::FetchBackoff => Timer::FetchBackoff,
            Timer::ParkedRelease(f) => Timer::ParkedRelease(f.rewrite(plan)),
            Timer::Flush => Timer::Flush,
            Timer::HwCheckpoint => Timer::HwCheckpoint,
        }
    }
}
