//! `Fetch`, the leader's side: fencing, divergence, progress, ISR expansion, parking (§4.2).

use super::{Broker, BrokerState};
use crate::actor::{Emit, Out};
use crate::msg::{FetchResult, PeerMsg};
use crate::types::{epochs, BrokerId, Epoch, Offset, Record, View};

/// One `Fetch` as the leader received it.
pub(super) struct FetchRequest {
    pub follower: BrokerId,
    pub broker_epoch: u8,
    pub leader_epoch: Epoch,
    pub fetch_offset: Offset,
    pub last_fetched_epoch: Epoch,
}

impl Broker {
    /// §4.2: the leader answers a follower's fetch, or parks it until there is news.
    pub(super) fn on_fetch(&self, state: &mut BrokerState, request: FetchRequest, out: &mut Out) {
        if let Some(refusal) = self.fetch_refusal(state, &request) {
            return answer_fetch(out, &request, refusal);
        }
        let view = state.view.expect("a leader holds a view");
        let leader = state.leader.as_mut().expect("checked by fetch_refusal");
        let progress = leader
            .replicas
            .get_mut(&request.follower)
            .expect("every other broker");
        progress.fetch_offset = Some(request.fetch_offset);
        progress.broker_epoch = request.broker_epoch;
        progress.parked = Some(request.leader_epoch);
        self.maybe_expand_isr(state, view, &request, out);
        // Advancing the HW answers parked fetches, this one included when there is news.
        self.advance_hw(state, out);
        self.answer_parked(state, out);
    }

    /// The answer a fetch gets at once instead of records: not the leader, fenced (`kip-320`,
    /// `kip-966`), diverging, or past the LEO.
    fn fetch_refusal(&self, state: &BrokerState, request: &FetchRequest) -> Option<FetchResult> {
        let Some(leader) = &state.leader else {
            return Some(FetchResult::NotLeader);
        };
        let view = state.view.expect("a leader holds a view");
        if self.cfg.variant.fences_fetch() {
            if request.leader_epoch < view.leader_epoch {
                return Some(FetchResult::FencedLeaderEpoch);
            }
            if request.leader_epoch > view.leader_epoch {
                return Some(FetchResult::UnknownLeaderEpoch);
            }
            if request.fetch_offset > 0 {
                let current = (view.leader_epoch, leader.leader_epoch_start_offset);
                let (epoch, end_offset) =
                    epochs::leader_lookup(&state.log, current, request.last_fetched_epoch);
                if epoch != request.last_fetched_epoch || end_offset < request.fetch_offset {
                    return Some(FetchResult::DivergingEpoch { epoch, end_offset });
                }
            }
        }
        (request.fetch_offset > state.leo()).then(|| FetchResult::OffsetOutOfRange {
            log_end_offset: state.leo(),
        })
    }

    /// A follower outside the ISR that has caught up (to the HW and, from KAFKA-7128, to the
    /// start of the leader's epoch) is proposed back in, one `AlterPartition` at a time.
    fn maybe_expand_isr(
        &self,
        state: &mut BrokerState,
        view: View,
        request: &FetchRequest,
        out: &mut Out,
    ) {
        let hw = state.hw;
        let leader = state.leader.as_mut().expect("a leader");
        let caught_up = request.fetch_offset >= hw
            && (request.fetch_offset >= leader.leader_epoch_start_offset
                || !self.cfg.variant.isr_join_needs_epoch_start());
        // With no proposal in flight the maximal ISR is the view's ISR.
        if leader.pending_isr.is_some() || view.isr.contains(request.follower) || !caught_up {
            return;
        }
        let added = vec![(request.follower, request.broker_epoch)];
        leader.propose_isr(view, view.isr.with(request.follower), added, out);
    }
}

/// A fetch answered at once; the answer echoes the request's epoch and offset (§4.3).
fn answer_fetch(out: &mut Out, request: &FetchRequest, result: FetchResult) {
    let response = PeerMsg::FetchResponse {
        leader_epoch: request.leader_epoch,
        fetch_offset: request.fetch_offset,
        result,
    };
    out.send_peer(request.follower.id(), response);
}

/// Answers a parked fetch: the leader's records from `fetch_offset` and its HW. The answer
/// echoes the request's `leader_epoch`, not the leader's: in the variants without fetch
/// fencing a fetch stamped with an older epoch is served, and its answer says so.
pub(super) fn send_records(
    out: &mut Out,
    log: &[Record],
    follower: BrokerId,
    leader_epoch: Epoch,
    fetch_offset: Offset,
    hw: Offset,
) {
    let records = log[fetch_offset as usize..].to_vec();
    let result = FetchResult::Records {
        records,
        high_watermark: hw,
    };
    let response = PeerMsg::FetchResponse {
        leader_epoch,
        fetch_offset,
        result,
    };
    out.send_peer(follower.id(), response);
}
