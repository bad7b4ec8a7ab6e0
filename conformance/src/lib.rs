//! The conformance harness: replays model traces against running insync processes, step by
//! step, and reports divergences and coverage (overview §4, docs/conformance.md).
//!
//! Module map:
//! - `trace`       — ITF trace files: writing, strict reading, re-running the model along them;
//! - `mapping`     — the only model ↔ implementation translation (ids, messages, timers);
//! - `abstraction` — the abstraction function: a node's snapshot → the model's actor state;
//! - `router`      — the harness is the network: one FIFO queue per `(src, dst)` channel;
//! - `cluster`     — the controller and brokers as child processes in stepped mode;
//! - `client`      — the harness plays the model's client actor;
//! - `replay`      — the step driver: initial state, every step, stop at the first mismatch;
//! - `step`        — performing one step on the nodes and waiting (barriers) until it is handled;
//! - `compare`     — pure: the model's state against snapshots, timers, queues and liveness;
//! - `consequence` — what a counterexample leads to on the real cluster (`insync consume`);
//! - `report`      — replaying a set, the summary (text and JSON), divergences, consequences;
//! - `sources`     — cover (BFS transition cover), random walks, counterexamples, witnesses;
//! - `diff`        — field-level differences for divergence reports;
//! - `evidence`    — a counterexample's violated invariant read from the real nodes' state;
//! - `fuzzing`     — the trace-file reader's fuzz entry point;
//! - `history`     — `insync chaos`'s client-side checks: lost, duplicated, skipped, gone;
//! - `chaos`       — `insync chaos`: the seeded fault schedule, the fault proxy, the run;
//! - `validate`    — trace validation: real nodes' trace logs checked against the model.
pub mod abstraction;
pub mod chaos;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod consequence;
pub mod diff;
pub mod evidence;
pub mod fuzzing;
pub mod history;
pub mod mapping;
pub mod replay;
pub mod report;
pub mod router;
pub mod sources;
pub mod step;
pub mod trace;
pub mod validate;
