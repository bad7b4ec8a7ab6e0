//! Produce: each partition's one batch to the core as one `Produce` (docs/kafka.md).
//!
//! - acks: `-1` is the model's acks=all, `1` acks=1; `0` is sent as acks=1 and nobody is
//!   answered, as Kafka does; anything else is `INVALID_REQUIRED_ACKS`.
//! - An idempotent producer's `(producer id, base sequence)` are the core's `(producer_id,
//!   first_sequence)`, so its retries are recognised by the core's producer table.
//!   InitProducerId hands out new ids at epoch 0 instead of new epochs, but librdkafka bumps an
//!   idempotent producer's epoch by itself (KIP-360) once a batch timed out, and restarts its
//!   sequences at 0. So `(id, epoch)` is the producer: epoch 0 is the id itself, a later epoch
//!   a core producer id of its own ([`core_producer_id`]), so sequence 0 of the new epoch is
//!   never taken for a retry of the old epoch's first batch.
//! - A plain producer's batch gets a fresh producer id, sequence 0: the core's table then
//!   never takes it for another's retry, and it is never deduplicated, as in Kafka.

use std::time::Duration;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use crate::kafka::dispatch::Session;
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::link::LinkError;
use crate::kafka::records::{decode_produce, BatchError, ProduceBatch};
use crate::protocol::{Acks, ProduceResult};

/// Longest wait for an acks=all answer, whatever the request's `timeout_ms`.
const PRODUCE_TIMEOUT_MAX: Duration = Duration::from_secs(120);

/// `None` for acks=0: no response is written.
pub async fn handle(
    request: ProduceRequest,
    version: i16,
    session: &mut Session,
) -> Option<ProduceResponse> {
    let acks = match request.acks {
        -1 => Ok(Acks::All),
        1 | 0 => Ok(Acks::One),
        _ => Err(KafkaError::of(ResponseError::InvalidRequiredAcks)),
    };
    let timeout_ms = u64::try_from(request.timeout_ms.max(1)).expect("positive");
    let timeout = Duration::from_millis(timeout_ms).min(PRODUCE_TIMEOUT_MAX);
    let transactional = request.transactional_id.is_some();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let TopicProduceData {
            name,
            partition_data,
            ..
        } = topic;
        let mut partitions = Vec::with_capacity(partition_data.len());
        for data in partition_data {
            let answer = match (&acks, transactional) {
                (Err(refused), _) => Err(refused.clone()),
                (Ok(_), true) => Err(KafkaError::of(
                    ResponseError::TransactionalIdAuthorizationFailed,
                )),
                (Ok(acks), false) => produce(session, name.0.as_str(), &data, *acks, timeout).await,
            };
            partitions.push(partition_response(data.index, answer, version));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions),
        );
    }
    let response = ProduceResponse::default().with_responses(responses);
    (request.acks != 0).then_some(response)
}

/// One partition's batch: its base offset, or the Kafka error.
async fn produce(
    session: &mut Session,
    topic: &str,
    data: &PartitionProduceData,
    acks: Acks,
    timeout: Duration,
) -> Result<i64, KafkaError> {
    let records = data.records.as_ref().ok_or_else(|| {
        KafkaError::with(ResponseError::CorruptMessage, "a produce without records")
    })?;
    let batch = decode_produce(records).map_err(batch_error)?;
    let (producer_id, first_sequence) = identity(session, &batch)?;
    let count = u32::try_from(batch.values.len()).expect("bounded by PRODUCE_RECORDS_MAX");
    let link = session.link(topic, data.index).await?;
    let result = link
        .produce(producer_id, first_sequence, batch.values, acks, timeout)
        .await;
    match result {
        Ok(ProduceResult::Ok { offset }) => Ok(i64::try_from(offset).expect("offsets fit int64")),
        Ok(refused) => Err(errors::produce(&refused, first_sequence, count)),
        Err(LinkError::TimedOut) => Err(KafkaError::of(ResponseError::RequestTimedOut)),
        Err(LinkError::Gone) => Err(KafkaError::of(ResponseError::NotLeaderOrFollower)),
    }
}

/// The core's `(producer_id, first_sequence)` for a batch (module doc).
fn identity(session: &Session, batch: &ProduceBatch) -> Result<(u64, u32), KafkaError> {
    let count = batch.values.len() as i64;
    match batch.producer {
        Some((_, epoch)) if epoch < 0 => Err(KafkaError::of(ResponseError::InvalidProducerEpoch)),
        Some((id, epoch)) => {
            let last = i64::from(batch.base_sequence) + count - 1;
            if batch.base_sequence < 0 || last > i64::from(i32::MAX) {
                return Err(KafkaError::with(
                    ResponseError::OutOfOrderSequenceNumber,
                    "sequences run from 0 to 2^31-1 (no wrap-around)",
                ));
            }
            let id = u64::try_from(id).expect("checked non-negative by the batch decoder");
            let epoch = u16::try_from(epoch).expect("checked non-negative above");
            Ok((core_producer_id(id, epoch), batch.base_sequence as u32))
        }
        None => match session.context.producer_ids.allocate() {
            Ok(id) => Ok((id as u64, 0)),
            Err(reason) => Err(KafkaError::with(ResponseError::UnknownServerError, reason)),
        },
    }
}

/// The core's producer id for Kafka producer `(id, epoch)`: `id` itself at epoch 0; at a later
/// epoch a 64-bit mix of both with the top bit set. Kafka ids are non-negative `int64`s, so a
/// bumped producer never takes an epoch-0 id; two bumped producers meet only if the mix
/// collides, as unlikely as two of insync's own clients' random 64-bit ids.
fn core_producer_id(id: u64, epoch: u16) -> u64 {
    assert!(id < 1 << 63, "a Kafka producer id is a non-negative int64");
    if epoch == 0 {
        return id;
    }
    // splitmix64's finaliser over the id and the epoch.
    let mut mixed = id ^ (u64::from(epoch) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (mixed ^ (mixed >> 31)) | 1 << 63
}

fn batch_error(error: BatchError) -> KafkaError {
    let code = match &error {
        BatchError::Corrupt(_) => ResponseError::CorruptMessage,
        BatchError::TooManyRecords(_) => ResponseError::MessageTooLarge,
        BatchError::Compressed => ResponseError::UnsupportedCompressionType,
        BatchError::Transactional => ResponseError::InvalidRecord,
    };
    KafkaError::with(code, error.to_string())
}

/// The log start offset is a field from v5 on, the error message from v8 on.
fn partition_response(
    index: i32,
    answer: Result<i64, KafkaError>,
    version: i16,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_index(index)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(if version >= 5 { 0 } else { -1 });
    match answer {
        Ok(base_offset) => response.with_base_offset(base_offset),
        Err(error) => response
            .with_base_offset(-1)
            .with_error_code(error.code)
            .with_error_message(error.message.filter(|_| version >= 8).map(Into::into)),
    }
}

#[cfg(test)]
mod tests {
    use super::core_producer_id;

    /// Goal: a producer whose epoch librdkafka bumped is a new producer to the core, never an
    /// epoch-0 producer, and each of its epochs is another one.
    #[test]
    fn a_bumped_producer_epoch_is_a_producer_of_its_own() {
        let id = (1 << 53) | 7;
        assert_eq!(core_producer_id(id, 0), id);
        let bumped: Vec<u64> = (1..=3).map(|epoch| core_producer_id(id, epoch)).collect();
        assert!(bumped.iter().all(|core| *core >= 1 << 63), "{bumped:?}");
        assert!(bumped[0] != bumped[1] && bumped[1] != bumped[2] && bumped[0] != bumped[2]);
        assert_ne!(core_producer_id(id + 1, 1), bumped[0]);
        assert_eq!(
            core_producer_id(id, 1),
            bumped[0],
            "the same producer again"
        );
    }
}
