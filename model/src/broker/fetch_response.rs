//! `FetchResponse`, the follower's side: append, truncate on divergence, or stop (§4.3).

use super::{Broker, BrokerState, FetchState};
use crate::actor::Out;
use crate::msg::FetchResult;
use crate::types::epochs;
use stateright::actor::Id;

impl Broker {
    /// §4.3: the follower handles its leader's answer to the fetch in flight.
    pub(super) fn on_fetch_response(
        &self,
        state: &mut BrokerState,
        src: Id,
        result: FetchResult,
        out: &mut Out,
    ) {
        match result {
            FetchResult::Records {
                records,
                high_watermark,
            } => {
                state.log.extend(records);
                state.hw = high_watermark.min(state.leo());
                self.send_fetch(state, src, out);
            }
            FetchResult::DivergingEpoch { epoch, end_offset } => {
                let own_end = epochs::end_of_epoch(&state.log, epoch);
                state.truncate(end_offset.min(own_end));
                self.send_fetch(state, src, out);
            }
            FetchResult::OffsetOutOfRange { log_end_offset } => {
                state.truncate(log_end_offset);
                self.send_fetch(state, src, out);
            }
            FetchResult::FencedLeaderEpoch
            | FetchResult::UnknownLeaderEpoch
            | FetchResult::NotLeader => state.fetch_state = FetchState::Idle,
        }
    }
}
