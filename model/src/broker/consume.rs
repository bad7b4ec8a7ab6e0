//! `Consume`: the leader serves committed records, below its HW (§4.6).

use super::{Broker, BrokerState};
use crate::actor::{Emit, Out};
use crate::msg::{ClientReply, ConsumeResult};
use crate::types::Offset;
use stateright::actor::Id;

impl Broker {
    /// §4.6: records from `fetch_offset` up to the HW, never past it.
    pub(super) fn on_consume(
        &self,
        state: &BrokerState,
        src: Id,
        fetch_offset: Offset,
        out: &mut Out,
    ) {
        let result = match &state.leader {
            None => ConsumeResult::NotLeader,
            Some(_) => ConsumeResult::Ok {
                records: state.log[fetch_offset.min(state.hw) as usize..state.hw as usize].to_vec(),
                high_watermark: state.hw,
            },
        };
        out.send_reply(src, ClientReply::ConsumeResponse { result });
    }
}
