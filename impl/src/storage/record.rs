//! [`Record`]: one entry of the replicated log, as the core, the wire and the disk carry it.

use serde::{Deserialize, Serialize};

/// One log record. `leader_epoch` is the epoch of the leader that first appended it (not the
/// epoch in which a follower copied it); `producer_id` and `sequence` identify it for
/// idempotent produce, so that a retried produce is recognised after a leader change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    pub offset: u64,
    pub leader_epoch: u32,
    pub producer_id: u64,
    pub sequence: u32,
    #[serde(with = "super::value_bytes")]
    pub value: Vec<u8>,
}
