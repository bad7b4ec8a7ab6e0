//! `LeaderAndIsr`: installing a newer view, becoming leader or follower (§4.1).

use super::{Broker, BrokerState, FetchState, LeaderState, ReplicaProgress};
use crate::actor::{Emit, Out};
use crate::config::Variant;
use crate::msg::{ClientReply, PeerMsg, ProduceResult};
use crate::types::{epochs, BrokerId, Offset, RecordId, View};
use stateright::actor::Id;

impl Broker {
    /// §4.1 steps 2 and 3: install a newer view.
    pub(super) fn install(&self, state: &mut BrokerState, view: View, out: &mut Out) {
        if view.leader == Some(self.id) {
            return self.install_as_leader(state, view, out);
        }
        let previous = state.view;
        if let Some(leader) = state.leader.take() {
            self.reject_waiting(leader.waiting, out);
        }
        state.view = Some(view);
        let new_leader = previous.is_none_or(|p| p.leader != view.leader);
        let new_epoch = previous.is_some_and(|p| p.leader_epoch != view.leader_epoch);
        if !new_leader && new_epoch && !self.cfg.variant.refollows_on_new_epoch() {
            return self.resume(state, out);
        }
        if !new_leader && !new_epoch {
            return;
        }
        state.fetch_state = FetchState::Idle;
        let Some(leader) = view.leader else { return };
        self.become_follower(state, leader.id(), out);
    }

    /// The view names this broker leader: a new leader epoch starts leader state afresh, and
    /// the requests the previous leadership held are refused.
    fn install_as_leader(&self, state: &mut BrokerState, view: View, out: &mut Out) {
        let new_leadership = state.leader.is_none()
            || state
                .view
                .is_none_or(|p| p.leader_epoch != view.leader_epoch);
        if new_leadership {
            let replicas = (1..=self.cfg.brokers)
                .map(BrokerId)
                .filter(|b| *b != self.id)
                .map(|b| (b, ReplicaProgress::fresh(state.hw)))
                .collect();
            let waiting = state.leader.take().map(|l| l.waiting).unwrap_or_default();
            self.reject_waiting(waiting, out);
            state.leader = Some(LeaderState {
                leader_epoch_start_offset: state.leo(),
                replicas,
                pending_isr: None,
                waiting: Vec::new(),
            });
            state.fetch_state = FetchState::Idle;
        }
        state.view = Some(view);
        self.advance_hw(state, out);
    }

    /// §4.1 step 3: a new leader (or, from Kafka 2.1, a new epoch): reconcile the log the
    /// variant's way, then fetch.
    fn become_follower(&self, state: &mut BrokerState, leader: Id, out: &mut Out) {
        match self.cfg.variant {
            Variant::HwTruncation => {
                let hw = state.hw;
                state.truncate(hw);
                self.send_fetch(state, leader, out);
            }
            Variant::Kip101 | Variant::Kip279 if !state.log.is_empty() => {
                self.send_epoch_lookup(state, leader, out)
            }
            _ => self.send_fetch(state, leader, out),
        }
    }

    /// §4.1 step 3, before Kafka 2.1: a new epoch of the same leader. The follower does not
    /// truncate again; it re-sends, at the new epoch, the request its state calls for: a
    /// `Fetch` if it was fetching, else (`kip-101`, `kip-279`) the epoch lookup, which an
    /// error may have cut short and which Kafka's fetcher retried. The answer to the request it
    /// replaces echoes the old epoch and is ignored (§4.3).
    fn resume(&self, state: &mut BrokerState, out: &mut Out) {
        let Some(leader) = state.view.and_then(|v| v.leader) else {
            return;
        };
        let lookup = self.cfg.variant.epoch_lookup() && !state.log.is_empty();
        if lookup && state.fetch_state != FetchState::Fetching {
            self.send_epoch_lookup(state, leader.id(), out);
        } else {
            self.send_fetch(state, leader.id(), out);
        }
    }

    /// Sends the `Fetch` its log calls for; one request is in flight from now on.
    pub(super) fn send_fetch(&self, state: &mut BrokerState, leader: Id, out: &mut Out) {
        out.send_peer(leader, state.fetch_request());
        state.fetch_state = FetchState::Fetching;
    }

    /// Asks the leader where its last epoch ends (§4.4, `kip-101`, `kip-279`).
    pub(super) fn send_epoch_lookup(&self, state: &mut BrokerState, leader: Id, out: &mut Out) {
        let requested_epoch = epochs::last_epoch(&state.log);
        out.send_peer(leader, PeerMsg::OffsetsForLeaderEpoch { requested_epoch });
        state.fetch_state = FetchState::Truncating;
    }

    /// A leadership ends: its waiting `acks=all` requests are answered `NotLeader`.
    fn reject_waiting(&self, waiting: Vec<(RecordId, Offset)>, out: &mut Out) {
        for (record_id, _) in waiting {
            let result = ProduceResult::NotLeader;
            out.send_reply(
                self.client(),
                ClientReply::ProduceResponse { record_id, result },
            );
        }
    }
}

impl ReplicaProgress {
    /// What a new leader knows of a follower: nothing yet; it has been sent the leader's HW.
    fn fresh(hw: Offset) -> Self {
        ReplicaProgress {
            fetch_offset: None,
            hw_sent: hw,
            parked: None,
            broker_epoch: 0,
        }
    }
}
