//! The Kafka wire protocol on a client listener (`--kafka-listen`): Kafka's own clients
//! (librdkafka, kcat, the Java client) create topics, and produce to and consume from their
//! partitions, each an instance of the checked protocol.
//!
//! This is an adapter in front of the core, not a second broker: every produce and every read
//! is a `ClientRequest` to the event loop, exactly what insync's own client sends, so what a
//! Kafka client is told (acknowledged, committed, refused) is what the checked protocol
//! decided. The adapter translates bytes and names; the decisions stay in the core
//! (docs/kafka.md lists which ones the adapter makes itself, and why each is safe there).
//!
//! - [`listener`]: the bounded accept loop, one task per connection;
//! - [`connection`]: length-prefixed frames with a size bound; bytes only;
//! - [`dispatch`]: the request header, the API and version check, one handler per API in
//!   [`apis`];
//! - [`link`]: how a connection speaks to the event loop (a client id, requests, replies);
//! - [`partitions`]: the `(topic, partition) -> partition` table every request is routed by;
//! - [`topic_table`]: the cluster's topics and the partition slots they use;
//! - [`records`]: record batch v2 in, record batch v2 out, and what a Kafka record keeps in
//!   an insync record's value bytes;
//! - [`errors`]: the core's answers as Kafka error codes;
//! - [`producer_ids`]: cluster-unique producer ids without coordination;
//! - [`lazy_alloc`]: the allocator that keeps a decoder's oversized reservation from aborting.
//!
//! Message schemas come from the `kafka-protocol` crate (generated from Kafka's JSON message
//! definitions); nothing here hand-encodes a message schema.

pub mod apis;
pub mod connection;
pub mod dispatch;
pub mod errors;
pub mod lazy_alloc;
pub mod link;
pub mod listener;
pub mod partitions;
pub mod producer_ids;
pub mod records;
pub mod topic_table;

use std::collections::BTreeMap;

use crate::protocol::BrokerId;

pub use listener::{serve, KafkaContext};
pub use partitions::{PartitionTable, TopicSpec, TopicSpecError};

/// The default topic name (`--topic`).
pub const DEFAULT_TOPIC: &str = "insync";

/// What a broker's Kafka listener is told at start.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Where to listen (`--kafka-listen`).
    pub listen: String,
    /// Every broker's Kafka address as clients reach it (`--kafka-peers`), this one's
    /// included: Metadata answers with these.
    pub advertised: BTreeMap<BrokerId, String>,
}

/// A bound Kafka listener and what its connections need, ready to serve once the node's
/// event loop exists.
#[derive(Debug)]
pub struct KafkaStart {
    pub listener: tokio::net::TcpListener,
    pub broker: BrokerId,
    /// This incarnation's broker epoch: part of every producer id handed out.
    pub broker_epoch: crate::protocol::BrokerEpoch,
    pub cluster_id: String,
    pub replicas: Vec<BrokerId>,
    pub config: KafkaConfig,
    /// Every topic's partitions and their loops, as the topic table and the running loops
    /// say (`node::broker_topics`).
    pub routes: tokio::sync::watch::Receiver<std::sync::Arc<PartitionTable>>,
    /// Where CreateTopics goes; `None`: no controller behind this listener (API tests).
    pub topics: Option<std::sync::Arc<crate::node::broker_topics::BrokerTopics>>,
}

impl KafkaStart {
    /// Serves Kafka connections in front of the partitions' event loops until shutdown.
    pub fn spawn(self, shutdown: crate::node::shutdown::Shutdown) -> tokio::task::JoinHandle<()> {
        let mut advertised = BTreeMap::new();
        for (id, address) in &self.config.advertised {
            match split_host_port(address) {
                Some(endpoint) => {
                    advertised.insert(*id, endpoint);
                }
                None => tracing::warn!(id, address, "not HOST:PORT; left out of Metadata"),
            }
        }
        let context = KafkaContext {
            broker: self.broker,
            cluster_id: self.cluster_id,
            replicas: self.replicas,
            advertised,
            partitions: self.routes,
            topics: self.topics,
            producer_ids: producer_ids::ProducerIds::new(self.broker, self.broker_epoch),
            connection_serial: std::sync::atomic::AtomicU64::new(0),
        };
        let local = self.listener.local_addr().ok();
        tracing::info!(?local, "kafka listener serving");
        tokio::spawn(serve(self.listener, std::sync::Arc::new(context), shutdown))
    }
}

/// `host:port` (or `[v6]:port`) as Metadata carries it.
pub fn split_host_port(address: &str) -> Option<(String, i32)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), i32::from(port)))
}
