//! The `(topic, partition) -> partition` table: every Kafka request names a topic and a
//! partition, and is routed through this table to the event loop that owns that partition's
//! core. Today a node runs one core, so the table has one entry; when a node multiplexes
//! several partitions each gets its entry here and the API handlers do not change.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::node::event_loop::Input;

/// Longest topic name Kafka accepts.
const TOPIC_NAME_BYTES_MAX: usize = 249;

/// `--topic NAME` or `--topic NAME:PARTITIONS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicSpecError {
    #[error(
        "topic {name:?}: {partitions} partitions asked, but partitions are not yet served: \
         one topic with one partition (the checked partition) is"
    )]
    PartitionsNotServed { name: String, partitions: u32 },
    #[error("topic name {0:?}: Kafka topic names are 1-249 of [a-zA-Z0-9._-]")]
    Name(String),
    #[error("topic {0:?}: the partition count after ':' is a positive number")]
    Count(String),
}

impl TopicSpec {
    /// Parses `NAME` (one partition) or `NAME:P`; refuses P > 1 until partitions land.
    pub fn parse(text: &str) -> Result<TopicSpec, TopicSpecError> {
        let (name, partitions) = match text.split_once(':') {
            None => (text, 1),
            Some((name, count)) => match count.parse::<u32>() {
                Ok(count) if count >= 1 => (name, count),
                _ => return Err(TopicSpecError::Count(text.to_owned())),
            },
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX || !name.chars().all(valid) {
            return Err(TopicSpecError::Name(name.to_owned()));
        }
        if partitions > 1 {
            return Err(TopicSpecError::PartitionsNotServed {
                name: name.to_owned(),
                partitions,
            });
        }
        Ok(TopicSpec {
            name: name.to_owned(),
            partitions,
        })
    }
}

/// Where one partition's requests go.
#[derive(Clone, Debug)]
pub struct PartitionRoute {
    /// The event loop that owns this partition's core.
    pub inputs: mpsc::Sender<Input>,
}

/// See the module doc.
#[derive(Clone, Debug, Default)]
pub struct PartitionTable {
    routes: BTreeMap<(String, i32), PartitionRoute>,
}

impl PartitionTable {
    /// The table of a node serving `topic` from one core.
    pub fn single(topic: &TopicSpec, inputs: mpsc::Sender<Input>) -> PartitionTable {
        assert_eq!(topic.partitions, 1, "refused by TopicSpec::parse");
        let mut routes = BTreeMap::new();
        routes.insert((topic.name.clone(), 0), PartitionRoute { inputs });
        PartitionTable { routes }
    }

    pub fn route(&self, topic: &str, partition: i32) -> Option<&PartitionRoute> {
        self.routes.get(&(topic.to_owned(), partition))
    }

    /// Every topic with its partition indexes, in order.
    pub fn topics(&self) -> BTreeMap<&str, Vec<i32>> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in self.routes.keys() {
            topics.entry(topic.as_str()).or_default().push(*partition);
        }
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs_parse_and_partitions_are_refused_with_a_reason() {
        let spec = TopicSpec::parse("orders").unwrap();
        assert_eq!((spec.name.as_str(), spec.partitions), ("orders", 1));
        assert_eq!(TopicSpec::parse("orders:1").unwrap().partitions, 1);
        let refused = TopicSpec::parse("orders:6").unwrap_err();
        assert!(refused.to_string().contains("not yet served"), "{refused}");
        assert!(matches!(
            TopicSpec::parse("a b"),
            Err(TopicSpecError::Name(_))
        ));
        assert!(matches!(
            TopicSpec::parse("x:0"),
            Err(TopicSpecError::Count(_))
        ));
    }
}
