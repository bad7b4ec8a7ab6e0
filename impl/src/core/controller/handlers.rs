//! §4.10 Controller handlers: `AlterPartition`, `Expire(b)`, `RegisterBroker`, the
//! `Heartbeat(b)` timer, and the real-time `Heartbeat` message that fires it.

use std::collections::BTreeSet;

use super::ControllerCore;
use crate::core::{ControllerError, Variant};
use crate::protocol::{
    AlterPartitionError, BrokerEpoch, BrokerId, Epoch, NodeId, PeerMessage, View,
};

impl ControllerCore {
    /// `FencedLeaderEpoch` unless b is the view's leader at `leader_epoch`;
    /// `InvalidUpdateVersion` unless `partition_epoch` matches; in `kip-966`,
    /// `IneligibleReplica` if it adds a fenced broker (KIP-841) or names a broker epoch that
    /// differs from the broker's registered one (KIP-903: the fetch that qualified it came
    /// from an earlier incarnation, which may have held records the new one lost). Otherwise
    /// the new ISR is installed (`partition_epoch + 1`) and `Ok(view)` goes to b only.
    pub(super) fn on_alter_partition(
        &mut self,
        broker: BrokerId,
        isr: BTreeSet<BrokerId>,
        (leader_epoch, partition_epoch): (Epoch, Epoch),
        broker_epochs: &[(BrokerId, BrokerEpoch)],
    ) -> Result<(), ControllerError> {
        let invalid = |reason| ControllerError::InvalidRequest {
            from: NodeId::Broker(broker),
            message: "AlterPartition",
            reason,
        };
        if !isr.iter().all(|member| self.config.is_broker(*member)) {
            return Err(invalid("the ISR names a broker outside the replica set"));
        }
        let view = &self.state.view;
        let result = if view.leader != Some(broker) || view.leader_epoch != leader_epoch {
            Err(AlterPartitionError::FencedLeaderEpoch)
        } else if view.partition_epoch != partition_epoch {
            Err(AlterPartitionError::InvalidUpdateVersion)
        } else if !isr.contains(&broker) {
            return Err(invalid("the leader proposed an ISR without itself"));
        } else if self.config.variant == Variant::Kip966
            && (isr
                .difference(&view.isr)
                .any(|added| self.state.fenced.contains(added))
                || broker_epochs
                    .iter()
                    .any(|(member, epoch)| self.registered_epoch(*member) != *epoch))
        {
            Err(AlterPartitionError::IneligibleReplica)
        } else {
            self.set_isr(isr);
            self.state.view.partition_epoch += 1;
            Ok(self.state.view.clone())
        };
        let response = PeerMessage::AlterPartitionResponse { result };
        self.send(broker, response);
        Ok(())
    }

    /// `Expire(b)`: fence b; remove it from the ISR unless it is the last member; if it was
    /// the leader, elect. A changed view goes to every broker (an expiry that changes only the
    /// fenced set, e.g. of a broker outside the ISR, sends nothing, as in the model).
    pub(super) fn on_expire(&mut self, broker: BrokerId) {
        let before = self.state.view.clone();
        self.state.fenced.insert(broker);
        let isr = &self.state.view.isr;
        if isr.contains(&broker) && isr.len() > 1 {
            let mut isr = isr.clone();
            isr.remove(&broker);
            self.set_isr(isr);
        }
        if before.leader == Some(broker) {
            self.elect();
        }
        self.publish(&before);
    }

    /// `RegisterBroker` from b: record its broker epoch; unfence b; where the variant notices
    /// restarts (`restart_leaves_isr`) it may have lost unflushed records, so it leaves the ISR
    /// (in `kip-966` even as the last member; otherwise unless it is the last member) and the
    /// ELR; before KIP-380 a fast restart kept its ISR place. Elect if b was the leader or
    /// there is no leader. `RegisterBrokerResponse` goes to b first, then the view: to every
    /// broker if it changed, else to b only.
    ///
    /// A registration at the broker epoch b registered last (a `Heartbeat`) is not a restart:
    /// b never went down, lost nothing and keeps its ISR and ELR places.
    pub(super) fn on_register_broker(&mut self, broker: BrokerId, broker_epoch: BrokerEpoch) {
        let before = self.state.view.clone();
        let restarted = self.registered_epoch(broker) != broker_epoch;
        self.state.broker_epochs.insert(broker, broker_epoch);
        self.state.fenced.remove(&broker);
        let isr = &self.state.view.isr;
        let last_member = isr.len() == 1;
        let leaves = self.config.variant == Variant::Kip966 || !last_member;
        if restarted && isr.contains(&broker) && leaves && self.config.variant.restart_leaves_isr()
        {
            let mut isr = isr.clone();
            isr.remove(&broker);
            self.set_isr(isr);
        }
        if restarted {
            self.state.elr.remove(&broker);
        }
        if before.leader == Some(broker) || before.leader.is_none() {
            self.elect();
        }
        self.send(broker, PeerMessage::RegisterBrokerResponse);
        if self.state.view != before {
            self.publish(&before);
        } else {
            let view = self.state.view.clone();
            self.send(broker, PeerMessage::LeaderAndIsr(view));
        }
    }

    /// The `Heartbeat(b)` timer, armed while b is fenced: b was never down (its expiry was a
    /// false suspicion) and heartbeats again; it is let back in the way a registration is,
    /// at the broker epoch it registered last (the model's `Heartbeat(b)`).
    pub(super) fn on_heartbeat_timer(&mut self, broker: BrokerId) {
        assert!(
            self.state.fenced.contains(&broker),
            "Heartbeat({broker}) armed for an unfenced broker"
        );
        *self.fired.entry("Heartbeat").or_insert(0) += 1;
        let broker_epoch = self.registered_epoch(broker);
        self.on_register_broker(broker, broker_epoch);
    }

    /// Real time only: the `Heartbeat` message. From a fenced broker at its registered broker
    /// epoch it fires `Heartbeat(b)`; from an unfenced broker holding an older view it is
    /// answered with the current view; from another incarnation (a stale connection) it is
    /// ignored.
    pub(super) fn on_heartbeat(
        &mut self,
        broker: BrokerId,
        partition_epoch: Epoch,
        broker_epoch: BrokerEpoch,
    ) {
        if broker_epoch != self.registered_epoch(broker) {
            return;
        }
        if self.state.fenced.contains(&broker) {
            self.on_heartbeat_timer(broker);
        } else if partition_epoch < self.state.view.partition_epoch {
            let view = self.state.view.clone();
            self.send(broker, PeerMessage::LeaderAndIsr(view));
        }
    }

    /// b's broker epoch from its last registration; 0 for a broker that never restarted.
    fn registered_epoch(&self, broker: BrokerId) -> BrokerEpoch {
        self.state.broker_epochs.get(&broker).copied().unwrap_or(0)
    }

    /// A changed view (leader, leader epoch or ISR) gets `partition_epoch + 1` and goes to
    /// every broker; an unchanged one goes nowhere. `elect` has already bumped the leader
    /// epoch when it ran; otherwise the ISR alone changed, which in the ZooKeeper-era
    /// variants bumps the leader epoch too (`controller_isr_change_bumps_epoch`, §4.10).
    fn publish(&mut self, before: &View) {
        let bumps = self.config.variant.controller_isr_change_bumps_epoch();
        let view = &mut self.state.view;
        assert_eq!(
            view.partition_epoch, before.partition_epoch,
            "epochs bumped twice"
        );
        if *view == *before {
            return;
        }
        if view.leader_epoch == before.leader_epoch && bumps {
            view.leader_epoch += 1;
        }
        view.partition_epoch += 1;
        self.broadcast_view();
    }
}
