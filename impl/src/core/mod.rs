//! The sans-I/O protocol core: the broker's and the controller's state machines.
//!
//! Inputs go in through `step` (a message from a peer) and `fire` (a timer); what to do comes
//! out as `Effects`. The core never touches a socket or a clock; the node runtime (`node/`)
//! owns those. The broker reads and writes its log through the `ReplicaLog` trait, whose
//! durable implementation is `storage::Storage`; every write the core makes through it has
//! completed (and, under `fsync = always`, is durable) before the effects that depend on it
//! are returned, so persist-before-send holds by construction.
//!
//! Handler rules are docs/protocol.md §4, one file per message family.

use crate::protocol::{Epoch, Message, NodeId, Offset, Record, Timer};

/// Which historical design the node runs (docs/protocol.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    Kip966,
    Kip320,
    Kip279,
    Kip101,
    HwTruncation,
}

/// Protocol switches shared by every process of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolConfig {
    pub variant: Variant,
    pub unclean_leader_election: bool,
    pub min_insync_replicas: u32,
    /// All broker ids of the partition's replica set.
    pub brokers: Vec<crate::protocol::BrokerId>,
}

/// What the core asks the runtime to do after one input, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Messages to send, in the order they must be sent.
    pub send: Vec<(NodeId, Message)>,
    /// Timers to arm (idempotent) and to cancel.
    pub arm: Vec<Timer>,
    pub cancel: Vec<Timer>,
}

/// The broker's view of its replica log. `storage::Storage` implements it on disk; tests use
/// an in-memory implementation.
pub trait ReplicaLog {
    type Error: std::error::Error;
    fn log_end_offset(&self) -> Offset;
    /// Epoch of the last record, 0 when empty.
    fn last_epoch(&self) -> Epoch;
    /// Largest epoch <= `epoch` in the log and the offset where it ends (start of the next
    /// epoch, or LEO); `None` when the log has no epoch <= `epoch`.
    fn end_offset_for_epoch(&self, epoch: Epoch) -> Option<(Epoch, Offset)>;
    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<Record>, Self::Error>;
    fn append(&mut self, records: &[Record]) -> Result<(), Self::Error>;
    fn truncate_to(&mut self, offset: Offset) -> Result<(), Self::Error>;
    fn high_watermark_checkpoint(&self) -> Offset;
    fn write_high_watermark(&mut self, hw: Offset) -> Result<(), Self::Error>;
}
