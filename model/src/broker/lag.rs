//! ISR lag: the `Lag(f)` clocks of the followers in the ISR that are behind (§4.8).

use super::{controller, Broker, BrokerState};
use crate::actor::{Emit, Out};
use crate::msg::PeerMsg;
use crate::types::{BrokerId, BrokerSet};

impl BrokerState {
    /// The `Lag(f)` timers that should be armed (§4.8): ISR followers behind the LEO, while
    /// no `AlterPartition` is in flight.
    pub fn lag_timers(&self) -> BrokerSet {
        let (Some(leader), Some(view)) = (&self.leader, &self.view) else {
            return BrokerSet::empty();
        };
        if leader.pending_isr.is_some() {
            return BrokerSet::empty();
        }
        leader
            .replicas
            .iter()
            .filter(|(f, p)| {
                view.isr.contains(**f) && p.fetch_offset.is_none_or(|o| o < self.leo())
            })
            .fold(BrokerSet::empty(), |set, (f, _)| set.with(*f))
    }
}

impl Broker {
    /// `Lag(f)` fired: propose the ISR without f (§4.8).
    pub(super) fn on_lag(&self, state: &mut BrokerState, follower: BrokerId, out: &mut Out) {
        let view = state.view.expect("a leader holds a view");
        let isr = view.isr.without(follower);
        let leader = state
            .leader
            .as_mut()
            .expect("lag timers are armed only on a leader");
        leader.pending_isr = Some(isr);
        out.send_peer(
            controller(),
            PeerMsg::AlterPartition {
                isr,
                leader_epoch: view.leader_epoch,
                partition_epoch: view.partition_epoch,
                broker_epochs: Vec::new(),
            },
        );
    }
}
