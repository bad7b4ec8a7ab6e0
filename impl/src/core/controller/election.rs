//! §4.10 Elections and ISR bookkeeping, including `kip-966`'s eligible leader replicas.

use std::collections::BTreeSet;

use super::ControllerCore;
use crate::core::Variant;
use crate::protocol::BrokerId;

impl ControllerCore {
    /// Replaces the ISR. In `kip-966`, a member removed while the remaining ISR is smaller
    /// than `min_insync_replicas` joins the ELR (it holds every committed record, because the
    /// HW cannot advance while the ISR is that small), and a member (re)joining the ISR leaves
    /// the ELR.
    ///
    /// Beyond docs/protocol.md, as Kafka's controller does (`PartitionChangeBuilder`): once
    /// the ISR has `min_insync_replicas` members again the ELR is emptied, because the HW
    /// advances again without the ELR members and they stop holding every committed record.
    /// Without this an ELR member that missed later commits could be elected
    /// (`kip966_elr_is_cleared_when_the_isr_regains_min_isr` shows the loss).
    pub(super) fn set_isr(&mut self, isr: BTreeSet<BrokerId>) {
        if self.config.variant == Variant::Kip966 {
            let small = (isr.len() as u64) < u64::from(self.config.min_insync_replicas);
            if small {
                let removed = self.state.view.isr.difference(&isr).copied();
                self.state.elr.extend(removed);
                for member in &isr {
                    self.state.elr.remove(member);
                }
            } else {
                self.state.elr.clear();
            }
        }
        self.state.view.isr = isr;
    }

    /// Elects a leader and installs it in the view (the caller bumps `partition_epoch`):
    /// the lowest unfenced ISR member; else (`kip-966`) the lowest unfenced ELR member; else,
    /// with `unclean_leader_election`, the lowest unfenced broker; else no leader. A leader
    /// chosen outside the ISR becomes its only member (as Kafka does for ELR and unclean
    /// elections), so the leader is always in its own ISR; the members it replaces do not
    /// join the ELR. The elected broker leaves the ELR. Every election that yields a leader,
    /// or takes the leader away, starts a new leader epoch, even when it re-elects the same
    /// broker (a restarted leader must not reuse its old epoch); none to none changes nothing.
    /// This matches the model (`model/src/controller.rs::elect`).
    pub(super) fn elect(&mut self) {
        let fenced = &self.state.fenced;
        let from_isr = self
            .state
            .view
            .isr
            .iter()
            .find(|b| !fenced.contains(b))
            .copied();
        let from_elr = (self.config.variant == Variant::Kip966)
            .then(|| self.state.elr.iter().find(|b| !fenced.contains(b)).copied())
            .flatten();
        let unclean = self
            .config
            .unclean_leader_election
            .then(|| {
                let mut brokers = self.config.brokers.clone();
                brokers.sort_unstable();
                brokers.into_iter().find(|b| !fenced.contains(b))
            })
            .flatten();
        let (leader, isr) = match (from_isr, from_elr.or(unclean)) {
            (Some(leader), _) => (Some(leader), None),
            (None, Some(leader)) => (Some(leader), Some(BTreeSet::from([leader]))),
            (None, None) => (None, None),
        };
        if let Some(leader) = leader {
            self.state.elr.remove(&leader);
        }
        if leader.is_none() && self.state.view.leader.is_none() {
            return;
        }
        if let Some(isr) = isr {
            self.state.view.isr = isr;
        }
        self.state.view.leader = leader;
        self.state.view.leader_epoch += 1;
    }
}
