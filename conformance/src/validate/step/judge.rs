//! Judging one attempted step: the messages the node sent against the model's, the node's
//! state against the model's through the abstraction function, and what a restart starts from.

use std::collections::BTreeMap;

use insync_impl::protocol::{self as imp, NodeId};
use insync_impl::trace_log::{Event, NodeState, TracedMessage};
use insync_model::actor::{State, Storage};
use insync_model::msg::{Msg, PeerMsg};
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
            real.entry(dst).or_default().push(msg);
        }
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

    /// The node's recorded state against the model's actor state (and armed timers).
    pub(super) fn compare_state(
        &mut self,
        node: NodeId,
        name: &str,
        run: &ActorRun,
        event: &Event,
    ) -> Result<Vec<String>, Outcome> {
        let (Some(model), Some(state)) = (&run.state, &event.state) else {
            return Ok(Vec::new());
        };
        let snapshot = match state {
            NodeState::Controller(s) => imp::Snapshot::Controller(s.clone()),
            NodeState::Broker(s) => {
                let log = self.logs.get(&node).map(Vec::as_slice).unwrap_or(&[]);
                let renamed = self.renaming.broker_snapshot(s, log).map_err(too_many)?;
                if let Err(error @ MappingError::OutOfRange { .. }) = abstraction::broker(&renamed)
                {
                    return Err(out_of_scope(error));
                }
                imp::Snapshot::Broker(renamed)
            }
        };
        Ok(compare::node(name, model, &run.timers, &snapshot))
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
        if !run.started {
            if snapshot.broker_epoch != 0 {
                return Err(Outcome::OutOfScope(format!(
                    "broker {} was recorded first at a restart (broker epoch {}): the run \
                     before it is not in the log",
                    snapshot.id, snapshot.broker_epoch
                )));
            }
            return Ok(None);
        }
        let Some(Storage::Broker(mut storage)) = run.storage.clone() else {
            return Ok(None);
        };
        let recovered = self.model_log(&snapshot.log)?;
        let before: &[Record] = match &run.state {
            Some(State::Broker(state)) => &state.log,
            _ => &[],
        };
        let extends = recovered.len() > storage.log.len() && recovered.starts_with(&storage.log);
        if extends {
            let name = super::super::read::node_name(NodeId::Broker(snapshot.id));
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
        let _ = actor;
        Ok(Some(Storage::Broker(storage)))
    }

    fn model_log(&mut self, log: &[(u64, u32, imp::RecordId)]) -> Result<Vec<Record>, Outcome> {
        log.iter()
            .map(|(_, epoch, id)| {
                let id = self.renaming.id(*id).map_err(too_many)?;
                let small = |what, v: u64| {
                    u8::try_from(v)
                        .map_err(|_| out_of_scope(MappingError::OutOfRange { what, value: v }))
                };
                Ok(Record {
                    leader_epoch: small("leader_epoch", u64::from(*epoch))?,
                    record_id: small("record id", u64::from(id.sequence))?,
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
