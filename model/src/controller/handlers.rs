//! §4.10 Controller handlers: `AlterPartition`, `Expire(b)`, `RegisterBroker`, the
//! `Heartbeat(b)` timer, and publishing a changed view (impl/src/core/controller/handlers.rs).

use super::{Controller, ControllerState};
use crate::actor::{Emit, Out};
use crate::config::Variant;
use crate::msg::{AlterPartitionResult, PeerMsg};
use crate::types::{BrokerId, BrokerSet, Epoch, View};

impl Controller {
    pub(super) fn alter_partition(
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

    /// `Expire(b)`: fence b, drop it from the ISR unless it is the last member, re-elect if it led.
    pub(super) fn on_expire(&self, state: &mut ControllerState, b: BrokerId, out: &mut Out) {
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
    pub(super) fn register(
        &self,
        state: &mut ControllerState,
        b: BrokerId,
        broker_epoch: u8,
        out: &mut Out,
    ) {
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
        out.send_peer(b.id(), PeerMsg::RegisterBrokerResponse);
        if state.view == before {
            out.send_peer(b.id(), PeerMsg::LeaderAndIsr(state.view));
        } else {
            self.publish(state, before, out);
        }
    }

    /// A view the controller changed gets the next `partition_epoch` and goes to every broker.
    /// The ZooKeeper-era controller also bumped the leader epoch when it changed the ISR of an
    /// unchanged leader (§4.10); an election has bumped it already.
    pub(super) fn publish(&self, state: &mut ControllerState, before: View, out: &mut Out) {
        if state.view == before {
            return;
        }
        let isr_only = state.view.leader_epoch == before.leader_epoch;
        if isr_only && self.cfg.variant.controller_isr_change_bumps_epoch() {
            state.view.leader_epoch = before.leader_epoch + 1;
        }
        state.view.partition_epoch = before.partition_epoch + 1;
        for b in self.all().iter() {
            out.send_peer(b.id(), PeerMsg::LeaderAndIsr(state.view));
        }
    }
}
