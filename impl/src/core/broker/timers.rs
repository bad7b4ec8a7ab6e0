//! §4.12 The broker's timers that end a wait: `FetchRetry`, `FetchBackoff`,
//! `ParkedRelease(f)` and `BrokerHeartbeat` (`Lag(f)` is §4.8, in `lag`).
//!
//! Whether each is armed follows from the state alone and is recomputed after every input
//! (`refresh_wait_timers`); a handler only says when an armed timer's clock restarts
//! (`restart`). The runtime turns that into deadlines: it never decides when a follower
//! re-sends or a leader answers, it only reports that a deadline passed (`BrokerCore::fire`).

use super::{BrokerCore, BrokerResult};
use crate::core::{ReplicaRead, Variant};
use crate::protocol::{BrokerId, FetchState, PeerId, PeerMessage, Timer};

impl<L: ReplicaRead> BrokerCore<L> {
    /// Arms exactly the wait timers the state calls for (§4.12): `BrokerHeartbeat` always;
    /// as follower of another broker, `FetchRetry` with a request in flight and `FetchBackoff`
    /// when stopped; as leader, `ParkedRelease(f)` for every follower with a parked fetch.
    pub(super) fn refresh_wait_timers(&mut self) {
        self.armed.retain(|timer| {
            !matches!(
                timer,
                Timer::FetchRetry | Timer::FetchBackoff | Timer::ParkedRelease(_)
            )
        });
        self.armed.insert(Timer::BrokerHeartbeat);
        if self.followed_leader().is_some() {
            let timer = match self.fetch_state {
                FetchState::Fetching | FetchState::Truncating => Timer::FetchRetry,
                FetchState::Idle => Timer::FetchBackoff,
            };
            self.armed.insert(timer);
        }
        let parked: Vec<BrokerId> = self
            .leader
            .iter()
            .flat_map(|state| state.replicas.iter())
            .filter(|(_, replica)| replica.parked_epoch.is_some())
            .map(|(follower, _)| *follower)
            .collect();
        self.armed
            .extend(parked.into_iter().map(Timer::ParkedRelease));
    }

    /// The leader this broker follows: its view names another broker and it holds no leader
    /// state. A broker without a view (restarted, unregistered) follows nobody.
    fn followed_leader(&self) -> Option<BrokerId> {
        let leader = self.view.as_ref()?.leader?;
        (leader != self.id && self.leader.is_none()).then_some(leader)
    }

    /// `FetchRetry`: the request in flight is sent again, unchanged.
    pub(super) fn on_fetch_retry(&mut self) {
        let leader = self
            .followed_leader()
            .expect("FetchRetry armed for a follower");
        match self.fetch_state {
            FetchState::Truncating => self.send_epoch_lookup(leader),
            FetchState::Fetching => self.send_fetch(),
            FetchState::Idle => unreachable!("FetchRetry armed with no request in flight"),
        }
    }

    /// `FetchBackoff`: fetch again as on becoming follower of this leader (§4.1 step 3), but
    /// without `hw-truncation`'s truncation, which was done then. The epoch-lookup variants
    /// look up again: the stop may have been the answer to the lookup itself, and a `Fetch`
    /// sent instead would build on a suffix that was never checked against the leader.
    pub(super) fn on_fetch_backoff(&mut self) {
        let leader = self
            .followed_leader()
            .expect("FetchBackoff armed for a follower");
        assert_eq!(
            self.fetch_state,
            FetchState::Idle,
            "FetchBackoff armed while fetching"
        );
        match self.config.variant {
            Variant::Kip101 | Variant::Kip279 if self.log().log_end_offset() > 0 => {
                self.send_epoch_lookup(leader)
            }
            Variant::Kip101
            | Variant::Kip279
            | Variant::Kip320
            | Variant::Kip966
            | Variant::HwTruncation => self.send_fetch(),
        }
    }

    /// `ParkedRelease(f)`: answers f's parked fetch now by §4.2 step 7's rule (records from
    /// its fetch offset and the HW; none and an unchanged HW, or it would not be parked).
    pub(super) fn on_parked_release(&mut self, follower: BrokerId) -> BrokerResult<(), L> {
        let replica = &self.leader_state().replicas[&follower];
        let epoch = replica
            .parked_epoch
            .expect("ParkedRelease armed for a parked fetch");
        let fetch_offset = replica
            .fetch_offset
            .expect("a parked fetch recorded progress");
        self.send_records(follower, epoch, fetch_offset)
    }

    /// `BrokerHeartbeat`: the heartbeat carries the installed view's `partition_epoch` (0
    /// before the first view), so a controller that knows a newer view answers with it, and
    /// the broker epoch, so a fenced broker's heartbeat lets it back in (the controller's
    /// `Heartbeat(b)`) only for the incarnation the controller registered. Until its
    /// registration is answered a restarted broker re-sends `RegisterBroker` instead: a broken
    /// connection may have lost the first one, and nothing else would repeat it (the
    /// controller treats a repeated registration like the first).
    pub(super) fn on_broker_heartbeat(&mut self) {
        let broker_epoch = self.broker_epoch;
        let message = match self.registered {
            false => PeerMessage::RegisterBroker { broker_epoch },
            true => PeerMessage::Heartbeat {
                partition_epoch: self.view.as_ref().map_or(0, |view| view.partition_epoch),
                broker_epoch,
            },
        };
        self.send(PeerId::Controller, message);
    }

    /// Restarts `timer`'s clock if it is armed once the input has been handled (§2 "Timers").
    pub(super) fn restart(&mut self, timer: Timer) {
        self.restarted.insert(timer);
    }
}
