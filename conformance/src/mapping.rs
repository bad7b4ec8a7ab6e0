//! The only translation between the model's vocabulary and the implementation's
//! (style.md "Message names"): actor ids ↔ node ids, messages, timers, views, records.
//!
//! Every `match` here is exhaustive with no `_` arm, so adding a message, a result or a timer
//! on either side fails to compile until it is mapped. Implementation-only detail (payloads,
//! producer ids, byte-level batching, `max_records`) is checked for consistency with what the
//! harness sent and then dropped here, nowhere else.
//!
//! Direction: frames the nodes emit are mapped *to* the model (`msg_from_impl`) and compared
//! with what the model emitted; the harness's own client requests are mapped *from* the model
//! (`msg_to_impl`), since the harness plays the model's client.

use std::collections::BTreeSet;

use insync_impl::core::Variant as ImplVariant;
use insync_impl::protocol as imp;
use insync_model::config::{Acks, Config, Variant};
use insync_model::msg::{self as model, ClientReply, ClientRequest, Msg, PeerMsg};
use insync_model::types::{BrokerId, BrokerSet, Record, RecordId, View};

use crate::router::Frame;
use stateright::actor::Id;

/// The producer id the harness's client uses; record id `r` is sequence `r`.
pub const HARNESS_PRODUCER_ID: u64 = 7;
/// The client id the harness's client names itself with (`NodeId::Client`).
pub const HARNESS_CLIENT_ID: u64 = 1;

/// Why an implementation value has no model counterpart: always a divergence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{what} = {value} does not fit the model's bounds")]
    OutOfRange { what: &'static str, value: u64 },
    #[error("implementation-only message in stepped mode: {0}")]
    ImplOnly(String),
    #[error("record {0} was not produced by the harness's client")]
    ForeignRecord(String),
    #[error("node {0:?} is not an actor of this model")]
    UnknownNode(imp::NodeId),
    #[error("actor {0} is not a node of this cluster")]
    UnknownActor(usize),
}

/// The payload the harness's client writes for record `r`: checked when records come back.
pub fn payload(record_id: RecordId) -> Vec<u8> {
    format!("record-{record_id}").into_bytes()
}

/// `value` in the model's (narrower) number type, or out of range.
fn small<T: TryFrom<u64>>(what: &'static str, value: u64) -> Result<T, MappingError> {
    T::try_from(value).map_err(|_| MappingError::OutOfRange { what, value })
}

// ---------------------------------------------------------------------------------------------
// Identities

/// Model actor index → node (docs/protocol.md §1).
pub fn node_of_actor(cfg: &Config, actor: Id) -> Result<imp::NodeId, MappingError> {
    let index = usize::from(actor);
    match index {
        0 => Ok(imp::NodeId::Controller),
        i if i <= cfg.brokers as usize => Ok(imp::NodeId::Broker(i as u32)),
        i if i == cfg.client_index() => Ok(imp::NodeId::Client(HARNESS_CLIENT_ID)),
        i => Err(MappingError::UnknownActor(i)),
    }
}

/// Node → model actor index.
pub fn actor_of_node(cfg: &Config, node: imp::NodeId) -> Result<Id, MappingError> {
    match node {
        imp::NodeId::Controller => Ok(Id::from(0)),
        imp::NodeId::Broker(b) if b >= 1 && b <= u32::from(cfg.brokers) => Ok(Id::from(b as usize)),
        imp::NodeId::Client(HARNESS_CLIENT_ID) => Ok(Id::from(cfg.client_index())),
        imp::NodeId::Broker(_) | imp::NodeId::Client(_) => Err(MappingError::UnknownNode(node)),
    }
}

pub fn broker_from_impl(b: imp::BrokerId) -> Result<BrokerId, MappingError> {
    Ok(BrokerId(small("broker id", u64::from(b))?))
}

pub fn variant_to_impl(variant: Variant) -> ImplVariant {
    match variant {
        Variant::Kip966 => ImplVariant::Kip966,
        Variant::Kip320 => ImplVariant::Kip320,
        Variant::Kip279 => ImplVariant::Kip279,
        Variant::Kip101 => ImplVariant::Kip101,
        Variant::HwTruncation => ImplVariant::HwTruncation,
    }
}

pub fn variant_from_impl(variant: ImplVariant) -> Variant {
    match variant {
        ImplVariant::Kip966 => Variant::Kip966,
        ImplVariant::Kip320 => Variant::Kip320,
        ImplVariant::Kip279 => Variant::Kip279,
        ImplVariant::Kip101 => Variant::Kip101,
        ImplVariant::HwTruncation => Variant::HwTruncation,
    }
}

pub fn acks_to_impl(acks: Acks) -> imp::Acks {
    match acks {
        Acks::All => imp::Acks::All,
        Acks::One => imp::Acks::One,
    }
}

pub fn acks_from_impl(acks: imp::Acks) -> Acks {
    match acks {
        imp::Acks::All => Acks::All,
        imp::Acks::One => Acks::One,
    }
}

// ---------------------------------------------------------------------------------------------
// Values

pub fn broker_set_from_impl(set: &BTreeSet<imp::BrokerId>) -> Result<BrokerSet, MappingError> {
    set.iter().try_fold(BrokerSet::empty(), |acc, b| {
        let b = broker_from_impl(*b)?;
        if (b.0 as usize) >= BrokerSet::CAPACITY {
            return Err(MappingError::OutOfRange {
                what: "broker id",
                value: u64::from(b.0),
            });
        }
        Ok(acc.with(b))
    })
}

pub fn view_from_impl(view: &imp::View) -> Result<View, MappingError> {
    Ok(View {
        leader: view.leader.map(broker_from_impl).transpose()?,
        leader_epoch: small("leader_epoch", u64::from(view.leader_epoch))?,
        isr: broker_set_from_impl(&view.isr)?,
        partition_epoch: small("partition_epoch", u64::from(view.partition_epoch))?,
    })
}

/// A record id as the harness's producer wrote it.
pub fn record_id_from_impl(id: &imp::RecordId) -> Result<RecordId, MappingError> {
    if id.producer_id != HARNESS_PRODUCER_ID {
        return Err(MappingError::ForeignRecord(format!("{id:?}")));
    }
    small("record sequence", u64::from(id.sequence))
}

/// A replicated record. Its offset is checked against `expected_offset` (the model's offsets
/// are positions) and its payload against what the harness produced, then both are dropped.
pub fn record_from_impl(
    record: &imp::Record,
    expected_offset: u64,
) -> Result<Record, MappingError> {
    let record_id = record_id_from_impl(&imp::RecordId {
        producer_id: record.producer_id,
        sequence: record.sequence,
    })?;
    if record.offset != expected_offset {
        return Err(MappingError::ForeignRecord(format!(
            "{record:?} at offset {} where offset {expected_offset} was expected",
            record.offset
        )));
    }
    if record.value != payload(record_id) {
        return Err(MappingError::ForeignRecord(format!(
            "{record:?}: payload is not the one produced for record {record_id}"
        )));
    }
    Ok(Record {
        leader_epoch: small("leader_epoch", u64::from(record.leader_epoch))?,
        record_id,
    })
}

/// Records that must start at `first_offset` and be consecutive.
pub fn records_from_impl(
    records: &[imp::Record],
    first_offset: u64,
) -> Result<Vec<Record>, MappingError> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| record_from_impl(r, first_offset + i as u64))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Messages

/// A frame a node emitted, as the model's message. `first_offset` is where records in it must
/// start: the model's `FetchResponse` and `ConsumeResponse` carry records from the request's
/// offset, which the harness knows from the request it delivered (see `replay`); `None`
/// skips the offset check (the records' own first offset is taken). Each channel's type maps
/// to the model's type for that channel.
pub fn msg_from_impl(frame: &Frame, first_offset: Option<u64>) -> Result<Msg, MappingError> {
    let start = |records: &[imp::Record]| {
        first_offset
            .or(records.first().map(|r| r.offset))
            .unwrap_or(0)
    };
    match frame {
        Frame::Peer(message) => peer_from_impl(message, &start).map(Msg::Peer),
        Frame::Request(request) => request_from_impl(request).map(Msg::Request),
        Frame::Reply(reply) => reply_from_impl(reply, &start).map(Msg::Reply),
    }
}

type Start<'a> = &'a dyn Fn(&[imp::Record]) -> u64;

fn peer_from_impl(message: &imp::PeerMessage, start: Start) -> Result<PeerMsg, MappingError> {
    Ok(match message {
        imp::PeerMessage::LeaderAndIsr(view) => PeerMsg::LeaderAndIsr(view_from_impl(view)?),
        imp::PeerMessage::AlterPartitionResponse { result } => PeerMsg::AlterPartitionResponse {
            result: alter_partition_result_from_impl(result)?,
        },
        imp::PeerMessage::AlterPartition {
            isr,
            leader_epoch,
            partition_epoch,
            broker_epochs,
        } => PeerMsg::AlterPartition {
            isr: broker_set_from_impl(isr)?,
            leader_epoch: small("leader_epoch", u64::from(*leader_epoch))?,
            partition_epoch: small("partition_epoch", u64::from(*partition_epoch))?,
            broker_epochs: broker_epochs
                .iter()
                .map(|(b, e)| Ok((broker_from_impl(*b)?, small("broker_epoch", u64::from(*e))?)))
                .collect::<Result<_, MappingError>>()?,
        },
        imp::PeerMessage::RegisterBroker { broker_epoch } => PeerMsg::RegisterBroker {
            broker_epoch: small("broker_epoch", u64::from(*broker_epoch))?,
        },
        imp::PeerMessage::RegisterBrokerResponse => PeerMsg::RegisterBrokerResponse,
        imp::PeerMessage::Heartbeat { .. } => {
            return Err(MappingError::ImplOnly(format!("{message:?}")));
        }
        imp::PeerMessage::Fetch {
            leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            broker_epoch,
        } => PeerMsg::Fetch {
            leader_epoch: small("leader_epoch", u64::from(*leader_epoch))?,
            fetch_offset: small("fetch_offset", *fetch_offset)?,
            last_fetched_epoch: small("last_fetched_epoch", u64::from(*last_fetched_epoch))?,
            broker_epoch: small("broker_epoch", u64::from(*broker_epoch))?,
        },
        imp::PeerMessage::FetchResponse {
            leader_epoch,
            fetch_offset,
            result,
        } => PeerMsg::FetchResponse {
            leader_epoch: small("leader_epoch", u64::from(*leader_epoch))?,
            fetch_offset: small("fetch_offset", *fetch_offset)?,
            result: fetch_result_from_impl(result, start)?,
        },
        imp::PeerMessage::OffsetsForLeaderEpoch { requested_epoch } => {
            PeerMsg::OffsetsForLeaderEpoch {
                requested_epoch: small("requested_epoch", u64::from(*requested_epoch))?,
            }
        }
        imp::PeerMessage::OffsetsForLeaderEpochResponse { result } => {
            PeerMsg::OffsetsForLeaderEpochResponse {
                result: epoch_result_from_impl(result)?,
            }
        }
    })
}

fn alter_partition_result_from_impl(
    result: &Result<imp::View, imp::AlterPartitionError>,
) -> Result<model::AlterPartitionResult, MappingError> {
    Ok(match result {
        Ok(view) => model::AlterPartitionResult::Ok(view_from_impl(view)?),
        Err(imp::AlterPartitionError::FencedLeaderEpoch) => {
            model::AlterPartitionResult::FencedLeaderEpoch
        }
        Err(imp::AlterPartitionError::InvalidUpdateVersion) => {
            model::AlterPartitionResult::InvalidUpdateVersion
        }
        Err(imp::AlterPartitionError::IneligibleReplica) => {
            model::AlterPartitionResult::IneligibleReplica
        }
    })
}

fn epoch_result_from_impl(
    result: &imp::OffsetsForLeaderEpochResult,
) -> Result<model::OffsetsForLeaderEpochResult, MappingError> {
    Ok(match result {
        imp::OffsetsForLeaderEpochResult::Ok { epoch, end_offset } => {
            model::OffsetsForLeaderEpochResult::Ok {
                epoch: small("epoch", u64::from(*epoch))?,
                end_offset: small("end_offset", *end_offset)?,
            }
        }
        imp::OffsetsForLeaderEpochResult::NotLeader => {
            model::OffsetsForLeaderEpochResult::NotLeader
        }
    })
}

fn request_from_impl(request: &imp::ClientRequest) -> Result<ClientRequest, MappingError> {
    Ok(match request {
        imp::ClientRequest::Produce {
            producer_id,
            first_sequence,
            values,
            acks,
        } => {
            let id = imp::RecordId {
                producer_id: *producer_id,
                sequence: *first_sequence,
            };
            let record_id = record_id_from_impl(&id)?;
            if values.len() != 1 || values[0] != payload(record_id) {
                return Err(MappingError::ForeignRecord(format!("{request:?}")));
            }
            ClientRequest::Produce {
                record_id,
                acks: acks_from_impl(*acks),
            }
        }
        imp::ClientRequest::Consume {
            fetch_offset,
            max_records: _,
        } => ClientRequest::Consume {
            fetch_offset: small("fetch_offset", *fetch_offset)?,
        },
    })
}

fn reply_from_impl(reply: &imp::ClientReply, start: Start) -> Result<ClientReply, MappingError> {
    Ok(match reply {
        imp::ClientReply::ProduceResponse {
            producer_id,
            first_sequence,
            result,
        } => {
            let id = imp::RecordId {
                producer_id: *producer_id,
                sequence: *first_sequence,
            };
            ClientReply::ProduceResponse {
                record_id: record_id_from_impl(&id)?,
                result: produce_result_from_impl(result, reply)?,
            }
        }
        imp::ClientReply::ConsumeResponse { result } => ClientReply::ConsumeResponse {
            result: match result {
                imp::ConsumeResult::Ok {
                    records,
                    high_watermark,
                } => model::ConsumeResult::Ok {
                    records: records_from_impl(records, start(records))?,
                    high_watermark: small("high_watermark", *high_watermark)?,
                },
                imp::ConsumeResult::NotLeader => model::ConsumeResult::NotLeader,
            },
        },
    })
}

fn fetch_result_from_impl(
    result: &imp::FetchResult,
    start: Start,
) -> Result<model::FetchResult, MappingError> {
    Ok(match result {
        imp::FetchResult::Records {
            records,
            high_watermark,
        } => model::FetchResult::Records {
            records: records_from_impl(records, start(records))?,
            high_watermark: small("high_watermark", *high_watermark)?,
        },
        imp::FetchResult::DivergingEpoch { epoch, end_offset } => {
            model::FetchResult::DivergingEpoch {
                epoch: small("epoch", u64::from(*epoch))?,
                end_offset: small("end_offset", *end_offset)?,
            }
        }
        imp::FetchResult::OffsetOutOfRange { log_end_offset } => {
            model::FetchResult::OffsetOutOfRange {
                log_end_offset: small("log_end_offset", *log_end_offset)?,
            }
        }
        imp::FetchResult::FencedLeaderEpoch => model::FetchResult::FencedLeaderEpoch,
        imp::FetchResult::UnknownLeaderEpoch => model::FetchResult::UnknownLeaderEpoch,
        imp::FetchResult::NotLeader => model::FetchResult::NotLeader,
    })
}

fn produce_result_from_impl(
    result: &imp::ProduceResult,
    reply: &imp::ClientReply,
) -> Result<model::ProduceResult, MappingError> {
    Ok(match result {
        imp::ProduceResult::Ok { offset } => model::ProduceResult::Ok {
            offset: small("offset", *offset)?,
        },
        imp::ProduceResult::NotLeader => model::ProduceResult::NotLeader,
        imp::ProduceResult::NotEnoughReplicas => model::ProduceResult::NotEnoughReplicas,
        imp::ProduceResult::NotEnoughReplicasAfterAppend => {
            model::ProduceResult::NotEnoughReplicasAfterAppend
        }
        imp::ProduceResult::OutOfOrderSequence { .. } | imp::ProduceResult::Overloaded => {
            return Err(MappingError::ImplOnly(format!("{reply:?}")));
        }
    })
}

/// A request of the model's client, as the harness sends it (the harness plays the client).
pub fn client_request_to_impl(request: &ClientRequest) -> imp::ClientRequest {
    match request {
        ClientRequest::Produce { record_id, acks } => imp::ClientRequest::Produce {
            producer_id: HARNESS_PRODUCER_ID,
            first_sequence: *record_id,
            values: vec![payload(*record_id)],
            acks: acks_to_impl(*acks),
        },
        ClientRequest::Consume { fetch_offset } => imp::ClientRequest::Consume {
            fetch_offset: u64::from(*fetch_offset),
            max_records: u32::MAX,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Timers

/// Who fires a model timer on real nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerTarget {
    /// A node's timer, fired with `Control::FireTimer`.
    Node(imp::Timer),
    /// A model timer with no implementation counterpart: firing it is reported as a
    /// divergence. None today (`Heartbeat(b)` has one since D5 closed).
    ModelOnly(model::Timer),
    /// The harness's client: it sends the request itself.
    ClientProduce(BrokerId),
    ClientConsume(BrokerId),
}

pub fn timer_to_impl(timer: &model::Timer) -> TimerTarget {
    match timer {
        model::Timer::Lag(f) => TimerTarget::Node(imp::Timer::Lag(u32::from(f.0))),
        model::Timer::Expire(b) => TimerTarget::Node(imp::Timer::Expire(u32::from(b.0))),
        model::Timer::Produce(b) => TimerTarget::ClientProduce(*b),
        model::Timer::Consume(b) => TimerTarget::ClientConsume(*b),
        model::Timer::Heartbeat(b) => TimerTarget::Node(imp::Timer::Heartbeat(u32::from(b.0))),
        // The timers that end a wait (protocol.md §4.12).
        model::Timer::FetchRetry => TimerTarget::Node(imp::Timer::FetchRetry),
        model::Timer::FetchBackoff => TimerTarget::Node(imp::Timer::FetchBackoff),
        model::Timer::ParkedRelease(f) => {
            TimerTarget::Node(imp::Timer::ParkedRelease(u32::from(f.0)))
        }
        // The broker's own durability timers (docs/protocol.md §2), fired on that broker.
        model::Timer::Flush => TimerTarget::Node(imp::Timer::Flush),
        model::Timer::HwCheckpoint => TimerTarget::Node(imp::Timer::HwCheckpoint),
    }
}

/// A node's armed timer in the model's name; `None` for an implementation-only timer that the
/// model abstracts away (protocol.md §6: `BrokerHeartbeat`, whose heartbeat only fires
/// controller timers the model fires by itself), which is left out of the comparison.
pub fn timer_from_impl(timer: &imp::Timer) -> Result<Option<model::Timer>, MappingError> {
    Ok(Some(match timer {
        imp::Timer::Lag(f) => model::Timer::Lag(broker_from_impl(*f)?),
        imp::Timer::Expire(b) => model::Timer::Expire(broker_from_impl(*b)?),
        imp::Timer::Heartbeat(b) => model::Timer::Heartbeat(broker_from_impl(*b)?),
        // The timers that end a wait (protocol.md §4.12).
        imp::Timer::FetchRetry => model::Timer::FetchRetry,
        imp::Timer::FetchBackoff => model::Timer::FetchBackoff,
        imp::Timer::ParkedRelease(f) => model::Timer::ParkedRelease(broker_from_impl(*f)?),
        imp::Timer::BrokerHeartbeat => return Ok(None),
        // The broker's own durability timers (docs/protocol.md §2).
        imp::Timer::Flush => model::Timer::Flush,
        imp::Timer::HwCheckpoint => model::Timer::HwCheckpoint,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, sequence: u32, epoch: u32) -> imp::Record {
        imp::Record {
            offset,
            leader_epoch: epoch,
            producer_id: HARNESS_PRODUCER_ID,
            sequence,
            value: payload(sequence),
        }
    }

    /// Goal: the client's requests survive the round trip model → impl → model.
    #[test]
    fn client_requests_round_trip() {
        for request in [
            ClientRequest::Produce {
                record_id: 3,
                acks: Acks::All,
            },
            ClientRequest::Consume { fetch_offset: 0 },
        ] {
            let sent = Frame::Request(client_request_to_impl(&request));
            assert_eq!(msg_from_impl(&sent, None).unwrap(), Msg::Request(request));
        }
    }

    /// Goal: records map by position; a wrong offset or payload is a mapping error.
    #[test]
    fn records_are_checked_then_reduced() {
        let records = vec![record(2, 1, 1), record(3, 2, 2)];
        let mapped = records_from_impl(&records, 2).unwrap();
        assert_eq!(
            mapped[1],
            Record {
                leader_epoch: 2,
                record_id: 2
            }
        );
        assert!(records_from_impl(&records, 0).is_err());
        let mut foreign = record(0, 1, 1);
        foreign.value = b"other".to_vec();
        assert!(records_from_impl(&[foreign], 0).is_err());
    }

    /// Goal: implementation-only answers have no model counterpart.
    #[test]
    fn impl_only_messages_are_errors() {
        let heartbeat = Frame::Peer(imp::PeerMessage::Heartbeat {
            partition_epoch: 1,
            broker_epoch: 0,
        });
        assert!(matches!(
            msg_from_impl(&heartbeat, None),
            Err(MappingError::ImplOnly(_))
        ));
        let overloaded = Frame::Reply(imp::ClientReply::ProduceResponse {
            producer_id: HARNESS_PRODUCER_ID,
            first_sequence: 1,
            result: imp::ProduceResult::Overloaded,
        });
        assert!(msg_from_impl(&overloaded, None).is_err());
    }
}
