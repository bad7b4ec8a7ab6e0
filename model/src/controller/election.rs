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
    /// member; else (`kip-966`) the last known leader; else, with unclean election, the lowest
    /// unfenced broker; else no leader. A leader from the ELR, the last known leader or an
    /// unclean election becomes the only ISR member. When other brokers of the same pool were
    /// eligible, the state records them ([`ElectionChoice`]): the checker's model may elect any
    /// of them instead (`Controller::elect_instead`).
    pub(super) fn elect(&self, state: &mut ControllerState) {
        self.elect_preferring(state, None)
    }

    /// The brokers an election chooses among, first pool that has one: the unfenced ISR, then
    /// (`kip-966`) the unfenced ELR, then (`kip-966`) the last known leader, then with unclean
    /// election every unfenced broker; and whether the chosen leader becomes the only ISR
    /// member (not for an ISR member).
    fn eligible(&self, state: &ControllerState) -> Option<(BrokerSet, bool)> {
        let from_isr = state.view.isr.minus(state.fenced);
        let from_elr = state.elr.minus(state.fenced);
        let unfenced = self.all().minus(state.fenced);
        if !from_isr.is_empty() {
            Some((from_isr, false))
        } else if self.cfg.variant == Variant::Kip966 && !from_elr.is_empty() {
            Some((from_elr, true))
        } else if let Some(last) = self.electable_last_known_leader(state) {
            Some((BrokerSet::empty().with(last), true))
        } else if self.cfg.unclean_leader_election && !unfenced.is_empty() {
            Some((unfenced, true))
        } else {
            None
        }
    }

    /// The election of `elect`, choosing `preferred` when it is eligible (else the lowest id).
    fn elect_preferring(&self, state: &mut ControllerState, preferred: Option<BrokerId>) {
        let view = state.view;
        let from_elr = self.cfg.variant == Variant::Kip966
            && view.isr.minus(state.fenced).is_empty()
            && !state.elr.minus(state.fenced).is_empty();
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
        if from_elr {
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
