//! `insync-model`: a Stateright model of Kafka-style in-sync-replica replication of one
//! partition, its leader elections and view changes, checked exhaustively.
//!
//! Module map:
//! - [`config`]     — `Config` (variant, switches, bounds), `Variant`, `Acks`, `Fsync`.
//! - [`types`]      — broker ids and sets, `Record`, `View`, epoch-cache lookups.
//! - [`msg`]        — the protocol's messages by channel, and timers (docs/protocol.md §3).
//! - [`controller`] — the membership service: views, expiry, registration, elections.
//! - [`broker`]     — leader and follower: fetch, divergence, HW, ISR changes, produce.
//! - [`client`]     — producer and consumer, one request in flight.
//! - [`actor`]      — the `Actor` enum and `State` enum that Stateright runs.
//! - [`model`]      — `InsyncModel`: the `ActorModel` plus fault budgets and TCP resets.
//! - [`ghost`]      — the history of commits and acknowledgements the properties judge.
//! - [`properties`] — invariants and witnesses, named as in overview §2.
//! - [`liveness`]   — bounded progress under a fair schedule once faults stop.
//! - [`reduction`]  — the checker's reductions that lose nothing a property sees.
//! - [`any_leader`] — the checker's controller may elect any eligible replica.
//! - [`symmetry`]   — broker symmetry reduction (a correct representative).
//! - [`checker`]    — running a check, progress, results, shortest paths.
//! - [`shortest`]   — the breadth-first shortest-path search that keeps no state.
//! - [`describe`]   — paths as readable steps, serialisable actions, Mermaid diagrams.
//! - [`walk`]       — seeded random walks.
//! - [`scenarios`]  — named configurations that rediscover each historical bug.
//! - [`shard`]      — a check split into shards that share nothing, and their merge.
//!
//! For the conformance harness: build a model with [`InsyncModel::new`]; each actor state
//! ([`actor::State`]) is `serde::Serialize` with the field names of docs/protocol.md §2;
//! [`describe::StepAction`] is a serialisable action; [`walk::random_walk`] is seeded;
//! [`msg::MESSAGE_TYPES`] and [`describe::ACTION_KINDS`] list what coverage is measured over.

pub mod actor;
pub mod any_leader;
pub mod broker;
pub mod checker;
pub mod client;
pub mod config;
pub mod controller;
pub mod describe;
pub mod ghost;
pub mod liveness;
pub mod model;
pub mod msg;
pub mod properties;
pub mod reduction;
pub mod scenarios;
pub mod shard;
pub mod shortest;
pub mod symmetry;
pub mod types;
pub mod walk;

/// This model's version (the crate's), which trace files record so that a trace written by
/// another model version is refused.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use config::{Acks, Config, Fsync, Variant};
pub use model::InsyncModel;
