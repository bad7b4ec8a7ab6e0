//! Metadata: every broker with its Kafka address, and for each served topic asked for, its
//! partition's leader, leader epoch, replicas (every broker) and ISR, from this broker's view
//! (possibly stale, as in Kafka: a client told NOT_LEADER_OR_FOLLOWER asks again).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId as KafkaBrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::kafka::dispatch::Session;
use crate::kafka::errors::KafkaError;
use crate::protocol::View;

pub async fn handle(
    request: MetadataRequest,
    version: i16,
    session: &mut Session,
) -> MetadataResponse {
    let served: Vec<(String, Vec<i32>)> = session
        .context
        .routes()
        .topics()
        .into_iter()
        .map(|(name, partitions)| (name.to_owned(), partitions))
        .collect();
    let asked: Vec<String> = match request.topics {
        None => served.iter().map(|(name, _)| name.clone()).collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|topic| topic.name.map(|name| name.0.to_string()))
            .collect(),
    };
    let mut topics = Vec::with_capacity(asked.len());
    for name in asked {
        let partitions = served.iter().find(|(served, _)| *served == name);
        let topic = match partitions {
            None => MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            Some((_, partitions)) => topic(session, &name, partitions, version).await,
        };
        topics.push(topic);
    }
    let context = &session.context;
    let brokers = context
        .advertised
        .iter()
        .map(|(id, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(KafkaBrokerId(*id as i32))
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(*port)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        // The cluster id is a field from v2 on.
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(context.cluster_id.clone())))
        .with_controller_id(KafkaBrokerId(context.broker as i32))
        .with_topics(topics)
}

async fn topic(
    session: &mut Session,
    name: &str,
    partitions: &[i32],
    version: i16,
) -> MetadataResponseTopic {
    let replicas: Vec<KafkaBrokerId> = session
        .context
        .replicas
        .iter()
        .map(|id| KafkaBrokerId(*id as i32))
        .collect();
    let mut described = Vec::with_capacity(partitions.len());
    for &index in partitions {
        let view = match session.link(name, index).await {
            Ok(link) => link
                .metadata()
                .await
                .map(|metadata| metadata.view)
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let described_one = partition(index, view.as_ref(), &replicas);
        // The leader epoch is a field from v7 on.
        described.push(match version >= 7 {
            true => described_one,
            false => described_one.with_leader_epoch(-1),
        });
    }
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
        .with_partitions(described)
}

/// A partition as its view describes it; without a view or a leader, `LEADER_NOT_AVAILABLE`.
fn partition(
    index: i32,
    view: Option<&View>,
    replicas: &[KafkaBrokerId],
) -> MetadataResponsePartition {
    let described = MetadataResponsePartition::default()
        .with_partition_index(index)
        .with_replica_nodes(replicas.to_vec());
    let Some(view) = view else {
        return described
            .with_error_code(KafkaError::of(ResponseError::LeaderNotAvailable).code)
            .with_leader_id(KafkaBrokerId(-1));
    };
    let isr = view
        .isr
        .iter()
        .map(|id| KafkaBrokerId(*id as i32))
        .collect();
    let described = described
        .with_leader_epoch(view.leader_epoch as i32)
        .with_isr_nodes(isr);
    match view.leader {
        Some(leader) => described.with_leader_id(KafkaBrokerId(leader as i32)),
        None => described
            .with_error_code(ResponseError::LeaderNotAvailable.code())
            .with_leader_id(KafkaBrokerId(-1)),
    }
}
