//! `insync`: the one command-line front door.
//!
//! Module map:
//! - `cli::check`    — `check` and `explore`: run the model checker, serve the Explorer.
//! - `cli::traces`   — `traces` and `conform`: write trace files, replay them on real nodes.
//! - `cli::node`     — `controller`, `broker`, `cluster`: run the reference implementation.
//! - `cli::client`   — `produce`, `consume`: the command-line client.
//! - `cli::bench`    — `bench`: throughput and latency of a local cluster.
//!
//! Exit codes: 0 success, 1 a checked property failed or a run found a divergence, 2 usage.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "insync",
    version,
    about = "Model-check, run and conformance-test Kafka-style ISR replication",
    long_about = "insync checks a Stateright model of Kafka-style in-sync-replica replication \
                  exhaustively, runs a real networked implementation of the same protocol, and \
                  replays model traces against the real processes to show that the two agree."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the model exhaustively and report every property.
    Check(cli::check::CheckArgs),
    /// Serve the Stateright Explorer on the model.
    Explore(cli::check::ExploreArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => cli::check::run_check(args),
        Command::Explore(args) => cli::check::run_explore(args),
    };
    std::process::exit(code);
}
