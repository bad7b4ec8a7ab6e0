//! The core's answers as Kafka error codes (docs/kafka.md, "Errors"). Every arm names the
//! core's answer it maps: the `match`es have no `_` arm, so a new answer of the core does
//! not compile until it is mapped here.

use kafka_protocol::ResponseError;

use crate::protocol::{ConsumeResult, ProduceResult};

/// A Kafka error code and the message that goes with it where the API has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    pub const NONE: KafkaError = KafkaError {
        code: 0,
        message: None,
    };

    pub fn of(error: ResponseError) -> KafkaError {
        KafkaError {
            code: error.code(),
            message: None,
        }
    }

    pub fn with(error: ResponseError, message: impl Into<String>) -> KafkaError {
        KafkaError {
            code: error.code(),
            message: Some(message.into()),
        }
    }
}

/// A produce answer. `first_sequence` and `count` are the batch's: an out-of-order answer
/// for a batch wholly below the sequence the leader expects is Kafka's
/// `DUPLICATE_SEQUENCE_NUMBER` (the batch was appended earlier, but is older than the
/// retries the leader remembers), otherwise `OUT_OF_ORDER_SEQUENCE_NUMBER`.
pub fn produce(result: &ProduceResult, first_sequence: u32, count: u32) -> KafkaError {
    match result {
        ProduceResult::Ok { .. } => KafkaError::NONE,
        ProduceResult::NotLeader => KafkaError::of(ResponseError::NotLeaderOrFollower),
        ProduceResult::NotEnoughReplicas => KafkaError::of(ResponseError::NotEnoughReplicas),
        ProduceResult::NotEnoughReplicasAfterAppend => {
            KafkaError::of(ResponseError::NotEnoughReplicasAfterAppend)
        }
        ProduceResult::OutOfOrderSequence { expected } => {
            let last = u64::from(first_sequence) + u64::from(count) - 1;
            let message = format!("the leader expects sequence {expected}");
            match last < u64::from(*expected) {
                true => KafkaError::with(ResponseError::DuplicateSequenceNumber, message),
                false => KafkaError::with(ResponseError::OutOfOrderSequenceNumber, message),
            }
        }
        // Nothing was appended and a retry is safe (it is recognised as a duplicate if an
        // earlier copy landed): Kafka's retriable timeout says exactly that to a client.
        ProduceResult::Overloaded => KafkaError::with(
            ResponseError::RequestTimedOut,
            "the leader holds too many acks=all requests; retry",
        ),
    }
}

/// A consume answer's error (records come separately).
pub fn consume(result: &ConsumeResult) -> KafkaError {
    match result {
        ConsumeResult::Ok { .. } => KafkaError::NONE,
        ConsumeResult::NotLeader => KafkaError::of(ResponseError::NotLeaderOrFollower),
    }
}

/// KIP-320: the client's `current_leader_epoch` against the broker's view. `-1`: the client
/// sent none (older clients), no check.
pub fn leader_epoch(client_epoch: i32, broker_epoch: u32) -> KafkaError {
    if client_epoch < 0 {
        return KafkaError::NONE;
    }
    match i64::from(client_epoch).cmp(&i64::from(broker_epoch)) {
        std::cmp::Ordering::Less => KafkaError::of(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Greater => KafkaError::of(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Equal => KafkaError::NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_answers_map_to_kafka_codes() {
        let code = |result: ProduceResult| produce(&result, 5, 2).code;
        assert_eq!(code(ProduceResult::Ok { offset: 3 }), 0);
        assert_eq!(code(ProduceResult::NotLeader), 6);
        assert_eq!(code(ProduceResult::NotEnoughReplicas), 19);
        assert_eq!(code(ProduceResult::NotEnoughReplicasAfterAppend), 20);
        assert_eq!(code(ProduceResult::OutOfOrderSequence { expected: 9 }), 46);
        assert_eq!(code(ProduceResult::OutOfOrderSequence { expected: 6 }), 45);
        assert_eq!(code(ProduceResult::OutOfOrderSequence { expected: 3 }), 45);
        assert_eq!(code(ProduceResult::Overloaded), 7);
        assert_eq!(consume(&ConsumeResult::NotLeader).code, 6);
        assert_eq!(leader_epoch(-1, 4), KafkaError::NONE);
        assert_eq!(leader_epoch(3, 4).code, 74);
        assert_eq!(leader_epoch(5, 4).code, 75);
        assert_eq!(leader_epoch(4, 4), KafkaError::NONE);
    }
}
