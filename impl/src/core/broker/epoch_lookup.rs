//! §4.4 Epoch lookup, `kip-101` and `kip-279` only: the leader's answer to
//! `OffsetsForLeaderEpoch`, and the follower's truncation on the answer.

use super::{BrokerCore, BrokerResult};
use crate::core::{ReplicaRead, Variant};
use crate::protocol::{
    BrokerId, Epoch, FetchState, Offset, OffsetsForLeaderEpochResult, PeerId, PeerMessage,
};

impl<L: ReplicaRead> BrokerCore<L> {
    /// Leader side. `kip-101`: where the first epoch above `requested_epoch` starts (the
    /// current epoch counts, from `leader_epoch_start_offset`), or LEO, with
    /// `epoch = requested_epoch`. `kip-279`: the largest epoch <= `requested_epoch` and where
    /// it ends.
    pub(super) fn on_offsets_for_leader_epoch(
        &mut self,
        follower: BrokerId,
        requested_epoch: Epoch,
    ) -> BrokerResult<(), L> {
        let result = match &self.leader {
            None => OffsetsForLeaderEpochResult::NotLeader,
            Some(state) => {
                let (epoch, end_offset) = match self.config.variant {
                    Variant::Kip101 => {
                        let current_epoch = self.installed_view().leader_epoch;
                        let end_offset = self.kip101_end_offset(
                            requested_epoch,
                            current_epoch,
                            state.leader_epoch_start_offset,
                        );
                        (requested_epoch, end_offset)
                    }
                    _ => self.history_end_offset(requested_epoch, state.leader_epoch_start_offset),
                };
                OffsetsForLeaderEpochResult::Ok { epoch, end_offset }
            }
        };
        let message = PeerMessage::OffsetsForLeaderEpochResponse { result };
        self.send(PeerId::Broker(follower), message);
        Ok(())
    }

    /// The leader's history lookup (§4.2 step 2, §4.4 `kip-279`): the largest epoch
    /// `<= requested_epoch` it knows and where that epoch ends. Its history is its records'
    /// epochs plus its own current epoch, which starts at `leader_epoch_start_offset` even
    /// before it has records, so a request at or above the current epoch gets
    /// `(current epoch, LEO)`. `(0, 0)` when it knows no such epoch.
    pub(super) fn history_end_offset(
        &self,
        requested_epoch: Epoch,
        leader_epoch_start_offset: Offset,
    ) -> (Epoch, Offset) {
        let current_epoch = self.installed_view().leader_epoch;
        if current_epoch <= requested_epoch {
            return (current_epoch, self.log().log_end_offset());
        }
        match self.log().end_offset_for_epoch(requested_epoch) {
            None => (0, 0),
            // Records of later epochs, the current one included, follow the end of `epoch`.
            Some((epoch, end)) => (epoch, end.min(leader_epoch_start_offset)),
        }
    }

    /// The start of the first epoch above `requested_epoch` in the leader's history. Log
    /// epochs come from the records (the largest epoch <= requested ends where the next one
    /// starts; with none, the first epoch above starts at offset 0); the current epoch starts
    /// at `leader_epoch_start_offset` even before it has records. LEO when nothing is above.
    fn kip101_end_offset(
        &self,
        requested_epoch: Epoch,
        current_epoch: Epoch,
        leader_epoch_start_offset: Offset,
    ) -> Offset {
        let from_log = self
            .log()
            .end_offset_for_epoch(requested_epoch)
            .map_or(0, |(_, end)| end);
        if current_epoch > requested_epoch {
            from_log.min(leader_epoch_start_offset)
        } else {
            from_log
        }
    }

    /// Follower side: ignored unless from the installed view's leader while `Truncating`.
    /// `kip-101` truncates to `min(end_offset, LEO)`, `kip-279` to `min(end_offset, own end
    /// offset of epoch)`; then `Fetching`. `NotLeader` stops the follower (`Idle`) until a new
    /// view, as a fencing answer to a fetch does.
    pub(super) fn on_offsets_for_leader_epoch_response(
        &mut self,
        sender: BrokerId,
        result: OffsetsForLeaderEpochResult,
    ) -> BrokerResult<(), L> {
        let from_leader = self.view.as_ref().and_then(|view| view.leader) == Some(sender);
        if !from_leader || self.fetch_state != FetchState::Truncating {
            return Ok(());
        }
        match result {
            OffsetsForLeaderEpochResult::NotLeader => {
                self.fetch_state = FetchState::Idle;
            }
            OffsetsForLeaderEpochResult::Ok { epoch, end_offset } => {
                let limit = match self.config.variant {
                    Variant::Kip101 => self.log().log_end_offset(),
                    _ => self.own_end_offset_for_epoch(epoch),
                };
                self.truncate_log(end_offset.min(limit))?;
                self.send_fetch();
            }
        }
        Ok(())
    }
}
