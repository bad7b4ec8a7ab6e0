//! CreateTopics: topics are fixed when the cluster starts (`--topic`) until a node serves
//! several partitions; every topic asked is refused with a reason.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use crate::kafka::dispatch::Session;

pub fn handle(request: CreateTopicsRequest, session: &Session) -> CreateTopicsResponse {
    let served = session.context.partitions.topics();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let (error, message) = match served.contains_key(topic.name.0.as_str()) {
                true => (
                    ResponseError::TopicAlreadyExists,
                    "the topic is served".to_owned(),
                ),
                false => (
                    ResponseError::PolicyViolation,
                    "topics are fixed at start (--topic NAME); CreateTopics is refused until \
                     partitions are served"
                        .to_owned(),
                ),
            };
            CreatableTopicResult::default()
                .with_name(topic.name)
                .with_error_code(error.code())
                .with_error_message(Some(message.into()))
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
