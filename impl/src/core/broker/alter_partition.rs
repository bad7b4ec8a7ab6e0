//! §4.9 Leader: `AlterPartitionResponse` from the controller.

use super::{BrokerCore, BrokerResult};
use crate::core::ReplicaRead;
use crate::protocol::{AlterPartitionError, NodeId, View};

impl<L: ReplicaRead> BrokerCore<L> {
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
