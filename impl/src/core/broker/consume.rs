//! §4.6 Leader: `Consume { fetch_offset }`: committed records only.

use super::{BrokerCore, BrokerResult};
use crate::core::{CoreError, ReplicaRead, CONSUME_RECORDS_MAX};
use crate::protocol::{ClientId, ClientReply, ConsumeResult, Offset};

impl<L: ReplicaRead> BrokerCore<L> {
    /// Not leader → `NotLeader`; otherwise `log[fetch_offset..hw]`, at most `max_records`
    /// (capped by `CONSUME_RECORDS_MAX`), and the HW.
    pub(super) fn on_consume(
        &mut self,
        client: ClientId,
        fetch_offset: Offset,
        max_records: u32,
    ) -> BrokerResult<(), L> {
        let result = if self.leader.is_none() {
            ConsumeResult::NotLeader
        } else {
            let committed = self.hw.saturating_sub(fetch_offset);
            let limit = committed
                .min(u64::from(max_records))
                .min(CONSUME_RECORDS_MAX as u64);
            let limit = usize::try_from(limit).expect("bounded by CONSUME_RECORDS_MAX");
            let records = if limit == 0 {
                Vec::new()
            } else {
                self.log()
                    .read(fetch_offset, limit)
                    .map_err(CoreError::Storage)?
            };
            assert!(
                records.iter().all(|record| record.offset < self.hw),
                "consume must not expose records at or above the HW"
            );
            ConsumeResult::Ok {
                records,
                high_watermark: self.hw,
            }
        };
        self.reply(client, ClientReply::ConsumeResponse { result });
        Ok(())
    }
}
