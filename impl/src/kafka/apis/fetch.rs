//! Fetch: committed records only, as the core's `Consume` gives them, with KIP-320 fencing.
//!
//! Fencing is checked here, against the view the event loop reports just before the
//! `Consume` (docs/kafka.md argues why the adapter may: whatever view change falls between
//! the two inputs, the core's `Consume` still serves only records below its HW, which the
//! checked protocol never loses, or answers `NotLeader`; the check only saves a client with a
//! stale or a too-new epoch from reading where it should first refresh its metadata).
//!
//! No parked client fetches exist in the core: a fetch that finds nothing new is asked again
//! every [`FETCH_REPOLL_INTERVAL`] until its `max_wait_ms` (at most [`FETCH_WAIT_MAX`]) is up,
//! so an idle consumer does not spin the event loop.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId as KafkaBrokerId, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use crate::core::CONSUME_RECORDS_MAX;
use crate::kafka::dispatch::Session;
use crate::kafka::errors::{self, KafkaError};
use crate::kafka::records::encode_fetch;
use crate::protocol::ConsumeResult;

/// How often an empty fetch asks the core again while its wait runs.
const FETCH_REPOLL_INTERVAL: Duration = Duration::from_millis(10);
/// Longest wait of an empty fetch, whatever `max_wait_ms` says.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(1);

pub async fn handle(request: FetchRequest, version: i16, session: &mut Session) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms.max(0)).expect("positive"));
    let deadline = Instant::now() + wait.min(FETCH_WAIT_MAX);
    loop {
        let (responses, found) = fetch_all(&request, version, session).await;
        if found || Instant::now() >= deadline {
            return FetchResponse::default().with_responses(responses);
        }
        tokio::time::sleep(FETCH_REPOLL_INTERVAL.min(deadline - Instant::now())).await;
    }
}

/// Every partition asked; `found`: some partition had records or an error to report.
async fn fetch_all(
    request: &FetchRequest,
    version: i16,
    session: &mut Session,
) -> (Vec<FetchableTopicResponse>, bool) {
    let mut found = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for asked in &topic.partitions {
            let data = fetch_one(session, topic.topic.0.as_str(), asked).await;
            let data = for_version(data, version);
            let has_records = data
                .records
                .as_ref()
                .is_some_and(|records| !records.is_empty());
            found |= data.error_code != 0 || has_records;
            partitions.push(data);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    (responses, found)
}

/// Drops what the request's version has no field for: the log start offset before v5, the
/// current leader before v12.
fn for_version(data: PartitionData, version: i16) -> PartitionData {
    let data = match version >= 5 {
        true => data,
        false => data.with_log_start_offset(-1),
    };
    match version >= 12 {
        true => data,
        false => data.with_current_leader(LeaderIdAndEpoch::default()),
    }
}

async fn fetch_one(session: &mut Session, topic: &str, asked: &FetchPartition) -> PartitionData {
    let response = PartitionData::default()
        .with_partition_index(asked.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(0);
    let link = match session.link(topic, asked.partition).await {
        Ok(link) => link,
        Err(error) => return response.with_error_code(error.code),
    };
    let view = match link.metadata().await {
        Ok(metadata) => metadata.view,
        Err(_) => return response.with_error_code(ResponseError::NotLeaderOrFollower.code()),
    };
    let Some(view) = view else {
        return response.with_error_code(ResponseError::NotLeaderOrFollower.code());
    };
    let leader = LeaderIdAndEpoch::default()
        .with_leader_id(KafkaBrokerId(view.leader.map_or(-1, |id| id as i32)))
        .with_leader_epoch(view.leader_epoch as i32);
    let fenced = errors::leader_epoch(asked.current_leader_epoch, view.leader_epoch);
    if fenced != KafkaError::NONE {
        return response
            .with_error_code(fenced.code)
            .with_current_leader(leader);
    }
    let Ok(fetch_offset) = u64::try_from(asked.fetch_offset) else {
        return response.with_error_code(ResponseError::OffsetOutOfRange.code());
    };
    let result = match link.consume(fetch_offset, CONSUME_RECORDS_MAX as u32).await {
        Ok(result) => result,
        Err(_) => return response.with_error_code(ResponseError::NotLeaderOrFollower.code()),
    };
    match result {
        ConsumeResult::NotLeader => response
            .with_error_code(errors::consume(&result).code)
            .with_current_leader(leader),
        ConsumeResult::Ok {
            records,
            high_watermark,
        } => {
            let max_bytes = usize::try_from(asked.partition_max_bytes.max(1)).expect("positive");
            let hw = i64::try_from(high_watermark).expect("offsets fit int64");
            response
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_records(Some(encode_fetch(&records, max_bytes)))
        }
    }
}
