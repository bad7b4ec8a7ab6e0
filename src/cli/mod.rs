//! Subcommands of the `insync` binary, one module per group.
pub mod bench;
pub mod check;
pub mod client;
pub mod node;
pub mod progress;
pub mod shard;
pub mod show;
pub mod traces;
