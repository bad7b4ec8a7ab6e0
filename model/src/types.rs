//! Vocabulary shared by every actor: broker ids and sets of them, records, views.
//!
//! Offsets are implicit in the model: a record's offset is its index in the log, so
//! `Record` carries only `leader_epoch` and `record_id` (docs/protocol.md §2). Broker ids are
//! `u8` (a bitmask of at most 15); epochs, offsets and record ids are `u32`, although the
//! checker's bounds are tiny, because trace validation steps these actors along real runs of
//! thousands of records and epochs (docs/validation.md "Bounds"). The widening left the
//! checker's state counts unchanged.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};
use std::fmt;

/// A leader epoch or partition epoch.
pub type Epoch = u32;
/// An offset in the log (the index of a record).
pub type Offset = u32;
/// A client record id, `1..=R`.
pub type RecordId = u32;

/// Broker ids are `1..=N`; the broker with id `b` is actor index `b`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct BrokerId(pub u8);

impl BrokerId {
    pub fn id(self) -> Id {
        Id::from(self.0 as usize)
    }
    pub fn from_id(id: Id) -> Self {
        let index = usize::from(id);
        assert!(
            index > 0 && index < BrokerSet::CAPACITY,
            "not a broker: {index}"
        );
        BrokerId(index as u8)
    }
}

impl fmt::Debug for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Rewrite<Id> for BrokerId {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        BrokerId::from_id(plan.rewrite(&self.id()))
    }
}

/// A set of broker ids as a bitmask: ISRs, ELRs and fenced sets are small and copied often.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerSet(u16);

impl BrokerSet {
    /// Broker ids must be below this.
    pub const CAPACITY: usize = 16;

    pub fn empty() -> Self {
        BrokerSet(0)
    }
    /// Brokers `1..=count`.
    pub fn all(count: u8) -> Self {
        assert!((count as usize) < Self::CAPACITY);
        BrokerSet(((1u16 << count) - 1) << 1)
    }
    pub fn contains(self, b: BrokerId) -> bool {
        self.0 & (1 << b.0) != 0
    }
    pub fn with(self, b: BrokerId) -> Self {
        BrokerSet(self.0 | (1 << b.0))
    }
    pub fn without(self, b: BrokerId) -> Self {
        BrokerSet(self.0 & !(1 << b.0))
    }
    pub fn union(self, other: Self) -> Self {
        BrokerSet(self.0 | other.0)
    }
    pub fn minus(self, other: Self) -> Self {
        BrokerSet(self.0 & !other.0)
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Members in increasing id order.
    pub fn iter(self) -> impl Iterator<Item = BrokerId> {
        (1..Self::CAPACITY as u8)
            .map(BrokerId)
            .filter(move |b| self.contains(*b))
    }
    /// The lowest member, if any (the election tie-break).
    pub fn lowest(self) -> Option<BrokerId> {
        self.iter().next()
    }
}

impl fmt::Debug for BrokerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, b) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{b}")?;
        }
        write!(f, "}}")
    }
}

impl Serialize for BrokerSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for b in self.iter() {
            seq.serialize_element(&b)?;
        }
        seq.end()
    }
}

impl Rewrite<Id> for BrokerSet {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        self.iter()
            .fold(BrokerSet::empty(), |set, b| set.with(b.rewrite(plan)))
    }
}

/// One record of the log; its offset is its index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Record {
    /// The epoch of the leader that first appended it.
    pub leader_epoch: Epoch,
    /// The client's record id.
    pub record_id: RecordId,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}@e{}", self.record_id, self.leader_epoch)
    }
}

/// A log as `[r1@e1 r2@e2]` (offsets are positions).
pub fn fmt_log(log: &[Record]) -> String {
    let items: Vec<String> = log.iter().map(|r| format!("{r:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// The controller's partition state: the view (docs/protocol.md §2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct View {
    pub leader: Option<BrokerId>,
    pub leader_epoch: Epoch,
    pub isr: BrokerSet,
    pub partition_epoch: Epoch,
}

impl View {
    /// The initial view: broker 1 leads epoch 1 with every broker in the ISR.
    pub fn initial(brokers: u8) -> Self {
        View {
            leader: Some(BrokerId(1)),
            leader_epoch: 1,
            isr: BrokerSet::all(brokers),
            partition_epoch: 1,
        }
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.leader {
            Some(l) => write!(f, "leader {l}")?,
            None => write!(f, "no leader")?,
        }
        write!(
            f,
            " e{} isr {:?} pe{}",
            self.leader_epoch, self.isr, self.partition_epoch
        )
    }
}

impl Rewrite<Id> for View {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        View {
            leader: self.leader.map(|l| l.rewrite(plan)),
            isr: self.isr.rewrite(plan),
            ..*self
        }
    }
}

/// Epoch-cache lookups derived from a log (docs/protocol.md §4.2, §4.4).
pub mod epochs {
    use super::*;

    /// The epoch of the last record, or 0 for an empty log.
    pub fn last_epoch(log: &[Record]) -> Epoch {
        log.last().map_or(0, |r| r.leader_epoch)
    }

    /// The first offset whose epoch is above `epoch`, or the log end.
    pub fn end_of_epoch(log: &[Record], epoch: Epoch) -> Offset {
        let end = log
            .iter()
            .position(|r| r.leader_epoch > epoch)
            .unwrap_or(log.len());
        end as Offset
    }

    /// A leader's history lookup: the largest epoch `<= requested` it knows (its records' epochs
    /// and its own current epoch, which starts at `start_offset`) and the offset where that
    /// epoch ends. `(0, 0)` when it knows no such epoch.
    pub fn leader_lookup(
        log: &[Record],
        current: (Epoch, Offset),
        requested: Epoch,
    ) -> (Epoch, Offset) {
        let (current_epoch, start_offset) = current;
        let leo = log.len() as Offset;
        if current_epoch <= requested {
            return (current_epoch, leo);
        }
        let found = log
            .iter()
            .map(|r| r.leader_epoch)
            .filter(|e| *e <= requested)
            .max();
        match found {
            None => (0, 0),
            // Records of epochs above `epoch` (the current one included, which starts at
            // `start_offset`) all follow the end of `epoch`.
            Some(epoch) => (epoch, end_of_epoch(log, epoch).min(start_offset)),
        }
    }
}
