//! `AlterPartition`: the leader proposes an ISR, and the controller answers (§4.9).

use super::{controller, Broker, BrokerState, LeaderState};
use crate::actor::{Emit, Out};
use crate::msg::{AlterPartitionResult, PeerMsg};
use crate::types::{BrokerId, BrokerSet, View};

impl LeaderState {
    /// §4.9: propose `isr` to the controller and hold it in flight until the answer;
    /// `broker_epochs` are those of the members it adds (KIP-903).
    pub(super) fn propose_isr(
        &mut self,
        view: View,
        isr: BrokerSet,
        broker_epochs: Vec<(BrokerId, u8)>,
        out: &mut Out,
    ) {
        self.pending_isr = Some(isr);
        out.send_peer(
            controller(),
            PeerMsg::AlterPartition {
                isr,
                leader_epoch: view.leader_epoch,
                partition_epoch: view.partition_epoch,
                broker_epochs,
            },
        );
    }
}

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
