//! insync's reference implementation of the replication protocol in `docs/protocol.md`.
//!
//! Module map:
//! - `protocol` — the messages, timers, control requests and snapshots, as named in the docs.
//! - `core`     — sans-I/O broker and controller state machines (`step_peer`, `step_client`,
//!   `fire` → `Effects`).
//! - `storage`  — the crash-safe on-disk log, leader-epoch and HW checkpoints, recovery.
//! - `wire`     — length-delimited frames, the bincode codec, the connection handshake.
//! - `node`     — the tokio runtime: listener, peers, event loop, broker and controller processes.
//! - `client`   — the client library: leader discovery, idempotent producer, consumer.
//! - `kafka`    — the Kafka wire protocol on a client listener, for Kafka's own clients.
//! - `fuzzing`  — the fuzz targets' entry points (`fuzz/`, docs/fuzzing.md).
//! - `trace_log` — trace logs of real runs, for validation against the model (docs/validation.md).
pub mod client;
pub mod core;
pub mod fuzzing;
pub mod kafka;
pub mod node;
pub mod protocol;
pub mod storage;
pub mod trace_log;
pub mod wire;
