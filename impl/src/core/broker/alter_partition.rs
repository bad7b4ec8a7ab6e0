//! §4.9 Leader: `AlterPartitionResponse` from the controller.

use super::{BrokerCore, BrokerResult};
use crate::core::ReplicaLog;
use crate::protocol::{AlterPartitionError, NodeId, View};

impl<L: ReplicaLog> BrokerCore<L> {
    /// Any answer clears `pending_isr`; `Ok(v)` newer than the installed view is installed
    /// (§4.1 rules, which try to advance the HW). A broker that is no longer leader has no
    /// proposal in flight and ignores the answer.
    pub(super) fn on_alter_partition_response(
        &mut self,
        result: Result<View, AlterPartitionError>,
    ) -> BrokerResult<(), L> {
        let Some(state) = self.leader.as_mut() else {
            return Ok(());
        };
        state.pending_isr = None;
        let Ok(view) = result else {
            return Ok(());
        };
        self.validate_view(NodeId::Controller, &view)?;
        if view.partition_epoch > self.installed_view().partition_epoch {
            self.install_view(view)?;
        }
        Ok(())
    }
}
