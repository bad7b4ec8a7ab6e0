//! The `(topic, partition) -> partition` table: every Kafka request names a topic and a
//! partition, and is routed through this table to the event loop that owns that partition's
//! core. A broker runs one event loop per partition slot of the topic table (docs/protocol.md
//! §7), and each topic's partitions have their entries here; the API handlers do not know how
//! many there are.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::topic_table::{Slot, TopicTable};
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

/// What the table says of one `(topic, partition)`.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The loop serving it runs here.
    Up(&'a PartitionRoute),
    /// The topic and partition exist, but this broker's loop for it is not up yet (a topic
    /// just created): clients are told `LEADER_NOT_AVAILABLE` and retry.
    NotUp,
    Unknown,
}

/// See the module doc. Built from the topic table and the loops running; rebuilt whenever
/// either changes, and published to the Kafka listener (`BrokerTopics`).
#[derive(Clone, Debug, Default)]
pub struct PartitionTable {
    /// Each topic's partitions in index order; `None`: not up yet.
    topics: BTreeMap<String, Vec<Option<PartitionRoute>>>,
}

impl PartitionTable {
    /// The routes of `table`: partition `p` of a topic goes to the loop of its slot in
    /// `loops`, or is `NotUp` when that slot's loop does not run here.
    pub fn of_table(table: &TopicTable, loops: &BTreeMap<Slot, mpsc::Sender<Input>>) -> Self {
        let topics = table.topics().iter().map(|topic| {
            let routes = topic.slots.iter().map(|slot| {
                let inputs = loops.get(slot)?.clone();
                Some(PartitionRoute { inputs })
            });
            (topic.name.clone(), routes.collect())
        });
        PartitionTable {
            topics: topics.collect(),
        }
    }

    pub fn route(&self, topic: &str, partition: i32) -> Lookup<'_> {
        let Some(routes) = self.topics.get(topic) else {
            return Lookup::Unknown;
        };
        let index = usize::try_from(partition).ok();
        match index.and_then(|index| routes.get(index)) {
            None => Lookup::Unknown,
            Some(None) => Lookup::NotUp,
            Some(Some(route)) => Lookup::Up(route),
        }
    }

    /// Every topic with its partition indexes, in order.
    pub fn topics(&self) -> BTreeMap<&str, Vec<i32>> {
        let topics = self.topics.iter().map(|(name, routes)| {
            let count = i32::try_from(routes.len()).expect("at most PARTITIONS_MAX");
            (name.as_str(), (0..count).collect())
        });
        topics.collect()
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

    /// Goal: every partition of every topic routes to the loop of its slot, one whose loop
    /// is not up is told apart from one that does not exist.
    #[test]
    fn partitions_route_to_their_slots_loops() {
        let specs = [
            TopicSpec::parse("orders:3").unwrap(),
            TopicSpec::parse("b").unwrap(),
        ];
        let table = TopicTable::from_specs(&specs, 8).unwrap();
        let channels: Vec<_> = (0..4).map(|_| mpsc::channel::<Input>(1)).collect();
        let mut loops: BTreeMap<Slot, _> =
            (0..).zip(channels.iter().map(|c| c.0.clone())).collect();
        loops.remove(&3);
        let routes = PartitionTable::of_table(&table, &loops);
        assert_eq!(routes.topics()["orders"], vec![0, 1, 2]);
        assert_eq!(routes.topics()["b"], vec![0]);
        for (index, (sender, _)) in channels.iter().take(3).enumerate() {
            let Lookup::Up(route) = routes.route("orders", index as i32) else {
                panic!("partition {index} is up");
            };
            assert!(route.inputs.same_channel(sender), "partition {index}");
        }
        assert!(matches!(routes.route("b", 0), Lookup::NotUp));
        assert!(matches!(routes.route("orders", 3), Lookup::Unknown));
        assert!(matches!(routes.route("orders", -1), Lookup::Unknown));
        assert!(matches!(routes.route("other", 0), Lookup::Unknown));
    }
}
