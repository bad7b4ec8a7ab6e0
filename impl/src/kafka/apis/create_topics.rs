//! CreateTopics: the topic and its partitions are declared when the cluster starts
//! (`--topic NAME:P`); a request is checked as Kafka checks it (name, partition count,
//! replication factor = every broker), and one that passes is refused, as creation after start
//! is not served (docs/kafka.md, "What is missing").

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use crate::kafka::dispatch::Session;
use crate::kafka::partitions::{valid_topic_name, PARTITIONS_MAX};

pub fn handle(request: CreateTopicsRequest, session: &Session) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let (error, message) = judge(&topic, session);
            CreatableTopicResult::default()
                .with_name(topic.name)
                .with_error_code(error.code())
                .with_error_message(Some(message.into()))
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// The answer to one topic: the first check it fails, in Kafka's order.
fn judge(topic: &CreatableTopic, session: &Session) -> (ResponseError, String) {
    let name = topic.name.0.as_str();
    let brokers = session.context.replicas.len();
    if !valid_topic_name(name) {
        let message = "topic names are 1-249 of [a-zA-Z0-9._-], not '.' or '..'";
        return (ResponseError::InvalidTopicException, message.to_owned());
    }
    // -1 asks for the broker's default (one partition; every broker as replica).
    let partitions = topic.num_partitions;
    if partitions != -1 && !(1..=PARTITIONS_MAX as i32).contains(&partitions) {
        let message = format!("{partitions} partitions: 1 to {PARTITIONS_MAX} are served");
        return (ResponseError::InvalidPartitions, message);
    }
    let factor = topic.replication_factor;
    if factor != -1 && usize::try_from(factor).ok() != Some(brokers) {
        let message =
            format!("replication factor {factor}: every partition is on all {brokers} brokers");
        return (ResponseError::InvalidReplicationFactor, message);
    }
    if !topic.assignments.is_empty() {
        let message = "manual replica assignments: every partition is on every broker";
        return (ResponseError::InvalidReplicaAssignment, message.to_owned());
    }
    if session.context.partitions.topics().contains_key(name) {
        return (
            ResponseError::TopicAlreadyExists,
            "the topic is served".to_owned(),
        );
    }
    let message = "topics are declared when the cluster starts (--topic NAME:P); creating one \
                   later is not served";
    (ResponseError::PolicyViolation, message.to_owned())
}
