//! The broker's timers: which are armed, and the three that end a wait, `FetchRetry`,
//! `FetchBackoff` and `ParkedRelease(f)` (§4.12).

use super::fetch::send_records;
use super::{Broker, BrokerState, FetchState};
use crate::actor::Out;
use crate::msg::Timer;
use crate::types::BrokerId;
use std::collections::BTreeSet;

impl BrokerState {
    /// Every broker timer that should be armed: `Lag(f)` (§4.8), the wait timers of §4.12
    /// and the durability timers of §2.
    pub fn timers(&self) -> BTreeSet<Timer> {
        let mut timers: BTreeSet<Timer> = self.lag_timers().iter().map(Timer::Lag).collect();
        if self.follows_leader() {
            timers.insert(match self.fetch_state {
                FetchState::Fetching | FetchState::Truncating => Timer::FetchRetry,
                FetchState::Idle => Timer::FetchBackoff,
            });
        }
        if let Some(leader) = &self.leader {
            let parked = leader.replicas.iter().filter(|(_, p)| p.parked.is_some());
            timers.extend(parked.map(|(f, _)| Timer::ParkedRelease(*f)));
        }
        let (flush, hw_checkpoint) = self.durability_timers();
        if flush {
            timers.insert(Timer::Flush);
        }
        if hw_checkpoint {
            timers.insert(Timer::HwCheckpoint);
        }
        timers
    }

    /// Its view names a leader and it is not that leader (a leader always holds leader state).
    fn follows_leader(&self) -> bool {
        self.leader.is_none() && self.view.is_some_and(|v| v.leader.is_some())
    }
}

impl Broker {
    /// `FetchRetry`: send the request in flight again, unchanged; both may now be answered,
    /// and the echo rule (§4.3) applies only the answer to the fetch it would send now.
    pub(super) fn on_fetch_retry(&self, state: &mut BrokerState, out: &mut Out) {
        let leader = state
            .view
            .and_then(|v| v.leader)
            .expect("a follower's leader");
        match state.fetch_state {
            FetchState::Truncating => self.send_epoch_lookup(state, leader.id(), out),
            FetchState::Fetching => self.send_fetch(state, leader.id(), out),
            FetchState::Idle => unreachable!("FetchRetry is armed only with a request in flight"),
        }
    }

    /// `FetchBackoff`: fetch again as on becoming follower (§4.1 step 3), without
    /// `hw-truncation`'s truncation; the epoch-lookup variants look up again, since the stop
    /// may have answered the lookup itself.
    pub(super) fn on_fetch_backoff(&self, state: &mut BrokerState, out: &mut Out) {
        let leader = state
            .view
            .and_then(|v| v.leader)
            .expect("a follower's leader");
        if self.cfg.variant.epoch_lookup() && !state.log.is_empty() {
            self.send_epoch_lookup(state, leader.id(), out);
        } else {
            self.send_fetch(state, leader.id(), out);
        }
    }

    /// `ParkedRelease(f)`: answer f's parked fetch now, with what there is (no records and an
    /// unchanged HW, or it would not be parked).
    pub(super) fn on_parked_release(
        &self,
        state: &mut BrokerState,
        follower: BrokerId,
        out: &mut Out,
    ) {
        let hw = state.hw;
        let leader = state
            .leader
            .as_mut()
            .expect("ParkedRelease is armed on a leader");
        let progress = leader
            .replicas
            .get_mut(&follower)
            .expect("every other broker");
        let leader_epoch = progress.parked.take().expect("a parked fetch");
        let fetch_offset = progress
            .fetch_offset
            .expect("a parked fetch recorded progress");
        progress.hw_sent = hw;
        send_records(out, &state.log, follower, leader_epoch, fetch_offset, hw);
    }
}
