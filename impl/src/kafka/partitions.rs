//! The `(topic, partition) -> partition` table: every Kafka request names a topic and a
//! partition, and is routed through this table to the event loop that owns that partition's
//! core. A broker runs one event loop per partition of its topic (docs/protocol.md §7), and
//! each has its entry here; the API handlers do not know how many there are.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::node::event_loop::Input;

/// Longest topic name Kafka accepts.
const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Most partitions a cluster serves. Each partition is a whole instance of the protocol: one
/// event loop, data directory and listening port per partition on every node, and one
/// controller core per partition, so the bound is on ports and tasks per process.
pub const PARTITIONS_MAX: u32 = 32;

/// `--topic NAME` or `--topic NAME:PARTITIONS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicSpecError {
    #[error("topic {name:?}: {partitions} partitions asked, at most {PARTITIONS_MAX} are served")]
    TooManyPartitions { name: String, partitions: u32 },
    #[error("topic name {0:?}: Kafka topic names are 1-249 of [a-zA-Z0-9._-]")]
    Name(String),
    #[error("topic {0:?}: the partition count after ':' is a positive number")]
    Count(String),
}

impl TopicSpec {
    /// Parses `NAME` (one partition) or `NAME:P`, 1 <= P <= [`PARTITIONS_MAX`].
    pub fn parse(text: &str) -> Result<TopicSpec, TopicSpecError> {
        let (name, partitions) = match text.split_once(':') {
            None => (text, 1),
            Some((name, count)) => match count.parse::<u32>() {
                Ok(count) if count >= 1 => (name, count),
                _ => return Err(TopicSpecError::Count(text.to_owned())),
            },
        };
        if !valid_topic_name(name) {
            return Err(TopicSpecError::Name(name.to_owned()));
        }
        if partitions > PARTITIONS_MAX {
            return Err(TopicSpecError::TooManyPartitions {
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

/// A name Kafka accepts for a topic: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let dots = name == "." || name == "..";
    !name.is_empty() && name.len() <= TOPIC_NAME_BYTES_MAX && name.chars().all(valid) && !dots
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
    /// The table of a node serving `topic`: partition `p` is the event loop behind
    /// `inputs[p]`, one for each of the topic's partitions.
    pub fn of_topic(topic: &TopicSpec, inputs: Vec<mpsc::Sender<Input>>) -> PartitionTable {
        assert_eq!(
            inputs.len() as u64,
            u64::from(topic.partitions),
            "one loop a partition"
        );
        let routes = (0..).zip(inputs).map(|(index, inputs)| {
            let key = (topic.name.clone(), index);
            (key, PartitionRoute { inputs })
        });
        PartitionTable {
            routes: routes.collect(),
        }
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
    fn topic_specs_parse_and_too_many_partitions_are_refused_with_a_reason() {
        let spec = TopicSpec::parse("orders").unwrap();
        assert_eq!((spec.name.as_str(), spec.partitions), ("orders", 1));
        assert_eq!(TopicSpec::parse("orders:1").unwrap().partitions, 1);
        assert_eq!(TopicSpec::parse("orders:6").unwrap().partitions, 6);
        let most = format!("orders:{PARTITIONS_MAX}");
        assert_eq!(TopicSpec::parse(&most).unwrap().partitions, PARTITIONS_MAX);
        let refused = TopicSpec::parse(&format!("orders:{}", PARTITIONS_MAX + 1)).unwrap_err();
        assert!(refused.to_string().contains("at most 32"), "{refused}");
        assert!(matches!(
            TopicSpec::parse("a b"),
            Err(TopicSpecError::Name(_))
        ));
        assert!(matches!(
            TopicSpec::parse("x:0"),
            Err(TopicSpecError::Count(_))
        ));
    }

    #[test]
    fn a_topic_of_several_partitions_routes_each_to_its_own_loop() {
        let topic = TopicSpec::parse("orders:3").unwrap();
        let channels: Vec<_> = (0..3).map(|_| mpsc::channel::<Input>(1)).collect();
        let inputs = channels.iter().map(|(sender, _)| sender.clone()).collect();
        let table = PartitionTable::of_topic(&topic, inputs);
        assert_eq!(table.topics()["orders"], vec![0, 1, 2]);
        for (index, (sender, _)) in channels.iter().enumerate() {
            let route = table.route("orders", index as i32).unwrap();
            assert!(route.inputs.same_channel(sender), "partition {index}");
        }
        assert!(table.route("orders", 3).is_none());
        assert!(table.route("other", 0).is_none());
    }
}
