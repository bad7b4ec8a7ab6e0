//! The client: one producer and consumer with one request in flight (docs/protocol.md §4.11).
//!
//! It produces records `1..=R` in order. When idle it may send the next record's `Produce` to
//! any broker (it does not know the leader, so every choice is explored); on an error it retries
//! the same record, which the leader deduplicates like Kafka's idempotent producer. It may also
//! read what is committed with `Consume { fetch_offset: 0 }` (the read budget is a fault-style
//! bound of the model, see `Config::reads`).

use crate::actor::{Emit, Out};
use crate::config::Config;
use crate::msg::{ClientReply, ClientRequest, ConsumeResult, Msg, ProduceResult, Timer};
use crate::types::{BrokerId, Offset, RecordId};
use serde::Serialize;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};

/// The request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Request {
    Produce {
        broker: BrokerId,
        record_id: RecordId,
    },
    Consume {
        broker: BrokerId,
    },
}

/// Field names as in docs/protocol.md §2.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ClientState {
    /// The next record id to produce; `R + 1` once all are acknowledged.
    pub next_record: RecordId,
    pub in_flight: Option<Request>,
    /// Record ids acknowledged (with the configured acks, all or 1), in order. The client's
    /// own account, which conformance compares with what real brokers answered; the
    /// properties judge the model's ghost history instead (`ghost.rs`).
    pub acked: Vec<RecordId>,
    /// Records a consumer was given: `(offset, record_id)`, sorted.
    pub read: Vec<(Offset, RecordId)>,
}

impl Rewrite<Id> for ClientState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        let in_flight = self.in_flight.map(|r| match r {
            Request::Produce { broker, record_id } => Request::Produce {
                broker: broker.rewrite(plan),
                record_id,
            },
            Request::Consume { broker } => Request::Consume {
                broker: broker.rewrite(plan),
            },
        });
        ClientState {
            in_flight,
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    pub cfg: Config,
}

impl Client {
    pub fn on_start(&self, out: &mut Out) -> ClientState {
        let state = ClientState {
            next_record: 1,
            in_flight: None,
            acked: Vec::new(),
            read: Vec::new(),
        };
        self.sync_timers(None, &state, out);
        state
    }

    fn armed(&self, state: &ClientState) -> Vec<Timer> {
        if state.in_flight.is_some() {
            return Vec::new();
        }
        let brokers = (1..=self.cfg.brokers).map(BrokerId);
        let mut timers: Vec<Timer> = Vec::new();
        if state.next_record <= RecordId::from(self.cfg.records) {
            timers.extend(brokers.clone().map(Timer::Produce));
        }
        timers.extend(brokers.map(Timer::Consume));
        timers
    }

    /// Idle: `Produce(b)` (while records remain) and `Consume(b)` for every broker b.
    pub fn sync_timers(&self, before: Option<&ClientState>, after: &ClientState, out: &mut Out) {
        let old = before.map(|s| self.armed(s)).unwrap_or_default();
        let new = self.armed(after);
        for t in new.iter().filter(|t| !old.contains(t)) {
            out.set_timer(*t, stateright::actor::model_timeout());
        }
        for t in old.iter().filter(|t| !new.contains(t)) {
            out.cancel_timer(*t);
        }
    }

    pub fn on_timeout(&self, state: &mut ClientState, timer: Timer, out: &mut Out) {
        if state.in_flight.is_some() {
            return;
        }
        match timer {
            Timer::Produce(broker) if state.next_record <= RecordId::from(self.cfg.records) => {
                let record_id = state.next_record;
                let acks = self.cfg.acks;
                out.send_request(broker.id(), ClientRequest::Produce { record_id, acks });
                state.in_flight = Some(Request::Produce { broker, record_id });
            }
            Timer::Consume(broker) => {
                out.send_request(broker.id(), ClientRequest::Consume { fetch_offset: 0 });
                state.in_flight = Some(Request::Consume { broker });
            }
            Timer::Produce(_)
            | Timer::Lag(_)
            | Timer::Expire(_)
            | Timer::Heartbeat(_)
            | Timer::FetchRetry
            | Timer::FetchBackoff
            | Timer::ParkedRelease(_)
            | Timer::Flush
            | Timer::HwCheckpoint => {}
        }
    }

    /// The client hears only replies; it matches one to its request in flight.
    pub fn on_msg(&self, state: &mut ClientState, src: Id, msg: Msg, _out: &mut Out) {
        let Msg::Reply(reply) = msg else {
            return;
        };
        let from = BrokerId::from_id(src);
        match (state.in_flight, reply) {
            (
                Some(Request::Produce { broker, record_id }),
                ClientReply::ProduceResponse {
                    record_id: answered,
                    result,
                },
            ) if broker == from && record_id == answered => {
                state.in_flight = None;
                if let ProduceResult::Ok { .. } = result {
                    state.acked.push(record_id);
                    state.next_record += 1;
                }
            }
            (Some(Request::Consume { broker }), ClientReply::ConsumeResponse { result })
                if broker == from =>
            {
                state.in_flight = None;
                if let ConsumeResult::Ok { records, .. } = result {
                    for (offset, record) in records.iter().enumerate() {
                        let entry = (offset as Offset, record.record_id);
                        if let Err(i) = state.read.binary_search(&entry) {
                            state.read.insert(i, entry);
                        }
                    }
                }
            }
            // A response to no request in flight (a leader answering a deduplicated retry
            // twice, or a deposed leader's `NotLeader` for a waiting produce): stale.
            _ => {}
        }
    }
}
