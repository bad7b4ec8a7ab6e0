//! §4.8 Leader: ISR shrink through the `Lag(f)` timer.

use std::collections::BTreeSet;

use super::BrokerCore;
use crate::core::ReplicaRead;
use crate::protocol::{BrokerId, Timer};

impl<L: ReplicaRead> BrokerCore<L> {
    /// `Lag(f)` is armed while f is in `view.isr`, f's `fetch_offset` is `None` or below LEO,
    /// and no `AlterPartition` is pending; cancelled otherwise (and whenever this broker is not
    /// leader). Recomputed after every input.
    pub(super) fn refresh_lag_timers(&mut self) {
        let desired: BTreeSet<Timer> = self
            .lagging_followers()
            .into_iter()
            .map(Timer::Lag)
            .collect();
        self.armed.retain(|timer| !matches!(timer, Timer::Lag(_)));
        self.armed.extend(desired);
    }

    fn lagging_followers(&self) -> Vec<BrokerId> {
        let (Some(state), Some(view)) = (&self.leader, &self.view) else {
            return Vec::new();
        };
        if state.pending_isr.is_some() {
            return Vec::new();
        }
        let log_end_offset = self.log().log_end_offset();
        view.isr
            .iter()
            .filter(|member| **member != self.id)
            .filter(|member| {
                let fetch_offset = state.replicas.get(member).and_then(|r| r.fetch_offset);
                fetch_offset.is_none_or(|offset| offset < log_end_offset)
            })
            .copied()
            .collect()
    }

    /// Firing `Lag(f)`: f fell behind for longer than the lag window. Propose the ISR without
    /// it. (`pending_isr` is the smaller set; the HW still counts f until the controller
    /// accepts, because the HW uses `view.isr ∪ pending_isr`.)
    pub(super) fn on_lag(&mut self, follower: BrokerId) {
        let view = self.installed_view();
        assert!(
            view.isr.contains(&follower),
            "Lag({follower}) armed for a non-member"
        );
        let mut isr = view.isr.clone();
        isr.remove(&follower);
        self.propose_isr(isr, Vec::new());
    }
}
