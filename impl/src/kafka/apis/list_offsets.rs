//! ListOffsets: earliest (`-2`) is 0 (no retention: the log starts at 0), latest (`-1`) is the
//! HW (what a consumer can read, as Kafka answers read_uncommitted and read_committed alike
//! without transactions). Lookups by time are refused. The answer comes from a `Consume` of
//! no records, so only the leader answers, and KIP-320's `current_leader_epoch` is checked as
//! in Fetch.

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use crate::kafka::dispatch::Session;
use crate::kafka::errors::{self, KafkaError};
use crate::protocol::ConsumeResult;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

pub async fn handle(
    request: ListOffsetsRequest,
    version: i16,
    session: &mut Session,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for asked in &topic.partitions {
            let listed = list_one(session, topic.name.0.as_str(), asked).await;
            // The leader epoch is a field from v4 on.
            partitions.push(match version >= 4 {
                true => listed,
                false => listed.with_leader_epoch(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

async fn list_one(
    session: &mut Session,
    topic: &str,
    asked: &ListOffsetsPartition,
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default()
        .with_partition_index(asked.partition_index)
        .with_timestamp(-1)
        .with_offset(-1)
        .with_leader_epoch(-1);
    let failed = |error: KafkaError| response.clone().with_error_code(error.code);
    if asked.timestamp != EARLIEST && asked.timestamp != LATEST {
        return failed(KafkaError::of(ResponseError::InvalidRequest));
    }
    let link = match session.link(topic, asked.partition_index).await {
        Ok(link) => link,
        Err(error) => return failed(error),
    };
    let not_leader = KafkaError::of(ResponseError::NotLeaderOrFollower);
    let Some(view) = link
        .metadata()
        .await
        .ok()
        .and_then(|metadata| metadata.view)
    else {
        return failed(not_leader);
    };
    let fenced = errors::leader_epoch(asked.current_leader_epoch, view.leader_epoch);
    if fenced != KafkaError::NONE {
        return failed(fenced);
    }
    let high_watermark = match link.consume(0, 0).await {
        Ok(ConsumeResult::Ok { high_watermark, .. }) => high_watermark,
        Ok(ConsumeResult::NotLeader) | Err(_) => return failed(not_leader),
    };
    let offset = match asked.timestamp {
        EARLIEST => 0,
        _ => i64::try_from(high_watermark).expect("offsets fit int64"),
    };
    response
        .with_offset(offset)
        .with_leader_epoch(view.leader_epoch as i32)
}
