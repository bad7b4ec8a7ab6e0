//! The controller: the membership service that owns the view (docs/protocol.md §4.10).
//!
//! Every change of leader or ISR is a new view with a higher `partition_epoch`; an election
//! also bumps `leader_epoch`. It accepts `AlterPartition` only from the leader of the current
//! view at the current epochs (KIP-497 semantics), refuses to add fenced brokers in `kip-966`
//! (KIP-841 `IneligibleReplica`), and keeps eligible leader replicas (KIP-966). Session expiry
//! (`Expire(b)`) is nondeterministic: it stands for a real failure and for false suspicion.
//! Its state is all persistent, so the model never crashes it.

use crate::actor::Out;
use crate::config::{Config, Variant};
use crate::msg::{AlterPartitionResult, Msg, Timer};
use crate::types::{BrokerId, BrokerSet, Epoch, View};
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
    /// Each broker's broker epoch from its last registration (absent: 0, never restarted).
    pub broker_epochs: BTreeMap<BrokerId, u8>,
}

impl Rewrite<Id> for ControllerState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        ControllerState {
            view: self.view.rewrite(plan),
            fenced: self.fenced.rewrite(plan),
            elr: self.elr.rewrite(plan),
            broker_epochs: self.broker_epochs.rewrite(plan),
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
            broker_epochs: BTreeMap::new(),
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
            Msg::AlterPartition {
                isr,
                leader_epoch,
                partition_epoch,
                broker_epochs,
            } => {
                let from = BrokerId::from_id(src);
                let epochs = (leader_epoch, partition_epoch);
                let result = self.alter_partition(state, from, isr, epochs, &broker_epochs);
                out.send(src, Msg::AlterPartitionResponse { result });
            }
            Msg::RegisterBroker { broker_epoch } => {
                self.register(state, BrokerId::from_id(src), broker_epoch, out)
            }
            // Messages the controller never receives.
            Msg::LeaderAndIsr(_)
            | Msg::AlterPartitionResponse { .. }
            | Msg::RegisterBrokerResponse
            | Msg::Fetch { .. }
            | Msg::FetchResponse { .. }
            | Msg::OffsetsForLeaderEpoch { .. }
            | Msg::OffsetsForLeaderEpochResponse { .. }
            | Msg::Produce { .. }
            | Msg::ProduceResponse { .. }
            | Msg::Consume { .. }
            | Msg::ConsumeResponse { .. } => {}
        }
    }

    fn alter_partition(
        &self,
        state: &mut ControllerState,
        from: BrokerId,
        isr: BrokerSet,
        (leader_epoch, partition_epoch): (Epoch, Epoch),
        broker_epochs: &[(BrokerId, u8)],
    ) -> AlterPartitionResult {
        let view = state.view;
        if view.leader != Some(from) || view.leader_epoch != leader_epoch {
            return AlterPartitionResult::FencedLeaderEpoch;
        }
        if view.partition_epoch != partition_epoch {
            return AlterPartitionResult::InvalidUpdateVersion;
        }
        let added = isr.minus(view.isr);
        // KIP-841: never add a fenced broker; KIP-903: nor one whose fetches came from an
        // earlier incarnation.
        let stale = broker_epochs
            .iter()
            .any(|(b, e)| state.broker_epochs.get(b).copied().unwrap_or(0) != *e);
        if self.cfg.variant == Variant::Kip966 && (added.minus(state.fenced) != added || stale) {
            return AlterPartitionResult::IneligibleReplica;
        }
        self.set_isr(state, isr);
        state.view.partition_epoch = view.partition_epoch + 1;
        AlterPartitionResult::Ok(state.view)
    }

    /// Replaces the ISR, keeping KIP-966's eligible leader replicas (§4.10): brokers removed
    /// while the remaining ISR is below `min_insync_replicas` join the ELR (the HW could not
    /// advance without them, so they hold every committed record) and members of the new ISR
    /// leave it. Once the ISR has `min_insync_replicas` members again the whole ELR is emptied:
    /// the HW advances without the ELR members from then on, so they stop holding every
    /// committed record, and electing one could lose a committed record (Kafka's
    /// `PartitionChangeBuilder` does the same; `tests/elr.rs` shows the loss without it).
    fn set_isr(&self, state: &mut ControllerState, isr: BrokerSet) {
        if self.cfg.variant == Variant::Kip966 {
            if isr.len() < self.cfg.min_insync_replicas as usize {
                state.elr = state.elr.union(state.view.isr.minus(isr)).minus(isr);
            } else {
                state.elr = BrokerSet::empty();
            }
        }
        state.view.isr = isr;
    }

    /// `Expire(b)`: fence b, drop it from the ISR unless it is the last member, re-elect if it led.
    pub fn on_timeout(&self, state: &mut ControllerState, timer: Timer, out: &mut Out) {
        let b = match timer {
            Timer::Expire(b) => b,
            // A fenced broker that was never down heartbeats again: it is let back in the way
            // a registration is, with the broker epoch it registered last (§4.10).
            Timer::Heartbeat(b) if state.fenced.contains(b) => {
                let broker_epoch = state.broker_epochs.get(&b).copied().unwrap_or(0);
                return self.register(state, b, broker_epoch, out);
            }
            Timer::Heartbeat(_)
            | Timer::Lag(_)
            | Timer::Produce(_)
            | Timer::Consume(_)
            | Timer::FetchRetry
            | Timer::FetchBackoff
            | Timer::ParkedRelease(_)
            | Timer::Flush
            | Timer::HwCheckpoint => return,
        };
        if state.fenced.contains(b) {
            return;
        }
        state.fenced = state.fenced.with(b);
        let before = state.view;
        if before.isr.contains(b) && before.isr.len() > 1 {
            self.set_isr(state, before.isr.without(b));
        }
        if before.leader == Some(b) {
            self.elect(state);
        }
        self.publish(state, before, out);
    }

    /// `RegisterBroker` from b at a new broker epoch: it restarted and may have lost
    /// unflushed records. At the epoch it registered last (a `Heartbeat`): it never went down
    /// and keeps its ISR and ELR places (§4.10).
    fn register(&self, state: &mut ControllerState, b: BrokerId, broker_epoch: u8, out: &mut Out) {
        let before = state.view;
        let restarted = state.broker_epochs.get(&b).copied().unwrap_or(0) != broker_epoch;
        state.broker_epochs.insert(b, broker_epoch);
        state.fenced = state.fenced.without(b);
        // A restart the controller notices takes b out of the ISR (§4.10); before KIP-380 a
        // broker back within its session timeout kept its place (a fast restart).
        let isr = before.isr;
        let leaves = isr.len() > 1 || self.cfg.variant == Variant::Kip966;
        if restarted && isr.contains(b) && leaves && self.cfg.variant.restart_leaves_isr() {
            self.set_isr(state, isr.without(b));
        }
        if restarted {
            state.elr = state.elr.without(b);
        }
        if before.leader == Some(b) || before.leader.is_none() {
            self.elect(state);
        }
        out.send(b.id(), Msg::RegisterBrokerResponse);
        if state.view == before {
            out.send(b.id(), Msg::LeaderAndIsr(state.view));
        } else {
            self.publish(state, before, out);
        }
    }

    /// Election: the lowest unfenced ISR member; else (`kip-966`) the lowest unfenced ELR
    /// member; else, with unclean election, the lowest unfenced broker; else no leader. A leader
    /// from the ELR or an unclean election becomes the only ISR member.
    fn elect(&self, state: &mut ControllerState) {
        let view = state.view;
        let unfenced = self.all().minus(state.fenced);
        let from_isr = view.isr.minus(state.fenced).lowest();
        let from_elr = if self.cfg.variant == Variant::Kip966 {
            state.elr.minus(state.fenced).lowest()
        } else {
            None
        };
        let unclean = if self.cfg.unclean_leader_election {
            unfenced.lowest()
        } else {
            None
        };
        let (leader, isr) = match (from_isr, from_elr, unclean) {
            (Some(l), _, _) => (Some(l), view.isr),
            (None, Some(l), _) | (None, None, Some(l)) => (Some(l), BrokerSet::empty().with(l)),
            (None, None, None) => (None, view.isr),
        };
        if let Some(l) = leader {
            state.elr = state.elr.without(l);
        }
        if leader.is_none() && view.leader.is_none() {
            return;
        }
        state.view.leader = leader;
        state.view.isr = isr;
        state.view.leader_epoch = view.leader_epoch + 1;
    }

    /// A view the controller changed gets the next `partition_epoch` and goes to every broker.
    /// The ZooKeeper-era controller also bumped the leader epoch when it changed the ISR of an
    /// unchanged leader (§4.10); an election has bumped it already.
    fn publish(&self, state: &mut ControllerState, before: View, out: &mut Out) {
        if state.view == before {
            return;
        }
        let isr_only = state.view.leader_epoch == before.leader_epoch;
        if isr_only && self.cfg.variant.controller_isr_change_bumps_epoch() {
            state.view.leader_epoch = before.leader_epoch + 1;
        }
        state.view.partition_epoch = before.partition_epoch + 1;
        for b in self.all().iter() {
            out.send(b.id(), Msg::LeaderAndIsr(state.view));
        }
    }
}
