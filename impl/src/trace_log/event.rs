//! One trace record: an input the core handled and what it produced.
//!
//! The state after an input is the core's snapshot with the log left out: the validator
//! rebuilds the log from the start record (what recovery read from disk) and the writes, and
//! checks its length against the snapshot's `log_end_offset`, which the storage reports. So a
//! record's size does not grow with the log, and a run of thousands of records stays linear.
//! Record payloads are not recorded (values are left empty in recorded messages and writes):
//! the model does not read them.

use serde::{Deserialize, Serialize};

use crate::core::{ProtocolConfig, Write};
use crate::protocol::{
    ClientReply, ClientRequest, ConsumeResult, ControllerSnapshot, Epoch, FetchResult, NodeId,
    Offset, Outgoing, PeerMessage, Record, RecordId, Timer,
};

/// The first record of every incarnation's part of a log: who wrote it and under which rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub node: NodeId,
    pub protocol: ProtocolConfig,
    /// `lazy` or `always`: the brokers' fsync policy.
    pub fsync_always: bool,
}

/// What the core handled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// The process started (a fresh start or a restart: the node's state says which). For a
    /// broker the state after it carries the whole recovered log (`NodeState::Broker::log`),
    /// which is what recovery found.
    Start(TraceHeader),
    /// A protocol message from `from`; `received` counts the messages from `from` this
    /// incarnation handled before it (the receiver's side of the channel's sequence).
    Message {
        from: NodeId,
        received: u64,
        message: TracedMessage,
    },
    /// A timer whose deadline passed (or the clean stop's `Flush` and `HwCheckpoint`).
    Timer(Timer),
    /// The process stopped cleanly; no record of this incarnation follows. An incarnation
    /// without one ended in a crash.
    Stop,
    /// `lost` records were not kept here because the writer's queue was full: the log is
    /// incomplete from this point on.
    Gap { lost: u64 },
    /// The log reached its size bound: recording stopped here.
    Full { bytes: u64 },
}

/// A storage write, as the core issued it, without payloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogWrite {
    /// `(offset, leader_epoch, record id)` of each appended record.
    Append(Vec<(Offset, Epoch, RecordId)>),
    TruncateTo(Offset),
    Flush,
    CheckpointHighWatermark(Offset),
}

impl LogWrite {
    pub fn of(write: &Write) -> Self {
        match write {
            Write::Append(records) => LogWrite::Append(records.iter().map(summary).collect()),
            Write::TruncateTo(offset) => LogWrite::TruncateTo(*offset),
            Write::Flush => LogWrite::Flush,
            Write::CheckpointHighWatermark(hw) => LogWrite::CheckpointHighWatermark(*hw),
        }
    }
}

fn summary(record: &Record) -> (Offset, Epoch, RecordId) {
    let id = RecordId {
        producer_id: record.producer_id,
        sequence: record.sequence,
    };
    (record.offset, record.leader_epoch, id)
}

/// The state after an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    Controller(ControllerSnapshot),
    /// The broker's snapshot; its `log` is empty except in a `Start` record (see module doc).
    Broker(Box<crate::protocol::BrokerSnapshot>),
}

/// One record of a trace log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in this node's log, over all its incarnations: 0, 1, 2, ...
    pub index: u64,
    pub input: Input,
    /// Messages handed to the network, in order, each with its sender-side sequence number on
    /// its channel (how many this incarnation had sent to that destination before it).
    pub sent: Vec<(NodeId, u64, TracedMessage)>,
    pub writes: Vec<LogWrite>,
    /// `None` for `Stop`, `Gap` and `Full`.
    pub state: Option<NodeState>,
}

/// A message of any of the three channels (docs/protocol.md §3), payloads left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracedMessage {
    Peer(PeerMessage),
    Request(ClientRequest),
    Reply(ClientReply),
}

fn strip(records: &[Record]) -> Vec<Record> {
    let empty = |r: &Record| Record {
        value: Vec::new(),
        ..r.clone()
    };
    records.iter().map(empty).collect()
}

impl TracedMessage {
    pub fn of_peer(message: &PeerMessage) -> Self {
        TracedMessage::Peer(match message {
            PeerMessage::FetchResponse {
                leader_epoch,
                fetch_offset,
                result:
                    FetchResult::Records {
                        records,
                        high_watermark,
                    },
            } => PeerMessage::FetchResponse {
                leader_epoch: *leader_epoch,
                fetch_offset: *fetch_offset,
                result: FetchResult::Records {
                    records: strip(records),
                    high_watermark: *high_watermark,
                },
            },
            other => other.clone(),
        })
    }

    pub fn of_request(request: &ClientRequest) -> Self {
        TracedMessage::Request(match request {
            ClientRequest::Produce {
                producer_id,
                first_sequence,
                values,
                acks,
            } => ClientRequest::Produce {
                producer_id: *producer_id,
                first_sequence: *first_sequence,
                values: vec![Vec::new(); values.len()],
                acks: *acks,
            },
            other => other.clone(),
        })
    }

    pub fn of_reply(reply: &ClientReply) -> Self {
        TracedMessage::Reply(match reply {
            ClientReply::ConsumeResponse {
                result:
                    ConsumeResult::Ok {
                        records,
                        high_watermark,
                    },
            } => ClientReply::ConsumeResponse {
                result: ConsumeResult::Ok {
                    records: strip(records),
                    high_watermark: *high_watermark,
                },
            },
            other => other.clone(),
        })
    }

    /// An outgoing message's channel and content.
    pub fn of_outgoing(outgoing: &Outgoing) -> (NodeId, Self) {
        match outgoing {
            Outgoing::Peer(peer, message) => (NodeId::from(*peer), Self::of_peer(message)),
            Outgoing::Client(client, reply) => (NodeId::Client(*client), Self::of_reply(reply)),
        }
    }
}
