//! The cluster's topic table: every topic, in creation order, with each of its partitions
//! mapped to a global partition *slot* (docs/protocol.md §7).
//!
//! A slot is one whole instance of the checked protocol (a controller core in the controller
//! process, a broker event loop in each broker process), with addresses known in advance
//! (`--partition-nodes`). Slot 0 is the process's own (`--listen`), and stays the first
//! topic's partition 0, the one the trace log and the stepped conformance harness cover.
//!
//! The controller process owns the table and persists it ([`TOPIC_TABLE_FILE_NAME`] in its
//! data directory) before it answers; each broker keeps a durable copy of the last one it
//! learned, so it serves its partitions after a restart while the controller is down. A
//! table only grows: a topic, once created, keeps its slots for ever (no deletion is served).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::partitions::{TopicSpec, PARTITIONS_MAX};

/// A global partition slot: `0..slots`, `slots <= PARTITIONS_MAX`.
pub type Slot = u32;

/// File name of the topic table (the controller's, or a broker's copy) in a data directory.
pub const TOPIC_TABLE_FILE_NAME: &str = "topics.table";

/// One topic: partition `p` is served by slot `slots[p]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicEntry {
    pub name: String,
    pub slots: Vec<Slot>,
}

/// See the module doc.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicTable {
    /// In creation order; names unique; every slot used once.
    topics: Vec<TopicEntry>,
}

/// Why a topic cannot be created; travels on the control channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TopicRefusal {
    #[error("topic {name:?} already exists")]
    AlreadyExists { name: String },
    #[error(
        "{asked} partitions asked, {free} left: the cluster has {slots} partition slots \
         (insync cluster up --partition-slots, at most {PARTITIONS_MAX}) and {used} are in use"
    )]
    NotEnoughSlots {
        asked: u32,
        free: u32,
        used: u32,
        slots: u32,
    },
    #[error("{reason}")]
    Invalid { reason: String },
}

impl TopicTable {
    /// The table of a fresh cluster: `specs` created in order (`--topic a:3 --topic b`).
    pub fn from_specs(specs: &[TopicSpec], slots: u32) -> Result<TopicTable, TopicRefusal> {
        if specs.is_empty() {
            let reason = "a cluster serves at least one topic (--topic)".to_owned();
            return Err(TopicRefusal::Invalid { reason });
        }
        let mut table = TopicTable { topics: Vec::new() };
        for spec in specs {
            table.create(spec, slots)?;
        }
        assert_eq!(table.topics[0].slots[0], 0, "slot 0 is the first topic's");
        Ok(table)
    }

    /// Whether `spec` can be created in a cluster of `slots` slots (validate only).
    pub fn check(&self, spec: &TopicSpec, slots: u32) -> Result<(), TopicRefusal> {
        assert!(slots <= PARTITIONS_MAX, "{slots} slots");
        if self.topic(&spec.name).is_some() {
            let name = spec.name.clone();
            return Err(TopicRefusal::AlreadyExists { name });
        }
        let used = self.slots_used();
        let free = slots.saturating_sub(used);
        if spec.partitions > free {
            return Err(TopicRefusal::NotEnoughSlots {
                asked: spec.partitions,
                free,
                used,
                slots,
            });
        }
        Ok(())
    }

    /// Creates `spec` on the lowest free slots, which it returns.
    pub fn create(&mut self, spec: &TopicSpec, slots: u32) -> Result<Vec<Slot>, TopicRefusal> {
        self.check(spec, slots)?;
        let used = self.assigned();
        let free = (0..slots).filter(|slot| !used.contains(slot));
        let taken: Vec<Slot> = free.take(spec.partitions as usize).collect();
        assert_eq!(
            taken.len() as u64,
            u64::from(spec.partitions),
            "checked above"
        );
        self.topics.push(TopicEntry {
            name: spec.name.clone(),
            slots: taken.clone(),
        });
        self.validate(slots)
            .expect("a created topic keeps the table valid");
        Ok(taken)
    }

    pub fn topics(&self) -> &[TopicEntry] {
        &self.topics
    }

    pub fn topic(&self, name: &str) -> Option<&TopicEntry> {
        self.topics.iter().find(|topic| topic.name == name)
    }

    /// Every slot some topic's partition uses.
    pub fn assigned(&self) -> BTreeSet<Slot> {
        let slots = self.topics.iter().flat_map(|topic| topic.slots.iter());
        slots.copied().collect()
    }

    pub fn slots_used(&self) -> u32 {
        // Every slot is used once (`validate`), so this is also the partitions' count.
        u32::try_from(self.assigned().len()).expect("at most PARTITIONS_MAX slots")
    }

    /// Whether `self` is `earlier` with topics added after it: a table only grows.
    pub fn extends(&self, earlier: &TopicTable) -> bool {
        self.topics.starts_with(&earlier.topics)
    }

    /// The table's invariants, for a table read from disk or the wire: names valid and
    /// unique, every slot below `slots` and used once, slot 0 the first topic's partition 0.
    pub fn validate(&self, slots: u32) -> Result<(), String> {
        let mut names = BTreeSet::new();
        let mut used = BTreeSet::new();
        for topic in &self.topics {
            if TopicSpec::parse(&topic.name).is_err() || !names.insert(topic.name.as_str()) {
                return Err(format!("topic name {:?} invalid or repeated", topic.name));
            }
            if topic.slots.is_empty() {
                return Err(format!("topic {:?} has no partition", topic.name));
            }
            for slot in &topic.slots {
                if *slot >= slots || !used.insert(*slot) {
                    let name = &topic.name;
                    return Err(format!(
                        "topic {name:?}: slot {slot} repeated or not among the {slots} slots \
                         this process has addresses for (--partition-nodes)"
                    ));
                }
            }
        }
        match self.topics.first().and_then(|topic| topic.slots.first()) {
            Some(0) => Ok(()),
            _ => Err("slot 0 is not the first topic's partition 0".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{read_checkpoint, write_checkpoint};

    fn spec(text: &str) -> TopicSpec {
        TopicSpec::parse(text).unwrap()
    }

    /// Goal: topics declared at start take slots in order, slot 0 first; a created topic
    /// takes the lowest free slots.
    #[test]
    fn topics_take_the_lowest_free_slots_in_creation_order() {
        let mut table = TopicTable::from_specs(&[spec("a:2"), spec("b")], 8).unwrap();
        assert_eq!(table.topic("a").unwrap().slots, vec![0, 1]);
        assert_eq!(table.topic("b").unwrap().slots, vec![2]);
        assert_eq!(table.create(&spec("fresh:3"), 8).unwrap(), vec![3, 4, 5]);
        let names: Vec<&str> = table.topics().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "fresh"]);
        assert_eq!(table.slots_used(), 6);
        assert_eq!(table.validate(8), Ok(()));
        assert!(table.validate(5).is_err(), "slot 5 needs six addresses");
    }

    /// Goal: asking for more partitions than free slots is refused with how many are left,
    /// and changes nothing; the last free slots can still be taken.
    #[test]
    fn exhaustion_is_refused_with_the_count_left() {
        let mut table = TopicTable::from_specs(&[spec("a:3")], 5).unwrap();
        let before = table.clone();
        let refused = table.create(&spec("big:3"), 5).unwrap_err();
        assert_eq!(
            refused,
            TopicRefusal::NotEnoughSlots {
                asked: 3,
                free: 2,
                used: 3,
                slots: 5
            }
        );
        assert!(refused.to_string().contains("2 left"), "{refused}");
        assert_eq!(table, before);
        assert_eq!(table.create(&spec("fits:2"), 5).unwrap(), vec![3, 4]);
        assert!(table.create(&spec("one"), 5).is_err(), "none left");
        let most = format!("all:{PARTITIONS_MAX}");
        assert!(TopicTable::from_specs(&[spec(&most)], PARTITIONS_MAX).is_ok());
        let over = TopicTable::from_specs(&[spec(&most), spec("b")], PARTITIONS_MAX);
        assert!(matches!(over, Err(TopicRefusal::NotEnoughSlots { .. })));
    }

    /// Goal: a name is created once; the second ask is refused and changes nothing.
    #[test]
    fn a_duplicate_name_is_refused() {
        let mut table = TopicTable::from_specs(&[spec("a")], 4).unwrap();
        let refused = table.create(&spec("a:2"), 4).unwrap_err();
        assert_eq!(refused, TopicRefusal::AlreadyExists { name: "a".into() });
        assert_eq!(table.slots_used(), 1);
        let twice = TopicTable::from_specs(&[spec("b"), spec("b")], 4);
        assert!(matches!(twice, Err(TopicRefusal::AlreadyExists { .. })));
        assert!(TopicTable::from_specs(&[], 4).is_err(), "no topic at all");
    }

    /// Goal: the table written as a checkpoint reads back equal, and a grown table extends
    /// the one it grew from (and not the other way round).
    #[test]
    fn the_table_round_trips_through_a_checkpoint_and_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOPIC_TABLE_FILE_NAME);
        let missing: Option<TopicTable> = read_checkpoint(&path).unwrap();
        assert_eq!(missing, None);
        let mut table = TopicTable::from_specs(&[spec("a:2")], 6).unwrap();
        let first = table.clone();
        table.create(&spec("fresh:3"), 6).unwrap();
        write_checkpoint(&path, &table).unwrap();
        let read: Option<TopicTable> = read_checkpoint(&path).unwrap();
        assert_eq!(read.as_ref(), Some(&table));
        assert!(table.extends(&first) && table.extends(&table));
        assert!(!first.extends(&table));
    }

    /// Goal: a table from disk or the wire that breaks an invariant is caught.
    #[test]
    fn broken_tables_fail_validation() {
        let entry = |name: &str, slots: &[Slot]| TopicEntry {
            name: name.into(),
            slots: slots.to_vec(),
        };
        let broken = [
            vec![entry("a", &[1])],
            vec![entry("a", &[0]), entry("a", &[1])],
            vec![entry("a", &[0, 0])],
            vec![entry("a", &[0]), entry("b", &[])],
            vec![entry("a b", &[0])],
            vec![],
        ];
        for topics in broken {
            let table = TopicTable { topics };
            assert!(table.validate(4).is_err(), "{table:?}");
        }
    }
}
