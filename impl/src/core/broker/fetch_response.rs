//! §4.3 Follower: `FetchResponse` from its leader.

use super::{BrokerCore, BrokerResult};
use crate::core::{CoreError, ReplicaRead};
use crate::protocol::{BrokerId, Epoch, FetchResult, FetchState, NodeId, Offset, Record};

impl<L: ReplicaRead> BrokerCore<L> {
    /// Ignored unless the sender is the leader of the installed view, `leader_epoch` matches
    /// the view's, a fetch is in flight (`Fetching`) and the echoed `fetch_offset` is the LEO,
    /// i.e. it answers the fetch this follower would send now. The last test drops the answer
    /// to a fetch a previous incarnation sent, which the leader held parked across the crash
    /// (DIVERGENCES.md D3), and in real time the twin answer to a re-sent fetch.
    pub(super) fn on_fetch_response(
        &mut self,
        sender: BrokerId,
        (leader_epoch, fetch_offset): (Epoch, Offset),
        result: FetchResult,
    ) -> BrokerResult<(), L> {
        let Some(view) = &self.view else {
            return Ok(());
        };
        if view.leader != Some(sender)
            || view.leader_epoch != leader_epoch
            || self.fetch_state != FetchState::Fetching
            || fetch_offset != self.log().log_end_offset()
        {
            return Ok(());
        }
        match result {
            FetchResult::Records {
                records,
                high_watermark,
            } => self.on_fetched_records(sender, records, high_watermark),
            FetchResult::DivergingEpoch { epoch, end_offset } => {
                let own_end_offset = self.own_end_offset_for_epoch(epoch);
                self.truncate_log(end_offset.min(own_end_offset))?;
                self.send_fetch();
                Ok(())
            }
            FetchResult::OffsetOutOfRange { log_end_offset } => {
                self.truncate_log(log_end_offset)?;
                self.send_fetch();
                Ok(())
            }
            FetchResult::FencedLeaderEpoch
            | FetchResult::UnknownLeaderEpoch
            | FetchResult::NotLeader => {
                // Stop until a new view names a leader or `FetchBackoff` fires (§4.12).
                self.fetch_state = FetchState::Idle;
                Ok(())
            }
        }
    }

    /// `Records`: append (they start at LEO), `hw = min(high_watermark, LEO)`, fetch again.
    fn on_fetched_records(
        &mut self,
        sender: BrokerId,
        records: Vec<Record>,
        high_watermark: Offset,
    ) -> BrokerResult<(), L> {
        let log_end_offset = self.log().log_end_offset();
        if let Err(reason) = continues_log(&records, log_end_offset, self.log().last_epoch()) {
            // The echoed fetch offset was the LEO, so only a faulty leader sends this.
            return Err(CoreError::InvalidRequest {
                from: NodeId::Broker(sender),
                message: "FetchResponse",
                reason,
            });
        }
        let appended = log_end_offset + records.len() as u64;
        self.append_records(records);
        assert_eq!(
            self.log().log_end_offset(),
            appended,
            "a staged append left a different LEO"
        );
        self.set_high_watermark(high_watermark.min(self.log().log_end_offset()))?;
        self.send_fetch();
        Ok(())
    }
}

/// Fetched records may be appended only if their offsets continue the log from its end and
/// their epochs do not decrease (the log's epochs never do).
fn continues_log(
    records: &[Record],
    log_end_offset: Offset,
    last_epoch: Epoch,
) -> Result<(), &'static str> {
    let mut previous_epoch = last_epoch;
    for (expected, record) in (log_end_offset..).zip(records) {
        if record.offset != expected {
            return Err("records do not continue from the fetch offset");
        }
        if record.leader_epoch < previous_epoch {
            return Err("record epochs decrease");
        }
        previous_epoch = record.leader_epoch;
    }
    Ok(())
}
