//! §4.5 Leader: `Produce` from the client. A request is a batch of consecutive sequences of
//! one producer; it is appended with one `Write::Append` (and made durable by a `Flush` in the
//! same step under `fsync = always`, so the acks=1 answer waits for it).

use super::producers::SequenceCheck;
use super::{BrokerCore, BrokerResult, Waiting};
use crate::core::{CoreError, ReplicaRead, PRODUCE_RECORDS_MAX, WAITING_REQUESTS_MAX};
use crate::protocol::{
    Acks, ClientId, ClientReply, NodeId, Offset, ProduceResult, Record, RecordId,
};

/// The fields of a `Produce`, with its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ProduceRequest {
    pub client: ClientId,
    pub producer_id: u64,
    pub first_sequence: u32,
    pub values: Vec<Vec<u8>>,
    pub acks: Acks,
}

impl ProduceRequest {
    fn record_id(&self) -> RecordId {
        RecordId {
            producer_id: self.producer_id,
            sequence: self.first_sequence,
        }
    }
}

impl<L: ReplicaRead> BrokerCore<L> {
    pub(super) fn on_produce(&mut self, request: ProduceRequest) -> BrokerResult<(), L> {
        let count = validate_batch(&request)?;
        let Some(state) = &self.leader else {
            return self.answer_produce(&request, ProduceResult::NotLeader);
        };
        let isr_size = self.installed_view().isr.len() as u64;
        if request.acks == Acks::All && isr_size < u64::from(self.config.min_insync_replicas) {
            return self.answer_produce(&request, ProduceResult::NotEnoughReplicas);
        }
        if request.acks == Acks::All && state.waiting.len() >= WAITING_REQUESTS_MAX {
            return self.answer_produce(&request, ProduceResult::Overloaded);
        }
        match self
            .producers
            .check(request.producer_id, request.first_sequence, count)
        {
            SequenceCheck::OutOfOrder { expected } => {
                self.answer_produce(&request, ProduceResult::OutOfOrderSequence { expected })
            }
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => {
                // Step 3, an idempotent retry: nothing is appended.
                if request.acks == Acks::One || last_offset < self.hw {
                    let result = ProduceResult::Ok {
                        offset: base_offset,
                    };
                    return self.answer_produce(&request, result);
                }
                self.wait_for_high_watermark(&request, base_offset, last_offset);
                Ok(())
            }
            SequenceCheck::Append => self.append_batch(request),
        }
    }

    /// Step 4: append at LEO in the leader's epoch; acks=1 answers now, acks=all waits. Then
    /// the HW may move (a leader alone in a large-enough ISR commits at once) and parked
    /// fetches learn of the new records.
    fn append_batch(&mut self, request: ProduceRequest) -> BrokerResult<(), L> {
        let base_offset = self.log().log_end_offset();
        let leader_epoch = self.installed_view().leader_epoch;
        let records: Vec<Record> = (0u32..)
            .zip(&request.values)
            .map(|(index, value)| Record {
                offset: base_offset + u64::from(index),
                leader_epoch,
                producer_id: request.producer_id,
                sequence: request.first_sequence + index,
                value: value.clone(),
            })
            .collect();
        let last_offset = base_offset + records.len() as u64 - 1;
        self.append_records(records);
        assert_eq!(
            self.log().log_end_offset(),
            last_offset + 1,
            "a staged append left a different LEO"
        );
        match request.acks {
            Acks::One => {
                let result = ProduceResult::Ok {
                    offset: base_offset,
                };
                self.answer_produce(&request, result)?;
            }
            Acks::All => self.wait_for_high_watermark(&request, base_offset, last_offset),
        }
        self.maybe_advance_high_watermark()?;
        self.answer_parked_fetches()
    }

    fn wait_for_high_watermark(
        &mut self,
        request: &ProduceRequest,
        base_offset: Offset,
        last_offset: Offset,
    ) {
        let waiting = Waiting {
            client: request.client,
            record_id: request.record_id(),
            base_offset,
            last_offset,
        };
        let state = self.leader_state_mut();
        assert!(
            state.waiting.len() < WAITING_REQUESTS_MAX,
            "waiting list checked before"
        );
        state.waiting.push_back(waiting);
    }

    fn answer_produce(
        &mut self,
        request: &ProduceRequest,
        result: ProduceResult,
    ) -> BrokerResult<(), L> {
        let message = ClientReply::ProduceResponse {
            producer_id: request.producer_id,
            first_sequence: request.first_sequence,
            result,
        };
        self.reply(request.client, message);
        Ok(())
    }
}

/// A batch holds 1..=`PRODUCE_RECORDS_MAX` records whose sequences fit in `u32`.
fn validate_batch<E>(request: &ProduceRequest) -> Result<u32, CoreError<E>> {
    let invalid = |reason| CoreError::InvalidRequest {
        from: NodeId::Client(request.client),
        message: "Produce",
        reason,
    };
    if request.values.is_empty() {
        return Err(invalid("empty batch"));
    }
    if request.values.len() > PRODUCE_RECORDS_MAX {
        return Err(invalid("batch larger than PRODUCE_RECORDS_MAX"));
    }
    let count = u32::try_from(request.values.len()).expect("bounded by PRODUCE_RECORDS_MAX");
    if request.first_sequence.checked_add(count - 1).is_none() {
        return Err(invalid("sequence numbers overflow u32"));
    }
    Ok(count)
}
