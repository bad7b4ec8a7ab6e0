//! The conformance harness: replays model traces against running insync processes, step by
//! step, and reports divergences and coverage (overview §4, docs/conformance.md).
//!
//! Module map:
//! - `router`  — the harness is the network: one queue per `(src, dst)` channel;
//! - `control` — the control channel client (`Inspect`, `FireTimer`, `Barrier`);
//! - `cluster` — the controller and brokers as child processes in stepped mode.
pub mod cluster;
pub mod control;
pub mod router;
