//! Subcommands of the `insync` binary, one module per group.
pub mod bench;
pub mod bench_kafka;
pub mod chaos;
pub mod check;
pub mod client;
pub mod node;
pub mod progress;
pub mod shard;
pub mod show;
pub mod traces;
pub mod validate;

/// A usage error: the message on stderr and exit code 2, as every model-side command reports
/// a bad flag or file (`insync check --help` documents the exit codes).
pub(crate) fn usage(message: String) -> i32 {
    eprintln!("insync: {message}");
    2
}
