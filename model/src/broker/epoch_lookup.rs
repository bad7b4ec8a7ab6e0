//! `OffsetsForLeaderEpoch`, both sides (§4.4, `kip-101` and `kip-279`).

use super::{Broker, BrokerState, FetchState};
use crate::actor::Out;
use crate::config::Variant;
use crate::msg::OffsetsForLeaderEpochResult;
use crate::types::{epochs, Epoch};
use stateright::actor::Id;

impl Broker {
    /// §4.4, leader side: where the requested epoch ends in the leader's log.
    pub(super) fn epoch_lookup(
        &self,
        state: &BrokerState,
        requested_epoch: Epoch,
    ) -> OffsetsForLeaderEpochResult {
        let (Some(leader), Some(view)) = (&state.leader, state.view) else {
            return OffsetsForLeaderEpochResult::NotLeader;
        };
        let current = (view.leader_epoch, leader.leader_epoch_start_offset);
        match self.cfg.variant {
            Variant::Kip101 => {
                // The start of the first epoch above the requested one, or the LEO.
                let end_offset = if view.leader_epoch > requested_epoch {
                    epochs::end_of_epoch(&state.log, requested_epoch)
                        .min(leader.leader_epoch_start_offset)
                } else {
                    state.leo()
                };
                OffsetsForLeaderEpochResult::Ok {
                    epoch: requested_epoch,
                    end_offset,
                }
            }
            _ => {
                let (epoch, end_offset) =
                    epochs::leader_lookup(&state.log, current, requested_epoch);
                OffsetsForLeaderEpochResult::Ok { epoch, end_offset }
            }
        }
    }

    /// §4.4, follower side: truncate to where the leader says the epoch ends, then fetch.
    pub(super) fn on_epoch_response(
        &self,
        state: &mut BrokerState,
        src: Id,
        result: OffsetsForLeaderEpochResult,
        out: &mut Out,
    ) {
        match result {
            OffsetsForLeaderEpochResult::Ok { epoch, end_offset } => {
                let target = match self.cfg.variant {
                    Variant::Kip101 => end_offset.min(state.leo()),
                    _ => end_offset.min(epochs::end_of_epoch(&state.log, epoch)),
                };
                state.truncate(target);
                self.send_fetch(state, src, out);
            }
            OffsetsForLeaderEpochResult::NotLeader => state.fetch_state = FetchState::Idle,
        }
    }
}
