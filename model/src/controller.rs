//! The controller: the membership service that owns the view (docs/protocol.md §4.10).
//!
//! Every change of leader or ISR is a new view with a higher `partition_epoch`; an election
//! also bumps `leader_epoch`. It accepts `AlterPartition` only from the leader of the current
//! view at the current epochs (KIP-497 semantics), refuses to add fenced brokers in `kip-966`
//! (KIP-841 `IneligibleReplica`), and keeps eligible leader replicas (KIP-966). Session expiry
//! (`Expire(b)`) is nondeterministic: it stands for a real failure and for false suspicion.
//! Its state is all persistent, so the model never crashes it.
//!
//! The files are those of the implementation's core (impl/src/core/controller/): `handlers`
//! (`AlterPartition`, `Expire(b)`, `RegisterBroker`, publishing a view) and `election`
//! (elections and the ISR/ELR bookkeeping). This file holds the state, the timers it arms and
//! the dispatch.

mod election;

pub use election::ElectionChoice;
mod handlers;

use crate::actor::{Emit, Out};
use crate::config::Config;
use crate::msg::{Msg, PeerMsg, Timer};
use crate::types::{BrokerId, BrokerSet, View};
use serde::Serialize;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};
use std::collections::BTreeMap;

/// Field names as in docs/protocol.md §2.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ControllerState {
    pub view: View,
    /// Brokers whose session expired and who have not registered since.
    pub fenced: BrokerSet,
    /// Eligible leader replicas (`kip-966` only).
    pub elr: BrokerSet,
    /// The leader the partition had when it last went leaderless (`kip-966` only; Kafka's
    /// `LastKnownElr`), electable once the ISR and the ELR are empty (§4.10).
    pub last_known_leader: Option<BrokerId>,
    /// Each broker's broker epoch from its last registration (absent: 0, never restarted).
    pub broker_epochs: BTreeMap<BrokerId, u8>,
    /// Set by the step that just elected a leader when other brokers were eligible too
    /// (`election.rs`); the model wrapper takes it out after every step, so no state it
    /// stores carries it, and no handler reads it.
    #[serde(skip)]
    pub choice: Option<ElectionChoice>,
}

impl Rewrite<Id> for ControllerState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        ControllerState {
            view: self.view.rewrite(plan),
            fenced: self.fenced.rewrite(plan),
            elr: self.elr.rewrite(plan),
            last_known_leader: self.last_known_leader.map(|l| l.rewrite(plan)),
            broker_epochs: self.broker_epochs.rewrite(plan),
            choice: self.choice.map(|c| c.rewrite(plan)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Controller {
    pub cfg: Config,
}

impl Controller {
    fn all(&self) -> BrokerSet {
        BrokerSet::all(self.cfg.brokers)
    }

    pub fn on_start(&self, out: &mut Out) -> ControllerState {
        let state = ControllerState {
            view: View::initial(self.cfg.brokers),
            fenced: BrokerSet::empty(),
            elr: BrokerSet::empty(),
            last_known_leader: None,
            broker_epochs: BTreeMap::new(),
            choice: None,
        };
        self.sync_timers(None, &state, out);
        state
    }

    /// `Expire(b)` is armed for every unfenced broker, `Heartbeat(b)` for every fenced one; the
    /// fault budgets decide how many fire.
    pub fn sync_timers(
        &self,
        before: Option<&ControllerState>,
        after: &ControllerState,
        out: &mut Out,
    ) {
        let fenced = |s: &ControllerState| s.fenced;
        let old = before.map_or(BrokerSet::empty(), fenced);
        let new = fenced(after);
        // Initially every broker is unfenced: arm every `Expire`.
        let old_unfenced = before.map_or(BrokerSet::empty(), |s| self.all().minus(s.fenced));
        let new_unfenced = self.all().minus(new);
        for b in new_unfenced.minus(old_unfenced).iter() {
            out.set_timer(Timer::Expire(b), stateright::actor::model_timeout());
        }
        for b in old_unfenced.minus(new_unfenced).iter() {
            out.cancel_timer(Timer::Expire(b));
        }
        for b in new.minus(old).iter() {
            out.set_timer(Timer::Heartbeat(b), stateright::actor::model_timeout());
        }
        for b in old.minus(new).iter() {
            out.cancel_timer(Timer::Heartbeat(b));
        }
    }

    pub fn on_msg(&self, state: &mut ControllerState, src: Id, msg: Msg, out: &mut Out) {
        match msg {
            Msg::Peer(PeerMsg::AlterPartition {
                isr,
                leader_epoch,
                partition_epoch,
                broker_epochs,
            }) => {
                let from = BrokerId::from_id(src);
                let epochs = (leader_epoch, partition_epoch);
                let result = self.alter_partition(state, from, isr, epochs, &broker_epochs);
                out.send_peer(src, PeerMsg::AlterPartitionResponse { result });
            }
            Msg::Peer(PeerMsg::RegisterBroker { broker_epoch }) => {
                self.register(state, BrokerId::from_id(src), broker_epoch, out)
            }
            // Messages the controller never receives: it has no client.
            Msg::Peer(
                PeerMsg::LeaderAndIsr(_)
                | PeerMsg::AlterPartitionResponse { .. }
                | PeerMsg::RegisterBrokerResponse
                | PeerMsg::Fetch { .. }
                | PeerMsg::FetchResponse { .. }
                | PeerMsg::OffsetsForLeaderEpoch { .. }
                | PeerMsg::OffsetsForLeaderEpochResponse { .. },
            )
            | Msg::Request(_)
            | Msg::Reply(_) => {}
        }
    }

    /// A controller timer fired: `Expire(b)` fences b; `Heartbeat(b)` lets a fenced broker
    /// that was never down back in.
    pub fn on_timeout(&self, state: &mut ControllerState, timer: Timer, out: &mut Out) {
        match timer {
            Timer::Expire(b) => self.on_expire(state, b, out),
            // A fenced broker that was never down heartbeats again: it is let back in the way
            // a registration is, with the broker epoch it registered last (§4.10).
            Timer::Heartbeat(b) if state.fenced.contains(b) => {
                let broker_epoch = state.broker_epochs.get(&b).copied().unwrap_or(0);
                self.register(state, b, broker_epoch, out)
            }
            Timer::Heartbeat(_)
            | Timer::Lag(_)
            | Timer::Produce(_)
            | Timer::Consume(_)
            | Timer::FetchRetry
            | Timer::FetchBackoff
            | Timer::ParkedRelease(_)
            | Timer::Flush
            | Timer::HwCheckpoint => {}
        }
    }
}
