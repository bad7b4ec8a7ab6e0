//! `insync`: the one command-line front door.
//!
//! Module map:
//! - `cli::check`    — `check` and `explore`: run the model checker, serve the Explorer.
//! - `cli::shard`    — `check --shard` and `check --merge`: a check split over machines.
//! - `cli::show`     — `show` and `explore --trace`: a saved trace, opened from the file alone.
//! - `cli::traces`   — `traces` and `conform`: write trace files, replay them on real nodes.
//! - `cli::node`     — `controller`, `broker`, `cluster`: run the reference implementation.
//! - `cli::client`   — `produce`, `consume`: the command-line client.
//! - `cli::bench`    — `bench`: throughput and latency of a local cluster.
//! - `cli::chaos`    — `chaos`: a cluster under seeded faults, judged by a history checker.
//! - `cli::validate` — `validate`: a real run's trace logs checked against the model.
//!
//! Exit codes: 0 success, 1 a checked property failed or a run found a divergence, 2 usage.

mod cli;

use clap::{Parser, Subcommand};

/// A broker decodes Kafka requests, whose decoder reserves memory by counts a peer states:
/// the lazy allocator keeps an absurd count from aborting the process (kafka::lazy_alloc).
#[global_allocator]
static ALLOCATOR: insync_impl::kafka::lazy_alloc::LazyLargeAllocator =
    insync_impl::kafka::lazy_alloc::LazyLargeAllocator;

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
    /// Serve the Stateright Explorer on the model (or on a saved trace's, with --trace).
    Explore(cli::check::ExploreArgs),
    /// Print a saved trace as numbered steps in the protocol's words (or as a diagram).
    Show(cli::show::ShowArgs),
    /// Run the controller: partition state, broker sessions, elections.
    Controller(cli::node::ControllerArgs),
    /// Run a broker: replica of the partition, leader or follower.
    Broker(cli::node::BrokerArgs),
    /// Run a whole local cluster (controller + brokers) as child processes.
    Cluster(cli::node::ClusterArgs),
    /// Produce records (idempotent producer; acks 0, 1 or all).
    Produce(cli::client::ProduceArgs),
    /// Consume committed records, optionally following new ones.
    Consume(cli::client::ConsumeArgs),
    /// Print a node's observable state (the control channel's Inspect).
    Inspect(cli::client::InspectArgs),
    /// Measure produce throughput and latency on a local cluster.
    Bench(cli::bench::BenchArgs),
    /// Run a real-time cluster under seeded faults and check what its clients saw.
    Chaos(cli::chaos::ChaosArgs),
    /// Write model traces (ITF JSON): a transition cover, random walks, counterexamples.
    Traces(cli::traces::TracesArgs),
    /// Replay model traces on real processes, step by step, and report divergences.
    Conform(cli::traces::ConformArgs),
    /// Check a real run's trace logs (--trace-log) against the model, event by event.
    Validate(cli::validate::ValidateArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => cli::check::run_check(args),
        Command::Explore(args) => cli::check::run_explore(args),
        Command::Show(args) => cli::show::run_show(args),
        Command::Controller(args) => {
            cli::node::with_logs("info", || cli::node::run_controller_command(args))
        }
        Command::Broker(args) => {
            cli::node::with_logs("info", || cli::node::run_broker_command(args))
        }
        Command::Cluster(args) => cli::node::with_logs("info", || cli::node::run_cluster(args)),
        Command::Produce(args) => cli::node::with_logs("warn", || cli::client::run_produce(args)),
        Command::Consume(args) => cli::node::with_logs("warn", || cli::client::run_consume(args)),
        Command::Inspect(args) => cli::node::with_logs("warn", || cli::client::run_inspect(args)),
        Command::Bench(args) => cli::node::with_logs("warn", || cli::bench::run_bench(args)),
        Command::Chaos(args) => cli::node::with_logs("warn", || cli::chaos::run_chaos(args)),
        Command::Traces(args) => cli::traces::run_traces(args),
        Command::Conform(args) => cli::traces::run_conform(args),
        Command::Validate(args) => cli::validate::run_validate(args),
    };
    std::process::exit(code);
}
