//! §4.10 Elections and ISR bookkeeping, including `kip-966`'s eligible leader replicas
//! (impl/src/core/controller/election.rs).

use super::{Controller, ControllerState};
use crate::config::Variant;
use crate::types::BrokerSet;

impl Controller {
    /// Replaces the ISR, keeping KIP-966's eligible leader replicas (§4.10): brokers removed
    /// while the remaining ISR is below `min_insync_replicas` join the ELR (the HW could not
    /// advance without them, so they hold every committed record) and members of the new ISR
    /// leave it. Once the ISR has `min_insync_replicas` members again the whole ELR is emptied:
    /// the HW advances without the ELR members from then on, so they stop holding every
    /// committed record, and electing one could lose a committed record (Kafka's
    /// `PartitionChangeBuilder` does the same; `tests/elr.rs` shows the loss without it).
    pub(super) fn set_isr(&self, state: &mut ControllerState, isr: BrokerSet) {
        if self.cfg.variant == Variant::Kip966 {
            if isr.len() < self.cfg.min_insync_replicas as usize {
                state.elr = state.elr.union(state.view.isr.minus(isr)).minus(isr);
            } else {
                state.elr = BrokerSet::empty();
            }
        }
        state.view.isr = isr;
    }

    /// Election: the lowest unfenced ISR member; else (`kip-966`) the lowest unfenced ELR
    /// member; else, with unclean election, the lowest unfenced broker; else no leader. A leader
    /// from the ELR or an unclean election becomes the only ISR member.
    pub(super) fn elect(&self, state: &mut ControllerState) {
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
}
