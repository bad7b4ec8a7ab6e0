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
    /// the first unfenced ISR member in assignment order (`ProtocolConfig::brokers`; the
    /// lowest id on partition 0); else (`kip-966`) the first unfenced ELR member; else
    /// (`kip-966`) the last known leader, once the ISR and the ELR are empty; else, with
    /// `unclean_leader_election`, the first unfenced broker; else no leader. A leader
    /// chosen outside the ISR becomes its only member (as Kafka does for ELR and unclean
    /// elections), so the leader is always in its own ISR; the members an ELR leader
    /// replaces join the ELR (an unclean leader's do not). The elected broker leaves the ELR.
    /// Every election that yields a leader, or takes the leader away, starts a new leader
    /// epoch, even when it re-elects the same broker (a restarted leader must not reuse its
    /// old epoch); none to none changes nothing.
    /// This matches the model (`model/src/controller.rs::elect`).
    pub(super) fn elect(&mut self) {
        let last_known = self.electable_last_known_leader();
        let fenced = &self.state.fenced;
        let unfenced = |b: &BrokerId| !fenced.contains(b);
        let config = &self.config;
        let from_isr = config.first_in_assignment(&self.state.view.isr, unfenced);
        let from_elr = (config.variant == Variant::Kip966)
            .then(|| config.first_in_assignment(&self.state.elr, unfenced))
            .flatten();
        let unclean = config
            .unclean_leader_election
            .then(|| config.first_in_assignment(&config.brokers, unfenced))
            .flatten();
        let (leader, isr) = match (from_isr, from_elr.or(last_known).or(unclean)) {
            (Some(leader), _) => (Some(leader), None),
            (None, Some(leader)) => (Some(leader), Some(BTreeSet::from([leader]))),
            (None, None) => (None, None),
        };
        if from_isr.is_none() && from_elr.is_some() {
            // The ISR members an ELR leader replaces are fenced but lost nothing (a restart
            // would have taken them out): they stay eligible, as in Kafka, where fencing
            // moves the last ISR member to the ELR. Dropping them let the last known leader
            // be elected over one holding an acknowledged record (docs/counterexamples.md).
            let replaced = self.state.view.isr.clone();
            self.state.elr.extend(replaced);
        }
        if let Some(leader) = leader {
            self.state.elr.remove(&leader);
        }
        self.track_last_known_leader(leader);
        if leader.is_none() && self.state.view.leader.is_none() {
            return;
        }
        if let Some(isr) = isr {
            self.state.view.isr = isr;
        }
        self.state.view.leader = leader;
        self.state.view.leader_epoch += 1;
    }

    /// `kip-966` (§4.10, Kafka's `canElectLastKnownLeader`): with the ISR and the ELR both
    /// empty, the last known leader (or the leader this election is about to lose, which
    /// would become it) may lead once it is unfenced. The election is unclean: it may have
    /// lost acknowledged records in the crash that emptied the ISR, and the other brokers
    /// truncate to its log. It precedes an unclean election, as in Kafka.
    fn electable_last_known_leader(&self) -> Option<BrokerId> {
        if self.config.variant != Variant::Kip966 {
            return None;
        }
        let empty = self.state.view.isr.is_empty() && self.state.elr.is_empty();
        let last = self.state.last_known_leader.or(self.state.view.leader)?;
        (empty && !self.state.fenced.contains(&last)).then_some(last)
    }

    /// `kip-966`: an election that takes the partition's leader away remembers it as the last
    /// known leader (the first time only, as Kafka's `maybeUpdateLastKnownLeader`); one that
    /// yields a leader forgets it. Called before the view changes.
    fn track_last_known_leader(&mut self, elected: Option<BrokerId>) {
        if self.config.variant != Variant::Kip966 {
            return;
        }
        match (self.state.view.leader, elected) {
            (_, Some(_)) => self.state.last_known_leader = None,
            (Some(leader), None) if self.state.last_known_leader.is_none() => {
                self.state.last_known_leader = Some(leader);
            }
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::core::{ControllerCore, ProtocolConfig, Variant};
    use crate::protocol::{PeerId, PeerMessage, Timer};

    fn kip966(brokers: Vec<u32>) -> ControllerCore {
        let config = ProtocolConfig {
            variant: Variant::Kip966,
            unclean_leader_election: false,
            min_insync_replicas: 2,
            brokers,
        };
        ControllerCore::new(config, None).0
    }

    fn restart(core: &mut ControllerCore, broker: u32) {
        let register = PeerMessage::RegisterBroker { broker_epoch: 1 };
        core.step_peer(PeerId::Broker(broker), register).unwrap();
    }

    /// Goal (docs/protocol.md §7): partition p's assignment is id order rotated by p, so the
    /// initial leaders of three partitions are brokers 1, 2 and 3, and each election takes the
    /// first eligible broker in its own partition's order: the follower after the fenced
    /// leader, wrapping round, not the lowest id. Partition 0 is the model's lowest id.
    #[test]
    fn each_partition_leads_from_and_elects_in_its_own_assignment_order() {
        let config = kip966(vec![3, 1, 2]).config.clone();
        let leaders: Vec<_> = (0..3)
            .map(|index| {
                let core = ControllerCore::new(config.for_partition(index), None).0;
                core.state().view.leader
            })
            .collect();
        assert_eq!(leaders, [Some(1), Some(2), Some(3)]);
        assert_eq!(config.for_partition(3).brokers, [1, 2, 3], "wraps round");
        let mut third = ControllerCore::new(config.for_partition(2), None).0;
        assert_eq!(third.config.brokers, [3, 1, 2]);
        third.fire(&Timer::Expire(3)).unwrap();
        assert_eq!(
            third.state().view.leader,
            Some(1),
            "after 3 comes 1, then 2"
        );
        third.fire(&Timer::Expire(1)).unwrap();
        assert_eq!(third.state().view.leader, Some(2));
        let mut first = ControllerCore::new(config.for_partition(0), None).0;
        first.fire(&Timer::Expire(1)).unwrap();
        assert_eq!(
            first.state().view.leader,
            Some(2),
            "lowest id on partition 0"
        );
    }

    /// Goal (§4.10, last known leader): every broker fenced as leader in turn, then all
    /// restarted, leaves the ISR and the ELR empty; the last leader is elected again, alone in
    /// the ISR, at a new leader epoch, and is forgotten as last known leader. Broker 1, which
    /// restarted first, is not elected although it was unfenced first.
    #[test]
    fn the_last_known_leader_leads_once_isr_and_elr_are_empty() {
        let mut core = kip966(vec![1, 2, 3]);
        for broker in [1, 2, 3] {
            assert_eq!(core.state().view.leader, Some(broker));
            core.fire(&Timer::Expire(broker)).unwrap();
        }
        assert_eq!(core.state().view.leader, None);
        assert_eq!(core.state().last_known_leader, Some(3));
        let epoch = core.state().view.leader_epoch;
        restart(&mut core, 1);
        restart(&mut core, 2);
        assert_eq!(core.state().view.leader, None, "broker 3 is still fenced");
        restart(&mut core, 3);
        let state = core.state();
        assert_eq!(state.view.leader, Some(3));
        assert_eq!(state.view.isr, BTreeSet::from([3]));
        assert_eq!(state.view.leader_epoch, epoch + 1);
        assert!(state.elr.is_empty());
        assert_eq!(state.last_known_leader, None);
    }

    /// Goal (§4.10): a fenced last ISR member that an ELR leader replaces stays eligible in
    /// the ELR (it lost nothing), so the last known leader cannot be elected over it.
    #[test]
    fn the_isr_member_an_elr_leader_replaces_joins_the_elr() {
        let mut core = kip966(vec![1, 2]);
        core.fire(&Timer::Expire(2)).unwrap();
        core.fire(&Timer::Heartbeat(2)).unwrap();
        assert_eq!(core.state().elr, BTreeSet::from([2]));
        core.fire(&Timer::Expire(1)).unwrap();
        assert_eq!(core.state().view.leader, Some(2), "elected from the ELR");
        assert_eq!(core.state().elr, BTreeSet::from([1]));
        restart(&mut core, 2);
        assert_eq!(
            core.state().view.leader,
            None,
            "broker 1 is eligible, but fenced"
        );
        assert_eq!(core.state().last_known_leader, Some(2));
    }
}
