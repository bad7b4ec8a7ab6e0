//! Judging one attempted step: the messages the node sent against the model's, the node's
//! state against the model's through the abstraction function, and what a restart starts from.

use std::collections::BTreeMap;

use insync_impl::protocol::{self as imp, NodeId};
use insync_impl::trace_log::{Event, NodeState, TracedMessage};
use insync_model::actor::{State, Storage};
use insync_model::msg::{ClientReply, ConsumeResult, Msg, PeerMsg};
use insync_model::types::Record;
use stateright::actor::Id;

use super::{first_offset, out_of_scope, too_many, ActorRun, Candidate, ModelRun, Outcome};
use crate::abstraction;
use crate::compare;
use crate::mapping::{self, MappingError};

impl ModelRun {
    /// The node's sends against the model's, per destination, in order. Implementation-only
    /// heartbeats are not compared (the model abstracts them into `Heartbeat(b)`); in a
    /// stutter step, re-sends of what the model's actor already told its peer are allowed.
    pub(super) fn compare_sent(
        &mut self,
        name: &str,
        run: &ActorRun,
        candidate: &Candidate,
        model: &BTreeMap<Id, Vec<Msg>>,
        event: &Event,
    ) -> Result<Vec<String>, Outcome> {
        let mut real: BTreeMap<Id, Vec<Msg>> = BTreeMap::new();
        for (target, _, message) in &event.sent {
            if let TracedMessage::Peer(imp::PeerMessage::Heartbeat { .. }) = message {
                continue;
            }
            if matches!(candidate, Candidate::Stutter) && is_implementation_only_refusal(message) {
                continue;
            }
            let dst = self.actor_of(*target).map_err(out_of_scope)?;
            let renamed = self.renaming.message(message).map_err(too_many)?;
            let msg = match mapping::msg_from_impl(&renamed, first_offset(&renamed)) {
                Ok(msg) => msg,
                Err(error @ MappingError::ImplOnly(_)) => return Err(out_of_scope(error)),
                Err(error) => return Err(out_of_scope(error)),
            };
            if matches!(candidate, Candidate::Stutter) && is_retransmission(run, &msg) {
                continue;
            }
            let to = real.entry(dst).or_default();
            // A batch sent again while its first request still waits is answered once per
            // request by the node, once by the model (whose one client never has two
            // requests in flight): compared once (conformance/DIVERGENCES.md).
            let answered_twice =
                matches!(msg, Msg::Reply(ClientReply::ProduceResponse { .. })) && to.contains(&msg);
            if !answered_twice {
                to.push(msg);
            }
        }
        // A batch is answered once, for its last record: the model's other answers are absorbed.
        let cap = consume_cap(event);
        let model: BTreeMap<Id, Vec<Msg>> = model
            .iter()
            .map(|(dst, msgs)| {
                let kept = msgs.iter().filter(|msg| !self.absorbed(msg)).cloned();
                (*dst, kept.map(|msg| capped(msg, cap)).collect::<Vec<Msg>>())
            })
            .filter(|(_, msgs)| !msgs.is_empty())
            .collect();
        let mut lines = Vec::new();
        let targets: std::collections::BTreeSet<&Id> = model.keys().chain(real.keys()).collect();
        for dst in targets {
            let (expected, actual) = (model.get(dst), real.get(dst));
            if expected != actual {
                let target = insync_model::actor::actor_name(usize::from(*dst), self.cfg.brokers);
                lines.push(format!(
                    "{name} → {target}: the model sends {:?}, the node sent {:?}",
                    expected.cloned().unwrap_or_default(),
                    actual.cloned().unwrap_or_default()
                ));
            }
        }
        Ok(lines)
    }

    fn absorbed(&self, msg: &Msg) -> bool {
        match msg {
            Msg::Reply(ClientReply::ProduceResponse { record_id, .. }) => {
                self.renaming.absorbed(*record_id)
            }
            _ => false,
        }
    }

    /// The node's recorded state against the model's actor state (and armed timers). A
    /// broker's log is compared directly with the rebuilt one; the rest through the
    /// abstraction function with both logs set aside, so no log is copied or serialised.
    pub(super) fn compare_state(
        &mut self,
        node: NodeId,
        name: &str,
        run: &mut ActorRun,
        event: &Event,
    ) -> Result<Vec<String>, Outcome> {
        let (Some(model), Some(state)) = (&mut run.state, &event.state) else {
            return Ok(Vec::new());
        };
        let (NodeState::Broker(snapshot), State::Broker(model_broker)) = (state, &mut *model)
        else {
            let snapshot = match state {
                NodeState::Controller(s) => imp::Snapshot::Controller(s.clone()),
                NodeState::Broker(s) => imp::Snapshot::Broker((**s).clone()),
            };
            return Ok(compare::node(name, model, &run.timers, &snapshot));
        };
        let real = self.logs.get(&node).map(Vec::as_slice).unwrap_or(&[]);
        // Equal after the node's previous event (or validation would have ended), and neither
        // side moved since: no compare needed.
        let mut lines = match self.real_log_moved || self.model_moved {
            true => log_differences(name, &model_broker.log, real),
            false => Vec::new(),
        };
        let renamed = self.renaming.broker_snapshot(snapshot).map_err(too_many)?;
        if let Err(error @ MappingError::OutOfRange { .. }) = abstraction::broker(&renamed) {
            return Err(out_of_scope(error));
        }
        let log = std::mem::take(&mut model_broker.log);
        lines.extend(compare::node(
            name,
            model,
            &run.timers,
            &imp::Snapshot::Broker(renamed),
        ));
        if let Some(State::Broker(model_broker)) = &mut run.state {
            model_broker.log = log;
        }
        Ok(lines)
    }

    /// What the model's broker restarts from: the storage it saved last, except that a
    /// process crash (not a power loss) may keep more of a lazily flushed log than the model's
    /// storage holds; a recovered log between the two is taken, and noted.
    pub(super) fn restart_storage(
        &mut self,
        actor: Id,
        run: &ActorRun,
        event: &Event,
    ) -> Result<Option<Storage>, Outcome> {
        let Some(NodeState::Broker(snapshot)) = &event.state else {
            return Ok(None);
        };
        let name = super::super::read::node_name(NodeId::Broker(snapshot.id));
        let last = match (run.started, run.storage.clone()) {
            (false, _) => None,
            (true, Some(Storage::Broker(storage))) => Some(storage),
            (true, _) => return Ok(None),
        };
        let Some(mut storage) =
            self.through_unrecorded_starts(actor, &name, last, snapshot.broker_epoch)?
        else {
            return Ok(None);
        };
        let recovered = self.model_log(&snapshot.log)?;
        let before: &[Record] = match &run.state {
            Some(State::Broker(state)) => &state.log,
            _ => &[],
        };
        let extends = recovered.len() > storage.log.len() && recovered.starts_with(&storage.log);
        if extends {
            let extra = recovered.len() - storage.log.len();
            self.notes.push(match before.starts_with(&recovered) {
                true => format!(
                    "{name}: the process crash kept {extra} unflushed record(s) that a power \
                     loss would lose (the model's crash is a power loss)"
                ),
                false => format!(
                    "{name}: recovery found {extra} record(s) past the durable log, some \
                     appended in the unrecorded last moments before the crash (not checked)"
                ),
            });
            storage.log = recovered;
        }
        Ok(Some(Storage::Broker(storage)))
    }

    fn model_log(&mut self, log: &[(u64, u32, imp::RecordId)]) -> Result<Vec<Record>, Outcome> {
        log.iter()
            .map(|(_, epoch, id)| {
                let id = self.renaming.id(*id).map_err(too_many)?;
                Ok(Record {
                    leader_epoch: *epoch,
                    record_id: id.sequence,
                })
            })
            .collect()
    }
}

/// A re-send the model's actor already made, which an implementation-only clock repeats: a
/// broker's registration while it waits for the answer, the controller's current view.
fn is_retransmission(run: &ActorRun, msg: &Msg) -> bool {
    match (&run.state, msg) {
        (Some(State::Broker(state)), Msg::Peer(PeerMsg::RegisterBroker { broker_epoch })) => {
            !state.registered && *broker_epoch == state.broker_epoch
        }
        (Some(State::Controller(state)), Msg::Peer(PeerMsg::LeaderAndIsr(view))) => {
            *view == state.view
        }
        _ => false,
    }
}

/// An answer only the implementation gives, refusing a produce without touching the log: a
/// batch out of sequence (the model has no sequences) or the leader's waiting list full.
fn is_implementation_only_refusal(message: &TracedMessage) -> bool {
    matches!(
        message,
        TracedMessage::Reply(imp::ClientReply::ProduceResponse {
            result: imp::ProduceResult::OutOfOrderSequence { .. } | imp::ProduceResult::Overloaded,
            ..
        })
    )
}

/// Whether the event is a produce the node refused with an implementation-only answer.
pub(super) fn refused_by_the_implementation_only(event: &Event) -> bool {
    let produce = matches!(
        event.input,
        insync_impl::trace_log::Input::Message {
            message: TracedMessage::Request(imp::ClientRequest::Produce { .. }),
            ..
        }
    );
    produce
        && event
            .sent
            .iter()
            .any(|(_, _, message)| is_implementation_only_refusal(message))
}

/// The model's log against the node's, as the first offset where they part.
fn log_differences(name: &str, model: &[Record], real: &[Record]) -> Vec<String> {
    if model == real {
        return Vec::new();
    }
    let at = model.iter().zip(real).take_while(|(m, r)| m == r).count();
    vec![format!(
        "{name}.log from offset {at}: expected {} ({} records), actual {} ({} records)",
        insync_model::types::fmt_log(&model[at..model.len().min(at + 3)]),
        model.len(),
        insync_model::types::fmt_log(&real[at..real.len().min(at + 3)]),
        real.len()
    )]
}

/// The `max_records` of a consume (the implementation's bound on one answer; the model's
/// consume returns every committed record from the offset on).
fn consume_cap(event: &Event) -> Option<usize> {
    match &event.input {
        insync_impl::trace_log::Input::Message {
            message: TracedMessage::Request(imp::ClientRequest::Consume { max_records, .. }),
            ..
        } => Some(*max_records as usize),
        _ => None,
    }
}

/// The model's answer cut to the node's bounds: a consume answer to its first `cap` records
/// (the request's `max_records`), a fetch answer to `FETCH_RECORDS_MAX` (the model's answers
/// carry every record from the offset on; a follower fetches the rest next).
fn capped(msg: Msg, cap: Option<usize>) -> Msg {
    match (msg, cap) {
        (
            Msg::Reply(ClientReply::ConsumeResponse {
                result:
                    ConsumeResult::Ok {
                        mut records,
                        high_watermark,
                    },
            }),
            Some(cap),
        ) => {
            records.truncate(cap);
            Msg::Reply(ClientReply::ConsumeResponse {
                result: ConsumeResult::Ok {
                    records,
                    high_watermark,
                },
            })
        }
        (
            Msg::Peer(PeerMsg::FetchResponse {
                leader_epoch,
                fetch_offset,
                result:
                    insync_model::msg::FetchResult::Records {
                        mut records,
                        high_watermark,
                    },
            }),
            _,
        ) => {
            records.truncate(insync_impl::core::FETCH_RECORDS_MAX);
            Msg::Peer(PeerMsg::FetchResponse {
                leader_epoch,
                fetch_offset,
                result: insync_model::msg::FetchResult::Records {
                    records,
                    high_watermark,
                },
            })
        }
        (msg, _) => msg,
    }
}

/// A produce batch is appended at once, and the fetches parked at the leader are answered
/// after it; the model's produces of its records, one by one, answer them after the first.
/// So in a batch's step the model's fetch answers are read as given after the whole batch:
/// every record from the fetch offset to the model's log end, and the model's HW after it.
pub(super) fn answer_parked_after_the_batch(
    sent: &mut BTreeMap<Id, Vec<Msg>>,
    after: &insync_model::broker::BrokerState,
) {
    for msg in sent.values_mut().flatten() {
        if let Msg::Peer(PeerMsg::FetchResponse {
            fetch_offset,
            result:
                insync_model::msg::FetchResult::Records {
                    records,
                    high_watermark,
                },
            ..
        }) = msg
        {
            let from = (*fetch_offset as usize).min(after.log.len());
            *records = after.log[from..].to_vec();
            *high_watermark = after.hw;
        }
    }
}
