//! §4.9 Leader: an ISR change proposed to the controller (`AlterPartition`), and its answer.

use std::collections::BTreeSet;

use super::{BrokerCore, BrokerResult};
use crate::core::ReplicaRead;
use crate::protocol::{
    AlterPartitionError, BrokerEpoch, BrokerId, NodeId, PeerId, PeerMessage, View,
};

impl<L: ReplicaRead> BrokerCore<L> {
    /// Proposes `isr` for the installed view (an expansion names the joining follower's broker
    /// epoch, KIP-903; a shrink names none) and keeps it as `pending_isr` until the answer:
    /// one proposal in flight at a time, and the HW counts `view.isr ∪ pending_isr`.
    pub(super) fn propose_isr(
        &mut self,
        isr: BTreeSet<BrokerId>,
        broker_epochs: Vec<(BrokerId, BrokerEpoch)>,
    ) {
        assert!(
            self.leader_state().pending_isr.is_none(),
            "a second AlterPartition while one is in flight"
        );
        let view = self.installed_view();
        let message = PeerMessage::AlterPartition {
            isr: isr.clone(),
            leader_epoch: view.leader_epoch,
            partition_epoch: view.partition_epoch,
            broker_epochs,
        };
        self.leader_state_mut().pending_isr = Some(isr);
        self.send(PeerId::Controller, message);
    }

    /// Any answer clears `pending_isr`; `Ok(v)` newer than the installed view is installed
    /// (§4.1 rules). Then, after every answer, the leader tries to advance the HW: the HW is
    /// a function of `view.isr ∪ pending_isr`, so clearing a refused expansion's
    /// `pending_isr` can raise it, and in stepped mode nothing else would re-evaluate it
    /// (DIVERGENCES.md D4). A broker that is no longer leader has no proposal in flight and
    /// ignores the answer.
    pub(super) fn on_alter_partition_response(
        &mut self,
        result: Result<View, AlterPartitionError>,
    ) -> BrokerResult<(), L> {
        let Some(state) = self.leader.as_mut() else {
            return Ok(());
        };
        state.pending_isr = None;
        if let Ok(view) = result {
            self.validate_view(NodeId::Controller, &view)?;
            if view.partition_epoch > self.installed_view().partition_epoch {
                self.install_view(view)?;
            }
        }
        self.maybe_advance_high_watermark()
    }
}
