//! Subcommands of the `insync` binary, one module per group.
pub mod check;
