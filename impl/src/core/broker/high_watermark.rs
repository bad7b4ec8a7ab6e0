//! §4.7 Leader: advancing the high watermark, and what follows when it moves: waiting
//! acks=all produces below it are answered and parked fetches are answered. The HW checkpoint
//! is not written here: `HwCheckpoint` arms, and writes it when it fires (§2, `durability`).

use std::collections::BTreeSet;

use super::{BrokerCore, BrokerResult, Waiting};
use crate::core::{ReplicaRead, Variant};
use crate::protocol::{BrokerId, ClientReply, Offset, ProduceResult};

impl<L: ReplicaRead> BrokerCore<L> {
    /// `maximal_isr = view.isr ∪ pending_isr`; candidate = min over it of (own LEO for the
    /// leader, `fetch_offset` or 0 for others). The HW moves to the candidate only if that is
    /// larger and, in `kip-966`, `|view.isr| >= min_insync_replicas`. A no-op when not leader.
    /// Waiting acks=all batches it passes are answered (§4.7).
    pub(super) fn maybe_advance_high_watermark(&mut self) -> BrokerResult<(), L> {
        let Some(state) = &self.leader else {
            return Ok(());
        };
        let view = self.installed_view();
        if self.config.variant == Variant::Kip966
            && (view.isr.len() as u64) < u64::from(self.config.min_insync_replicas)
        {
            return Ok(());
        }
        let mut maximal_isr: BTreeSet<BrokerId> = view.isr.clone();
        if let Some(pending) = &state.pending_isr {
            maximal_isr.extend(pending.iter().copied());
        }
        let log_end_offset = self.log().log_end_offset();
        let candidate = maximal_isr
            .iter()
            .map(|member| {
                if *member == self.id {
                    log_end_offset
                } else {
                    state
                        .replicas
                        .get(member)
                        .and_then(|replica| replica.fetch_offset)
                        .unwrap_or(0)
                }
            })
            .min()
            .unwrap_or(0);
        if candidate <= self.hw {
            return Ok(());
        }
        assert!(
            candidate <= log_end_offset,
            "HW candidate {candidate} above LEO"
        );
        // `min_insync_replicas` is checked again as the HW reaches waiting batches: a shrink
        // may have let it pass them with fewer copies than promised (Kafka's
        // NOT_ENOUGH_REPLICAS_AFTER_APPEND).
        let enough = maximal_isr.len() as u64 >= u64::from(self.config.min_insync_replicas);
        self.set_high_watermark(candidate)?;
        self.answer_waiting(enough);
        self.answer_parked_fetches()
    }

    /// Answers, in arrival order, every waiting produce whose last record is below the HW:
    /// `Ok` if the ISR the HW was computed over was large `enough`, otherwise
    /// `NotEnoughReplicasAfterAppend`.
    fn answer_waiting(&mut self, enough: bool) {
        let hw = self.hw;
        let state = self.leader_state_mut();
        let (done, still): (Vec<Waiting>, Vec<Waiting>) = state
            .waiting
            .drain(..)
            .partition(|waiting| waiting.last_offset < hw);
        state.waiting = still.into();
        for waiting in done {
            self.reply(
                waiting.client,
                ClientReply::ProduceResponse {
                    producer_id: waiting.record_id.producer_id,
                    first_sequence: waiting.record_id.sequence,
                    result: match enough {
                        true => ProduceResult::Ok {
                            offset: waiting.base_offset,
                        },
                        false => ProduceResult::NotEnoughReplicasAfterAppend,
                    },
                },
            );
        }
    }

    /// Answers every parked fetch that now has something to say (records past its offset, or
    /// a HW newer than the one last sent), in broker-id order.
    pub(super) fn answer_parked_fetches(&mut self) -> BrokerResult<(), L> {
        let Some(state) = &self.leader else {
            return Ok(());
        };
        let log_end_offset = self.log().log_end_offset();
        let hw = self.hw;
        let ready: Vec<(BrokerId, Offset)> = state
            .replicas
            .iter()
            .filter(|(_, replica)| replica.parked_epoch.is_some())
            .filter_map(|(id, replica)| {
                let offset = replica
                    .fetch_offset
                    .expect("a parked fetch has recorded progress");
                (offset < log_end_offset || replica.hw_sent < hw).then_some((*id, offset))
            })
            .collect();
        for (follower, fetch_offset) in ready {
            let replica = self.leader_state_mut().replicas.get_mut(&follower);
            let epoch = replica
                .and_then(|replica| replica.parked_epoch.take())
                .expect("selected as parked");
            self.send_records(follower, epoch, fetch_offset)?;
        }
        Ok(())
    }
}
