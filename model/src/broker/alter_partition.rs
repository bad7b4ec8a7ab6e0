//! `AlterPartitionResponse`: the controller answered the leader's ISR proposal (§4.9).

use super::{Broker, BrokerState};
use crate::actor::Out;
use crate::msg::AlterPartitionResult;

impl Broker {
    /// §4.9: the proposal is no longer in flight; an accepted one installs its newer view.
    pub(super) fn on_alter_response(
        &self,
        state: &mut BrokerState,
        result: AlterPartitionResult,
        out: &mut Out,
    ) {
        let Some(leader) = state.leader.as_mut() else {
            return;
        };
        leader.pending_isr = None;
        if let AlterPartitionResult::Ok(view) = result {
            if state
                .view
                .is_none_or(|v| v.partition_epoch < view.partition_epoch)
            {
                state.view = Some(view);
            }
        }
        self.advance_hw(state, out);
    }
}
