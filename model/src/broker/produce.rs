//! `Produce`: the leader appends a client record, once per record id (§4.5).

use super::{Broker, BrokerState};
use crate::actor::{Emit, Out};
use crate::config::Acks;
use crate::msg::{ClientReply, ProduceResult};
use crate::types::{Offset, Record, RecordId};

impl Broker {
    /// §4.5: append (a retried record id is found where it was appended), then answer at once
    /// (`acks=1`, or already below the HW) or wait for the HW (`acks=all`).
    pub(super) fn on_produce(
        &self,
        state: &mut BrokerState,
        record_id: RecordId,
        acks: Acks,
        out: &mut Out,
    ) {
        let client = self.client();
        let respond = |result: ProduceResult, out: &mut Out| {
            out.send_reply(client, ClientReply::ProduceResponse { record_id, result });
        };
        let (Some(_), Some(view)) = (&state.leader, state.view) else {
            return respond(ProduceResult::NotLeader, out);
        };
        if acks == Acks::All && view.isr.len() < self.cfg.min_insync_replicas as usize {
            return respond(ProduceResult::NotEnoughReplicas, out);
        }
        let existing = state.log.iter().position(|r| r.record_id == record_id);
        let offset = match existing {
            Some(offset) => offset as Offset,
            None => {
                state.log.push(Record {
                    leader_epoch: view.leader_epoch,
                    record_id,
                });
                state.leo() - 1
            }
        };
        if acks == Acks::One || offset < state.hw {
            respond(ProduceResult::Ok { offset }, out);
        } else {
            let leader = state.leader.as_mut().expect("checked above");
            if !leader.waiting.contains(&(record_id, offset)) {
                leader.waiting.push((record_id, offset));
            }
        }
        self.advance_hw(state, out);
        self.answer_parked(state, out);
    }
}
