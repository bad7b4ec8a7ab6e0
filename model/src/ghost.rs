//! The ghost history: what happened on the path so far that the properties judge against.
//!
//! An invariant that looks only at the current state forgets: once every copy of a committed
//! record has been truncated, "committed" (below some live broker's HW) no longer includes it,
//! and the leader that lacks it looks complete. So the model keeps, beside the actors, a record
//! of every `(offset, record)` that was ever below a live broker's HW and of every
//! acknowledgement the client ever accepted, per `acks` setting.
//!
//! Why no actor can read it: it lives in the `history` field of Stateright's
//! `ActorModelState`, and only `InsyncModel::next_state` (the model's transition wrapper, which
//! runs *after* the actors' handlers have produced the next state) writes it. Actor handlers
//! receive their own state, their storage and the message or timer, never the model state, so
//! the history cannot steer any step. Only `properties.rs` (and descriptions) read it.

use crate::actor::State;
use crate::client::Request;
use crate::config::{Acks, Config};
use crate::model::{Action, SystemState};
use crate::msg::{ClientReply, Msg, PeerMsg, ProduceResult};
use crate::types::{BrokerId, Offset, Record, RecordId};
use serde::Serialize;
use stateright::actor::{ActorModelAction, Id};
use stateright::{Rewrite, RewritePlan};

/// What the path has done so far, for the properties only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Ghost {
    /// Every `(offset, record)` that was ever below the HW of a live broker, sorted. The HW is
    /// only ever learned from a leader, so each entry is a leader's word that it is committed.
    pub committed: Vec<(Offset, Record)>,
    /// Every `acks=all` acknowledgement the client accepted: `(record_id, offset)`, in order.
    pub acked_all: Vec<(RecordId, Offset)>,
    /// Every `acks=1` acknowledgement the client accepted: `(record_id, offset)`, in order.
    pub acked_one: Vec<(RecordId, Offset)>,
    /// Follower truncations so far (capped at 1, all the `divergent_truncation` witness needs).
    pub truncations: u8,
}

impl Rewrite<Id> for Ghost {
    /// Nothing in the ghost names a broker, so broker permutations leave it unchanged.
    fn rewrite<S>(&self, _plan: &RewritePlan<Id, S>) -> Self {
        self.clone()
    }
}

impl Ghost {
    /// Adds to the history what the step `last --action--> next` did.
    pub fn observe(
        &mut self,
        cfg: &Config,
        last: &SystemState,
        action: &Action,
        next: &SystemState,
    ) {
        self.observe_truncation(cfg, last, action, next);
        self.observe_acknowledgement(cfg, last, action);
        self.observe_commits(cfg, next);
    }

    /// A follower removed records from its log on delivery of a leader's answer or a view.
    fn observe_truncation(
        &mut self,
        cfg: &Config,
        last: &SystemState,
        action: &Action,
        next: &SystemState,
    ) {
        let ActorModelAction::Deliver { dst, msg, .. } = action else {
            return;
        };
        let b = usize::from(*dst);
        if !truncates(msg) || b == 0 || b > cfg.brokers as usize {
            return;
        }
        let len = |s: &SystemState| s.actor_states[b].as_broker().map(|s| s.log.len());
        if len(next) < len(last) {
            self.truncations = 1;
        }
    }

    /// The client accepted an `Ok` for the produce it has in flight: it is acknowledged.
    fn observe_acknowledgement(&mut self, cfg: &Config, last: &SystemState, action: &Action) {
        let ActorModelAction::Deliver { src, dst, msg } = action else {
            return;
        };
        let Msg::Reply(ClientReply::ProduceResponse {
            record_id,
            result: ProduceResult::Ok { offset },
        }) = msg
        else {
            return;
        };
        if usize::from(*dst) != cfg.client_index() {
            return;
        }
        let client = last.actor_states[cfg.client_index()]
            .as_client()
            .expect("the last actor is the client");
        let expected = Request::Produce {
            broker: BrokerId::from_id(*src),
            record_id: *record_id,
        };
        if client.in_flight != Some(expected) {
            return; // A stale answer: the client ignores it.
        }
        let acked = match cfg.acks {
            Acks::All => &mut self.acked_all,
            Acks::One => &mut self.acked_one,
        };
        assert!(
            acked.iter().all(|(id, _)| id != record_id),
            "a record is acknowledged once: the client moves on to the next"
        );
        acked.push((*record_id, *offset));
    }

    /// Everything now below a live broker's HW is committed, for good.
    fn observe_commits(&mut self, cfg: &Config, next: &SystemState) {
        for b in 1..=cfg.brokers as usize {
            if next.crashed[b] {
                continue;
            }
            let State::Broker(s) = &*next.actor_states[b] else {
                unreachable!("indices 1..=N are brokers");
            };
            for (offset, record) in s.log[..s.hw as usize].iter().enumerate() {
                let entry = (offset as Offset, *record);
                if let Err(at) = self.committed.binary_search(&entry) {
                    self.committed.insert(at, entry);
                }
            }
        }
    }
}

/// The messages on whose delivery a follower may remove records from its log.
fn truncates(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Peer(
            PeerMsg::FetchResponse { .. }
                | PeerMsg::OffsetsForLeaderEpochResponse { .. }
                | PeerMsg::LeaderAndIsr(_)
        )
    )
}
