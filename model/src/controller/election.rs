//! §4.10 Elections and ISR bookkeeping, including `kip-966`'s eligible leader replicas
//! (impl/src/core/controller/election.rs).

use super::{Controller, ControllerState};
use crate::config::Variant;
use crate::types::{BrokerId, BrokerSet, View};
use serde::Serialize;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};

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
    /// from the ELR or an unclean election becomes the only ISR member. When other brokers of
    /// the same pool were eligible, the state records them ([`ElectionChoice`]): the checker's
    /// model may elect any of them instead (`Controller::elect_instead`).
    pub(super) fn elect(&self, state: &mut ControllerState) {
        self.elect_preferring(state, None)
    }

    /// The brokers an election chooses among, first pool that has one: the unfenced ISR, then
    /// (`kip-966`) the unfenced ELR, then with unclean election every unfenced broker; and
    /// whether the chosen leader becomes the only ISR member (not for an ISR member).
    fn eligible(&self, state: &ControllerState) -> Option<(BrokerSet, bool)> {
        let from_isr = state.view.isr.minus(state.fenced);
        let from_elr = state.elr.minus(state.fenced);
        let unfenced = self.all().minus(state.fenced);
        if !from_isr.is_empty() {
            Some((from_isr, false))
        } else if self.cfg.variant == Variant::Kip966 && !from_elr.is_empty() {
            Some((from_elr, true))
        } else if self.cfg.unclean_leader_election && !unfenced.is_empty() {
            Some((unfenced, true))
        } else {
            None
        }
    }

    /// The election of `elect`, choosing `preferred` when it is eligible (else the lowest id).
    fn elect_preferring(&self, state: &mut ControllerState, preferred: Option<BrokerId>) {
        let view = state.view;
        let eligible = self.eligible(state);
        let (leader, isr) = match eligible {
            Some((pool, sole)) => {
                let l = preferred
                    .filter(|b| pool.contains(*b))
                    .or(pool.lowest())
                    .expect("a pool is not empty");
                let others = pool.without(l);
                if preferred.is_none() && !others.is_empty() {
                    let elr = state.elr;
                    state.choice = Some(ElectionChoice { view, elr, others });
                }
                (
                    Some(l),
                    if sole {
                        BrokerSet::empty().with(l)
                    } else {
                        view.isr
                    },
                )
            }
            None => (None, view.isr),
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

    /// The same step with `leader` elected instead, from the state right after an election
    /// that recorded `choice` (`leader` is one of its `others`): the view and ELR the election
    /// started from are restored and the election rerun preferring `leader`; the epochs the
    /// step gave the view stay as they were.
    pub fn elect_instead(
        &self,
        state: &mut ControllerState,
        choice: ElectionChoice,
        leader: BrokerId,
    ) {
        assert!(
            choice.others.contains(leader),
            "elect only another eligible broker"
        );
        let epochs = (state.view.leader_epoch, state.view.partition_epoch);
        state.view = choice.view;
        state.elr = choice.elr;
        self.elect_preferring(state, Some(leader));
        (state.view.leader_epoch, state.view.partition_epoch) = epochs;
        assert_eq!(state.view.leader, Some(leader));
    }
}

/// An election that had a choice: the view and ELR it started from, and the eligible brokers
/// it did not choose. Kafka's controller elects the first eligible broker in the partition's
/// replica assignment, which can be any order of the brokers; the model elects the lowest id
/// and the checker's model may elect any of `others` instead (docs/reductions.md, "Broker
/// symmetry").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ElectionChoice {
    pub view: View,
    pub elr: BrokerSet,
    pub others: BrokerSet,
}

impl Rewrite<Id> for ElectionChoice {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        ElectionChoice {
            view: self.view.rewrite(plan),
            elr: self.elr.rewrite(plan),
            others: self.others.rewrite(plan),
        }
    }
}
