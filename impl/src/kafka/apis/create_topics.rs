//! CreateTopics: a request is checked here as Kafka checks it (name, partition count,
//! replication factor = every broker, no manual assignment); one that passes is forwarded to
//! the controller process (`Control::CreateTopic`), which owns the topic table, allocates
//! free partition slots and persists the table before it answers (docs/protocol.md §7).
//! `validate_only` is forwarded too: the controller then only says whether it could.
//!
//! The controller's refusals as Kafka codes: a name taken, also by a concurrent ask through
//! another broker, is `TOPIC_ALREADY_EXISTS`; more partitions than free slots is
//! `INVALID_PARTITIONS`, as Kafka answers a partition count it cannot serve, with a message
//! that says how many are left (not retriable: waiting frees no slot). A controller that does
//! not answer is `NOT_CONTROLLER`, which clients retry.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use crate::kafka::dispatch::Session;
use crate::kafka::partitions::{valid_topic_name, TopicSpec, PARTITIONS_MAX};
use crate::kafka::topic_table::TopicRefusal;
use crate::node::broker_topics::CreateFailure;

/// At most this many topics are answered in one request; the rest are refused (a request
/// names at most a few; the bound keeps one request from queueing unbounded work).
const TOPICS_PER_REQUEST_MAX: usize = PARTITIONS_MAX as usize;

pub async fn handle(request: CreateTopicsRequest, session: &Session) -> CreateTopicsResponse {
    let brokers = i16::try_from(session.context.replicas.len()).unwrap_or(i16::MAX);
    let mut topics = Vec::with_capacity(request.topics.len().min(TOPICS_PER_REQUEST_MAX));
    for (index, topic) in request.topics.into_iter().enumerate() {
        let (error, message, partitions) = match index < TOPICS_PER_REQUEST_MAX {
            true => answer(&topic, request.validate_only, session).await,
            false => {
                let message = format!("at most {TOPICS_PER_REQUEST_MAX} topics a request");
                (Some(ResponseError::PolicyViolation), message, None)
            }
        };
        let result = CreatableTopicResult::default()
            .with_name(topic.name)
            .with_error_code(error.map_or(0, |error| error.code()))
            .with_error_message(Some(message.into()));
        topics.push(match partitions {
            Some(partitions) => result
                .with_num_partitions(partitions as i32)
                .with_replication_factor(brokers),
            None => result,
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// One topic's answer: Kafka's error (`None`: created, Kafka's `NONE`), a message, and on
/// success the partition count.
async fn answer(
    topic: &CreatableTopic,
    validate_only: bool,
    session: &Session,
) -> (Option<ResponseError>, String, Option<u32>) {
    let spec = match judge(topic, session) {
        Ok(spec) => spec,
        Err((error, message)) => return (Some(error), message, None),
    };
    let Some(topics) = &session.context.topics else {
        let message = "no controller behind this listener".to_owned();
        return (Some(ResponseError::NotController), message, None);
    };
    match topics.create(&spec, validate_only).await {
        Ok(_) => {
            let message = match validate_only {
                true => "valid; not created (validate_only)",
                false => "created",
            };
            (None, message.to_owned(), Some(spec.partitions))
        }
        Err(failure) => {
            let message = failure.to_string();
            let error = match failure {
                CreateFailure::Refused(TopicRefusal::AlreadyExists { .. }) => {
                    ResponseError::TopicAlreadyExists
                }
                CreateFailure::Refused(TopicRefusal::NotEnoughSlots { .. }) => {
                    ResponseError::InvalidPartitions
                }
                CreateFailure::Refused(TopicRefusal::Invalid { .. }) => {
                    ResponseError::InvalidRequest
                }
                CreateFailure::Unreachable { .. } => ResponseError::NotController,
            };
            (Some(error), message, None)
        }
    }
}

/// The first of Kafka's own checks the topic fails, in Kafka's order; else what to create.
fn judge(topic: &CreatableTopic, session: &Session) -> Result<TopicSpec, (ResponseError, String)> {
    let name = topic.name.0.as_str();
    let brokers = session.context.replicas.len();
    if !valid_topic_name(name) {
        let message = "topic names are 1-249 of [a-zA-Z0-9._-], not '.' or '..'";
        return Err((ResponseError::InvalidTopicException, message.to_owned()));
    }
    // -1 asks for the broker's default (one partition; every broker as replica).
    let partitions = topic.num_partitions;
    if partitions != -1 && !(1..=PARTITIONS_MAX as i32).contains(&partitions) {
        let message = format!("{partitions} partitions: 1 to {PARTITIONS_MAX} are served");
        return Err((ResponseError::InvalidPartitions, message));
    }
    let factor = topic.replication_factor;
    if factor != -1 && usize::try_from(factor).ok() != Some(brokers) {
        let message =
            format!("replication factor {factor}: every partition is on all {brokers} brokers");
        return Err((ResponseError::InvalidReplicationFactor, message));
    }
    if !topic.assignments.is_empty() {
        let message = "manual replica assignments: every partition is on every broker";
        return Err((ResponseError::InvalidReplicaAssignment, message.to_owned()));
    }
    let partitions = u32::try_from(partitions).unwrap_or(1);
    let spec = TopicSpec {
        name: name.to_owned(),
        partitions,
    };
    Ok(spec)
}
