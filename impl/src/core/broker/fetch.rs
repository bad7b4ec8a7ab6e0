//! §4.2 Leader: `Fetch` from follower f. Fencing, divergence detection, progress, ISR
//! expansion, HW advance, then the answer: records, or a parked fetch answered later.

use super::{BrokerCore, BrokerResult};
use crate::core::{CoreError, ReplicaRead, FETCH_RECORDS_MAX};
use crate::protocol::{
    BrokerEpoch, BrokerId, Epoch, FetchResult, Offset, PeerId, PeerMessage, Timer,
};

/// The fields of a `Fetch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FetchRequest {
    pub leader_epoch: Epoch,
    pub fetch_offset: Offset,
    pub last_fetched_epoch: Epoch,
    pub broker_epoch: BrokerEpoch,
}

impl<L: ReplicaRead> BrokerCore<L> {
    pub(super) fn on_fetch(
        &mut self,
        follower: BrokerId,
        request: FetchRequest,
    ) -> BrokerResult<(), L> {
        if let Some(refusal) = self.fetch_refusal(&request) {
            self.answer_fetch(follower, &request, refusal);
            return Ok(());
        }
        let log_end_offset = self.log().log_end_offset();
        if request.fetch_offset > log_end_offset {
            let result = FetchResult::OffsetOutOfRange { log_end_offset };
            self.answer_fetch(follower, &request, result);
            return Ok(());
        }
        self.record_fetch_progress(follower, &request);
        self.maybe_expand_isr(follower, &request);
        self.maybe_advance_high_watermark()?;
        let replica = &self.leader_state().replicas[&follower];
        if request.fetch_offset < self.log().log_end_offset() || replica.hw_sent < self.hw {
            self.send_records(follower, request.leader_epoch, request.fetch_offset)
        } else {
            // Step 7: nothing to say yet; held until the LEO or the HW moves, or until
            // `ParkedRelease(f)` fires (§4.12), whose clock starts with this fetch.
            let replica = self.replica_mut(follower);
            replica.parked_epoch = Some(request.leader_epoch);
            self.restart(Timer::ParkedRelease(follower));
            Ok(())
        }
    }

    /// Steps 1 and 2: fencing and divergence. `Some(answer)` ends the request there.
    fn fetch_refusal(&self, request: &FetchRequest) -> Option<FetchResult> {
        let Some(state) = &self.leader else {
            return Some(FetchResult::NotLeader);
        };
        if !self.config.variant.fences_fetches() {
            return None;
        }
        let own_epoch = self.installed_view().leader_epoch;
        if request.leader_epoch < own_epoch {
            return Some(FetchResult::FencedLeaderEpoch);
        }
        if request.leader_epoch > own_epoch {
            return Some(FetchResult::UnknownLeaderEpoch);
        }
        debug_assert!(state.leader_epoch_start_offset <= self.log().log_end_offset());
        if request.fetch_offset == 0 {
            return None;
        }
        // The largest epoch <= last_fetched_epoch in our history and where it ends; with no
        // such epoch, "epoch 0" ends where the log starts, at offset 0.
        let (epoch, end_offset) =
            self.history_end_offset(request.last_fetched_epoch, state.leader_epoch_start_offset);
        if epoch != request.last_fetched_epoch || end_offset < request.fetch_offset {
            return Some(FetchResult::DivergingEpoch { epoch, end_offset });
        }
        None
    }

    /// Step 4: the follower's `fetch_offset` and `broker_epoch`. A fetch at or past the LEO
    /// of the leader's last answer to it means f caught up: `Lag(f)`'s clock restarts (§4.8).
    /// A new fetch supersedes a parked one from the same follower (a `FetchRetry` re-send, or
    /// a fetch of a new incarnation after a crash: the old one's parked fetch must not be
    /// answered).
    fn record_fetch_progress(&mut self, follower: BrokerId, request: &FetchRequest) {
        let replica = self.replica_mut(follower);
        let caught_up = request.fetch_offset >= replica.end_offset_sent;
        replica.fetch_offset = Some(request.fetch_offset);
        replica.broker_epoch = request.broker_epoch;
        replica.parked_epoch = None;
        if caught_up {
            self.restart(Timer::Lag(follower));
        }
    }

    /// Step 5, ISR expansion: f is outside `view.isr ∪ pending_isr`, no `AlterPartition` is
    /// pending, and f has reached the HW and (KAFKA-7128, `kip-320` and `kip-966`) the start
    /// of this leader's epoch. The proposal names f's broker epoch as of this fetch (KIP-903).
    fn maybe_expand_isr(&mut self, follower: BrokerId, request: &FetchRequest) {
        let fetch_offset = request.fetch_offset;
        let view = self.installed_view();
        let state = self.leader_state();
        let reached_epoch_start = fetch_offset >= state.leader_epoch_start_offset
            || !self.config.variant.isr_join_needs_epoch_start();
        let eligible = !view.isr.contains(&follower)
            && state.pending_isr.is_none()
            && fetch_offset >= self.hw
            && reached_epoch_start;
        if !eligible {
            return;
        }
        let mut isr = view.isr.clone();
        isr.insert(follower);
        self.propose_isr(isr, vec![(follower, request.broker_epoch)]);
    }

    /// Answers a fetch at `fetch_offset` with records (at most `FETCH_RECORDS_MAX`) and the
    /// HW; `hw_sent = hw`. `leader_epoch` and `fetch_offset` echo the request.
    pub(super) fn send_records(
        &mut self,
        follower: BrokerId,
        leader_epoch: Epoch,
        fetch_offset: Offset,
    ) -> BrokerResult<(), L> {
        let records = self
            .log()
            .read(fetch_offset, FETCH_RECORDS_MAX)
            .map_err(CoreError::Storage)?;
        let hw = self.hw;
        let log_end_offset = self.log().log_end_offset();
        let replica = self.replica_mut(follower);
        replica.hw_sent = hw;
        replica.end_offset_sent = log_end_offset;
        replica.parked_epoch = None;
        let result = FetchResult::Records {
            records,
            high_watermark: hw,
        };
        let message = PeerMessage::FetchResponse {
            leader_epoch,
            fetch_offset,
            result,
        };
        self.send(PeerId::Broker(follower), message);
        Ok(())
    }

    fn answer_fetch(&mut self, follower: BrokerId, request: &FetchRequest, result: FetchResult) {
        let message = PeerMessage::FetchResponse {
            leader_epoch: request.leader_epoch,
            fetch_offset: request.fetch_offset,
            result,
        };
        self.send(PeerId::Broker(follower), message);
    }

    pub(super) fn replica_mut(&mut self, follower: BrokerId) -> &mut super::Replica {
        self.leader_state_mut()
            .replicas
            .get_mut(&follower)
            .expect("the leader tracks every other broker of the replica set")
    }
}
