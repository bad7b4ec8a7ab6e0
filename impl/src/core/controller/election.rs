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

    /// Elects a leader and installs it in the view (the caller bumps the epochs):
    /// the lowest unfenced ISR member; else (`kip-966`) the lowest unfenced ELR member; else,
    /// with `unclean_leader_election`, the lowest unfenced broker; else no leader. A leader
    /// chosen outside the ISR becomes its only member (as Kafka does for ELR and unclean
    /// elections), so the leader is always in its own ISR.
    pub(super) fn elect(&mut self) {
        let unfenced = |broker: &&BrokerId| !self.state.fenced.contains(broker);
        if let Some(leader) = self.state.view.isr.iter().find(unfenced).copied() {
            self.state.view.leader = Some(leader);
            return;
        }
        let from_elr = if self.config.variant == Variant::Kip966 {
            self.state.elr.iter().find(unfenced).copied()
        } else {
            None
        };
        let unclean = || {
            let mut brokers = self.config.brokers.clone();
            brokers.sort_unstable();
            brokers
                .into_iter()
                .find(|broker| !self.state.fenced.contains(broker))
        };
        let outside = from_elr.or_else(|| {
            if self.config.unclean_leader_election {
                unclean()
            } else {
                None
            }
        });
        match outside {
            Some(leader) => {
                self.set_isr(BTreeSet::from([leader]));
                self.state.view.leader = Some(leader);
            }
            None => self.state.view.leader = None,
        }
    }
}
