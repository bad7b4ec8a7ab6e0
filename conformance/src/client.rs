//! The harness plays the model's client actor (docs/protocol.md §4.11).
//!
//! It is a client of the real brokers like any other: its requests go into the router on the
//! `(client, broker)` channel and reach the broker over a client connection when a trace step
//! delivers them; the broker's answers come back on the same connection and wait on the
//! `(broker, client)` channel until a step delivers them to this client.
//!
//! Its state is kept in the model's own `ClientState` type (plain data, the model's field
//! names) but computed here, from §4.11 and the real answers, not by the model's code: the
//! comparison with the model's client state then checks what the brokers told the client.

use insync_model::client::{ClientState, Request};
use insync_model::config::Config;
use insync_model::msg::{ClientReply, ClientRequest, ConsumeResult, ProduceResult};
use insync_model::types::{BrokerId, Offset};

/// The client's initial state: nothing produced, nothing in flight.
pub fn initial() -> ClientState {
    ClientState {
        next_record: 1,
        in_flight: None,
        acked: Vec::new(),
        read: Vec::new(),
    }
}

/// `Produce(b)` fired: when idle and records remain, the next record's request to `broker`.
pub fn produce(cfg: &Config, state: &mut ClientState, broker: BrokerId) -> Option<ClientRequest> {
    if state.in_flight.is_some() || state.next_record > u32::from(cfg.records) {
        return None;
    }
    let record_id = state.next_record;
    state.in_flight = Some(Request::Produce { broker, record_id });
    Some(ClientRequest::Produce {
        record_id,
        acks: cfg.acks,
    })
}

/// `Consume(b)` fired: when idle, read from offset 0.
pub fn consume(state: &mut ClientState, broker: BrokerId) -> Option<ClientRequest> {
    if state.in_flight.is_some() {
        return None;
    }
    state.in_flight = Some(Request::Consume { broker });
    Some(ClientRequest::Consume { fetch_offset: 0 })
}

/// An answer from `from` reached the client. Answers to no request in flight are stale and
/// change nothing (a deposed leader's `NotLeader` for a produce it had parked, say).
pub fn on_response(state: &mut ClientState, from: BrokerId, reply: &ClientReply) {
    match (state.in_flight, reply) {
        (
            Some(Request::Produce { broker, record_id }),
            ClientReply::ProduceResponse {
                record_id: answered,
                result,
            },
        ) if broker == from && record_id == *answered => {
            state.in_flight = None;
            match result {
                ProduceResult::Ok { .. } => {
                    state.acked.push(record_id);
                    state.next_record += 1;
                }
                // On an error the same record is retried later.
                ProduceResult::NotLeader
                | ProduceResult::NotEnoughReplicas
                | ProduceResult::NotEnoughReplicasAfterAppend => {}
            }
        }
        (Some(Request::Consume { broker }), ClientReply::ConsumeResponse { result })
            if broker == from =>
        {
            state.in_flight = None;
            match result {
                ConsumeResult::Ok { records, .. } => {
                    for (offset, record) in records.iter().enumerate() {
                        let entry = (offset as Offset, record.record_id);
                        if let Err(at) = state.read.binary_search(&entry) {
                            state.read.insert(at, entry);
                        }
                    }
                }
                ConsumeResult::NotLeader => {}
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::types::Record;

    /// Goal: a produce is in flight until its answer; `Ok` moves on and records the ack.
    #[test]
    fn produce_then_ack() {
        let cfg = Config::new(2);
        let mut state = initial();
        let request = produce(&cfg, &mut state, BrokerId(1)).expect("idle");
        assert!(matches!(
            request,
            ClientRequest::Produce { record_id: 1, .. }
        ));
        assert!(
            produce(&cfg, &mut state, BrokerId(2)).is_none(),
            "one in flight"
        );
        let stale = ClientReply::ProduceResponse {
            record_id: 1,
            result: ProduceResult::Ok { offset: 0 },
        };
        on_response(&mut state, BrokerId(2), &stale);
        assert!(
            state.in_flight.is_some(),
            "answer from another broker is stale"
        );
        on_response(&mut state, BrokerId(1), &stale);
        assert_eq!((state.next_record, state.acked.clone()), (2, vec![1]));
    }

    /// Goal: consumed records are kept sorted and deduplicated.
    #[test]
    fn consume_records_read() {
        let mut state = initial();
        consume(&mut state, BrokerId(1)).expect("idle");
        let record = Record {
            leader_epoch: 1,
            record_id: 1,
        };
        let answer = ClientReply::ConsumeResponse {
            result: ConsumeResult::Ok {
                records: vec![record],
                high_watermark: 1,
            },
        };
        on_response(&mut state, BrokerId(1), &answer);
        assert_eq!(state.read, vec![(0, 1)]);
        assert!(state.in_flight.is_none());
    }
}
