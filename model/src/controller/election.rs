//! §4.10 Elections and ISR bookkeeping, including `kip-966`'s eligible leader replicas
//! (impl/src/core/controller/election.rs).

use super::{Controller, ControllerState};
use crate::config::Variant;
use crate::types::{BrokerId, BrokerSet};

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
    /// member; else (`kip-966`) the last known leader; else, with unclean election, the lowest
    /// unfenced broker; else no leader. A leader from the ELR or an unclean election becomes
    /// the only ISR member.
    pub(super) fn elect(&self, state: &mut ControllerState) {
        let view = state.view;
        let last_known = self.electable_last_known_leader(state);
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
        let (leader, isr) = match (from_isr, from_elr, last_known.or(unclean)) {
            (Some(l), _, _) => (Some(l), view.isr),
            (None, Some(l), _) | (None, None, Some(l)) => (Some(l), BrokerSet::empty().with(l)),
            (None, None, None) => (None, view.isr),
        };
        if from_isr.is_none() && from_elr.is_some() {
            // The ISR members an ELR leader replaces are fenced but lost nothing (a restart
            // would have taken them out): they stay eligible, as in Kafka, where fencing
            // moves the last ISR member to the ELR. Dropping them let the last known leader
            // be elected over one holding an acknowledged record (docs/counterexamples.md).
            state.elr = state.elr.union(view.isr);
        }
        if let Some(l) = leader {
            state.elr = state.elr.without(l);
        }
        self.track_last_known_leader(state, view.leader, leader);
        if leader.is_none() && view.leader.is_none() {
            return;
        }
        state.view.leader = leader;
        state.view.isr = isr;
        state.view.leader_epoch = view.leader_epoch + 1;
    }

    /// `kip-966` (§4.10, Kafka's `canElectLastKnownLeader`): with the ISR and the ELR both
    /// empty, the last known leader (or the leader this election is about to lose, which
    /// would become it) may lead once it is unfenced. The election is unclean: it may have
    /// lost acknowledged records in the crash that emptied the ISR, and the other brokers
    /// truncate to its log. It precedes an unclean election, as in Kafka.
    fn electable_last_known_leader(&self, state: &ControllerState) -> Option<BrokerId> {
        if self.cfg.variant != Variant::Kip966 {
            return None;
        }
        let empty = state.view.isr.is_empty() && state.elr.is_empty();
        let last = state.last_known_leader.or(state.view.leader)?;
        (empty && !state.fenced.contains(last)).then_some(last)
    }

    /// `kip-966`: an election that takes the partition's leader away remembers it as the last
    /// known leader (the first time only, as Kafka's `maybeUpdateLastKnownLeader`); one that
    /// yields a leader forgets it.
    fn track_last_known_leader(
        &self,
        state: &mut ControllerState,
        before: Option<BrokerId>,
        after: Option<BrokerId>,
    ) {
        if self.cfg.variant != Variant::Kip966 {
            return;
        }
        match (before, after) {
            (_, Some(_)) => state.last_known_leader = None,
            (Some(l), None) if state.last_known_leader.is_none() => {
                state.last_known_leader = Some(l);
            }
            (_, None) => {}
        }
    }
}
