//! The high watermark: the minimum LEO over the maximal ISR, and what moving it answers (§4.7).

use super::fetch::send_records;
use super::{Broker, BrokerState};
use crate::actor::{Emit, Out};
use crate::config::Variant;
use crate::msg::{ClientReply, ProduceResult};
use crate::types::Offset;

impl Broker {
    /// §4.7: move the HW to the minimum LEO of the maximal ISR.
    pub(super) fn advance_hw(&self, state: &mut BrokerState, out: &mut Out) {
        let (Some(leader), Some(view)) = (&mut state.leader, state.view) else {
            return;
        };
        let maximal_isr = view.isr.union(leader.pending_isr.unwrap_or_default());
        let leo = state.log.len() as Offset;
        let candidate = maximal_isr
            .iter()
            .map(|b| match leader.replicas.get(&b) {
                None => leo,
                Some(p) => p.fetch_offset.unwrap_or(0),
            })
            .min()
            .unwrap_or(leo);
        let allowed = self.cfg.variant != Variant::Kip966
            || view.isr.len() >= self.cfg.min_insync_replicas as usize;
        if candidate <= state.hw || !allowed {
            return;
        }
        state.hw = candidate;
        // Kafka checks `min.insync.replicas` again when the HW reaches a waiting record
        // (`NOT_ENOUGH_REPLICAS_AFTER_APPEND`, since 0.8.2, so in every variant): a shrink may
        // have let the HW pass it with fewer copies than promised.
        let enough = maximal_isr.len() >= self.cfg.min_insync_replicas as usize;
        let client = self.client();
        leader.waiting.retain(|&(record_id, offset)| {
            if offset < candidate {
                let result = if enough {
                    ProduceResult::Ok { offset }
                } else {
                    ProduceResult::NotEnoughReplicasAfterAppend
                };
                out.send_reply(client, ClientReply::ProduceResponse { record_id, result });
            }
            offset >= candidate
        });
        self.answer_parked(state, out);
    }

    /// Answer every parked fetch that now has news (new records or a newer HW).
    pub(super) fn answer_parked(&self, state: &mut BrokerState, out: &mut Out) {
        let (hw, leo) = (state.hw, state.leo());
        let Some(leader) = &mut state.leader else {
            return;
        };
        for (follower, progress) in leader.replicas.iter_mut() {
            let Some(fetch_offset) = progress.fetch_offset else {
                continue;
            };
            let Some(leader_epoch) = progress.parked else {
                continue;
            };
            if fetch_offset >= leo && progress.hw_sent >= hw {
                continue;
            }
            progress.parked = None;
            progress.hw_sent = hw;
            send_records(out, &state.log, *follower, leader_epoch, fetch_offset, hw);
        }
    }
}
