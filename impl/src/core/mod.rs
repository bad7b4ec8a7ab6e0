//! The sans-I/O protocol core: the broker's and the controller's state machines.
//!
//! Inputs go in through `step_peer` (a message from the controller or a broker),
//! `step_client` (a client's request: brokers only) and `fire` (a timer); what to do comes
//! out as `Effects`. The core never touches a socket, a clock or a file; the node runtime
//! (`node/`) owns those. Persistence is an effect, as in raft-rs's `Ready`: the broker reads
//! its replica through the read-only `ReplicaRead` trait (`storage`), and every change it
//! wants is a `Write` in `Effects::writes` (append, truncate, flush, HW checkpoint), which the
//! runtime applies in order before the next input (asserted at that input, `staged`). Within
//! one input the core reads through its own staged writes. Persist-before-send is explicit:
//! when `Effects::must_sync()` the step's messages leave only after its writes are durable.
//! Under `fsync = lazy` the log and the HW checkpoint are made durable by the broker's
//! `Flush` and `HwCheckpoint` timers (docs/protocol.md §2), which the runtime fires like any
//! other. The controller's durable state is a value (`ControllerState`) the runtime writes
//! when `Effects::persist_state` is set, under the same rule (see `controller`).
//!
//! Handler rules are docs/protocol.md §4, one file per message family. Time enters only as
//! timers (docs/protocol.md §2 "Timers", §6): the core arms and cancels them through `Effects`,
//! says when an armed timer's clock restarts, and handles `fire(timer)` like a message. The
//! runtime keeps one deadline per armed timer and takes no decision of its own, so stepped
//! mode (the harness fires) and real time (a clock fires) run the same rules.

pub mod broker;
pub mod controller;
mod error;
pub mod memlog;
mod staged;
pub mod storage;

pub use broker::{BrokerCore, BrokerStart};
pub use controller::{ControllerCore, ControllerState};
pub use error::{ControllerError, CoreError};
pub use storage::{ReplicaApply, ReplicaRead, Write};

use std::collections::BTreeSet;

use crate::protocol::{BrokerId, Outgoing, Timer};

/// The most records one `FetchResponse` carries. Replication pipelines batches of up to this
/// many records per round trip; a follower further behind fetches again at once.
pub const FETCH_RECORDS_MAX: usize = 512;
/// The most records one `ConsumeResponse` carries, whatever the client asks for.
pub const CONSUME_RECORDS_MAX: usize = 512;
/// The most records in one `Produce` batch; a larger batch is an invalid request.
pub const PRODUCE_RECORDS_MAX: usize = 512;
/// The most acks=all produce requests a leader holds while they wait for the HW. One more is
/// answered `Overloaded` rather than queued.
pub const WAITING_REQUESTS_MAX: usize = 4096;

/// Which historical design the node runs (docs/protocol.md §5, which names the Kafka versions
/// each one stands for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    /// Kafka 3.7+ (KRaft).
    Kip966,
    /// Kafka 2.2–3.x under ZooKeeper.
    Kip320,
    /// Kafka 2.0.0.
    Kip279,
    /// Kafka 0.11.0–1.1.1.
    Kip101,
    /// Kafka 0.8.2–0.10.2.
    HwTruncation,
}

impl Variant {
    /// `kip-320` and `kip-966` fence fetches by leader epoch and detect divergence at the
    /// leader; the older variants do neither.
    pub fn fences_fetches(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }

    /// `kip-101` and `kip-279` look up the leader's epoch end before fetching.
    pub fn uses_epoch_lookup(self) -> bool {
        matches!(self, Variant::Kip101 | Variant::Kip279)
    }

    /// KAFKA-7128 (Kafka 2.0.1, 2.1): a follower joins the ISR only once it has fetched up to
    /// the leader's `leader_epoch_start_offset`, not merely up to the leader's HW, which may
    /// lag what the previous leader committed (§4.2 step 5).
    pub fn isr_join_needs_epoch_start(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }

    /// The ZooKeeper-era controller bumped the leader epoch whenever it changed the ISR itself,
    /// the leader unchanged; KRaft no longer does (KAFKA-15021, 3.6). §4.10.
    pub fn controller_isr_change_bumps_epoch(self) -> bool {
        !matches!(self, Variant::Kip966)
    }

    /// From Kafka 2.1 a new leader epoch of the same leader makes a follower become follower
    /// again (its truncation rule included); before, only a new leader broker did (§4.1).
    pub fn refollows_on_new_epoch(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }

    /// The controller notices a restart when the broker registers and takes it out of the ISR
    /// (KRaft; ZooKeeper since 2.2, KIP-380). Before, a broker back within its session timeout
    /// kept its ISR place: a fast restart (§4.10).
    pub fn restart_leaves_isr(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }
}

/// Protocol switches shared by every process of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolConfig {
    pub variant: Variant,
    pub unclean_leader_election: bool,
    pub min_insync_replicas: u32,
    /// The partition's replica assignment: every broker of its replica set, in Kafka's
    /// preference order. The first is the initial leader, and an election takes the first
    /// eligible broker in this order (Kafka's rule). Partition 0's is `1..=N`, the model's
    /// lowest id; a partition after it has a rotation, which is the model with its brokers
    /// renamed (docs/protocol.md §7).
    pub brokers: Vec<BrokerId>,
}

impl ProtocolConfig {
    pub fn is_broker(&self, id: BrokerId) -> bool {
        self.brokers.contains(&id)
    }

    /// The same protocol for partition `index` of a topic: the assignment in id order rotated
    /// left by `index`, so partitions spread their initial (and preferred) leaders over the
    /// brokers as Kafka's round-robin assignment does. Index 0 is id order.
    pub fn for_partition(&self, index: u32) -> ProtocolConfig {
        let mut brokers = self.brokers.clone();
        brokers.sort_unstable();
        if !brokers.is_empty() {
            let by = (index as usize) % brokers.len();
            brokers.rotate_left(by);
        }
        ProtocolConfig {
            brokers,
            ..self.clone()
        }
    }

    /// `pool`'s first member in assignment order that `eligible` accepts.
    pub fn first_in_assignment<'a>(
        &self,
        pool: impl IntoIterator<Item = &'a BrokerId>,
        eligible: impl Fn(&BrokerId) -> bool,
    ) -> Option<BrokerId> {
        let pool: BTreeSet<BrokerId> = pool.into_iter().copied().collect();
        let in_order = self.brokers.iter().filter(|b| pool.contains(b));
        in_order.copied().find(|b| eligible(b))
    }
}

/// What the core asks the runtime to do after one input, in order: apply `writes` (and the
/// controller's state, `persist_state`), then send `send`, and move the timers.
///
/// Which messages wait for durability (docs/protocol.md §2 "persist before send"): a step is
/// atomic in the model, which saves its storage and sends its messages together, so the
/// runtime must never let a message out while a durable write of the same step could still be
/// lost. When `must_sync()` (a truncation, a flush, a HW checkpoint, the controller's state),
/// every message in `send` leaves only after all of `writes` are applied and durable; otherwise
/// none of the step's writes is durable anyway (a lazy append) and the messages may leave
/// before, during or after them. The runtime applies writes synchronously before it sends,
/// which meets both cases; `must_sync` says what a runtime that pipelines would have to wait
/// for.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Broker only: writes to the replica's storage, to be applied in this order
    /// (`ReplicaApply`) before the next input.
    pub writes: Vec<Write>,
    /// Messages to send, in the order they must be sent, each on its channel.
    pub send: Vec<Outgoing>,
    /// Timers whose clock starts now: newly armed ones, and armed ones the input restarts
    /// (docs/protocol.md §6 "clock restarts on"). An armed timer in neither list keeps its
    /// deadline.
    pub arm: Vec<Timer>,
    /// Timers no longer armed: their deadlines are dropped.
    pub cancel: Vec<Timer>,
    /// Controller only: `ControllerCore::state()` changed and must be written durably (fsync)
    /// before any message in `send` leaves the process. Always false for a broker, whose
    /// writes are `writes`.
    pub persist_state: bool,
}

/// `Effects::arm`: the timers armed `after` an input but not `before` it, and those armed
/// after it whose clock it restarted.
pub(crate) fn timers_to_arm(
    before: &BTreeSet<Timer>,
    after: &BTreeSet<Timer>,
    restarted: &BTreeSet<Timer>,
) -> Vec<Timer> {
    after
        .iter()
        .filter(|timer| !before.contains(*timer) || restarted.contains(*timer))
        .cloned()
        .collect()
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.send.is_empty()
            && self.arm.is_empty()
            && self.cancel.is_empty()
            && !self.persist_state
    }

    /// Whether the step made something durable, so that `send` may leave only once it is
    /// (raft-rs: `must_sync`, and `persisted_messages`). See the type's doc.
    pub fn must_sync(&self) -> bool {
        self.persist_state || self.writes.iter().any(Write::is_durable)
    }
}
