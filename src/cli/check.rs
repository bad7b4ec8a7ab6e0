//! `insync check` and `insync explore`: argument parsing and printing only; the work is in
//! `insync_model::checker`.
use clap::Args;
use insync_model::checker::{self, CheckOptions, CheckReport, Status, Strategy};
use insync_model::{describe, scenarios, Acks, Config, Fsync, InsyncModel, Variant};
use std::io::Write;
use std::str::FromStr;

use super::usage;

/// Model configuration flags shared by `check` and `explore`.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    // Fields are pub(crate): `insync traces` and `insync conform` build their configuration
    // through this struct's `config()` (src/cli/traces.rs), so there is one flag table.
    /// Protocol variant: kip-966 (current), kip-320, kip-279, kip-101, hw-truncation.
    #[arg(long, default_value = "kip-966")]
    pub(crate) variant: String,
    /// Number of brokers (1-7).
    #[arg(long, default_value_t = 3)]
    pub(crate) brokers: u8,
    /// Records the client produces.
    #[arg(long)]
    pub(crate) records: Option<u8>,
    /// Total broker crashes (each may be followed by a restart).
    #[arg(long)]
    pub(crate) crashes: Option<u8>,
    /// Total controller-side session expiries (real failure or false suspicion).
    #[arg(long)]
    pub(crate) expiries: Option<u8>,
    /// Total ISR-shrink proposals (`Lag` timer firings); expansions need no budget of their
    /// own since each re-adds a broker a shrink, expiry or restart removed.
    #[arg(long = "isr-shrinks")]
    pub(crate) isr_shrinks: Option<u8>,
    /// Total `Consume` requests the client may send.
    #[arg(long)]
    pub(crate) reads: Option<u8>,
    /// Total heartbeats from fenced brokers that were never down (a false suspicion undone
    /// without a restart); 0 by default.
    #[arg(long)]
    pub(crate) rejoins: Option<u8>,
    /// Total firings of the timers that end a wait (FetchRetry, FetchBackoff,
    /// ParkedRelease): each may put a second request or an empty answer in flight.
    #[arg(long)]
    pub(crate) retries: Option<u8>,
    /// A named scenario (kip-101-bug, kip-101-flush-bug, kip-279-bug, kip-320-bug, kip-966-bug,
    /// min-isr-1-loss, acks-1-loss, last-leader-loss): its configuration replaces every other
    /// model flag, and --diagram draws its property.
    #[arg(long)]
    pub(crate) scenario: Option<String>,
    /// States whose leader epoch exceeds this are outside the search.
    #[arg(long = "max-epoch")]
    pub(crate) max_epoch: Option<u8>,
    /// Allow unclean leader election: on or off.
    #[arg(long, default_value = "off")]
    pub(crate) unclean: String,
    /// Producer acks: all or 1.
    #[arg(long, default_value = "all")]
    pub(crate) acks: String,
    /// min.insync.replicas; default 2 with 2 or more brokers (never acknowledge acks=all with
    /// one copy), 1 with a single broker.
    #[arg(long = "min-isr")]
    pub(crate) min_isr: Option<u8>,
    /// When appends become durable: lazy (Kafka's default) or always.
    #[arg(long, default_value = "lazy")]
    pub(crate) fsync: String,
}

impl ModelArgs {
    pub(crate) fn config(&self) -> Result<Config, String> {
        if let Some(name) = &self.scenario {
            return scenarios::find(name).map(|s| s.config).ok_or_else(|| {
                format!(
                    "unknown --scenario '{name}': expected one of {}",
                    scenarios::names().join(", ")
                )
            });
        }
        let mut cfg = Config::new(self.brokers);
        cfg.variant = Variant::from_str(&self.variant)?;
        cfg.records = self.records.unwrap_or(cfg.records);
        cfg.crashes = self.crashes.unwrap_or(cfg.crashes);
        cfg.expiries = self.expiries.unwrap_or(cfg.expiries);
        cfg.isr_shrinks = self.isr_shrinks.unwrap_or(cfg.isr_shrinks);
        cfg.reads = self.reads.unwrap_or(cfg.reads);
        cfg.rejoins = self.rejoins.unwrap_or(cfg.rejoins);
        cfg.retries = self.retries.unwrap_or(cfg.retries);
        cfg.max_epoch = self.max_epoch.unwrap_or(cfg.max_epoch);
        cfg.unclean_leader_election = match self.unclean.as_str() {
            "on" | "true" => true,
            "off" | "false" => false,
            other => return Err(format!("unknown --unclean '{other}': expected on or off")),
        };
        cfg.acks = Acks::from_str(&self.acks)?;
        cfg.min_insync_replicas = self
            .min_isr
            .unwrap_or(Config::default_min_isr(self.brokers));
        cfg.fsync = Fsync::from_str(&self.fsync)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Search strategy: dfs (exhaustive, memory-frugal), bfs (exhaustive, shortest paths),
    /// random (seeded random walks, not exhaustive).
    #[arg(long, default_value = "dfs")]
    strategy: String,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seed for --strategy random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Broker symmetry reduction (DFS): on or off. On, the controller may elect any eligible
    /// replica (every replica-assignment order), which makes brokers interchangeable
    /// (docs/reductions.md); off, it elects the lowest id as the implementation does.
    #[arg(long, default_value = "off")]
    symmetry: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print a diagram of the shortest counterexample (or of --witness): mermaid.
    #[arg(long)]
    diagram: Option<String>,
    /// With --diagram: the property (witness or invariant) whose path to draw.
    #[arg(long)]
    witness: Option<String>,
    /// Explorer address used in printed URLs.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// Check only shard I of N (1 <= I <= N): every shard repeats a small prefix of the search,
    /// then explores its share of the states below it; `--merge` combines the `--json` results
    /// (docs/checking.md).
    #[arg(long, conflicts_with_all = ["merge", "diagram"])]
    shard: Option<String>,
    /// Combine the `--json` results of every shard of one check into one verdict; the
    /// configuration comes from the files, so model flags are ignored.
    #[arg(long, num_args = 1.., value_name = "FILES")]
    merge: Vec<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ExploreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to serve the Explorer on; port 0 picks a free one (the printed URL names it).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// A saved trace (ITF JSON): serve the Explorer on the configuration its `#meta` records
    /// and print the URL of its path; model flags are ignored.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

pub fn run_check(args: CheckArgs) -> i32 {
    if !args.merge.is_empty() {
        return super::shard::run_merge(&args.merge, args.json);
    }
    let cfg = match args.model.config() {
        Ok(cfg) => cfg,
        Err(e) => return usage(e),
    };
    let strategy = match Strategy::from_str(&args.strategy) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let symmetry = match args.symmetry.as_str() {
        "on" => true,
        "off" => false,
        other => return usage(format!("unknown --symmetry '{other}': expected on or off")),
    };
    if let Some(d) = &args.diagram {
        if d != "mermaid" {
            return usage(format!("unknown --diagram '{d}': expected mermaid"));
        }
    }
    let names = insync_model::properties::names();
    if let Some(w) = &args.witness {
        if !names.contains(&w.as_str()) {
            return usage(format!(
                "unknown --witness '{w}': expected one of {}",
                names.join(", ")
            ));
        }
    }
    // Symmetry is sound on the model whose controller may elect any eligible replica
    // (docs/reductions.md, "Broker symmetry"), a superset of the lowest-id one.
    let model = match symmetry {
        true => InsyncModel::new(cfg).reduced().electing_any(),
        false => InsyncModel::new(cfg).reduced(),
    };
    // A scenario names the property to draw.
    let scenario_property = args
        .model
        .scenario
        .as_deref()
        .and_then(scenarios::find)
        .map(|s| s.property.to_string());
    let witness = args.witness.clone().or(scenario_property);
    if let (Some(_), Some(name)) = (&args.diagram, &witness) {
        return match checker::shortest_path(&model, name) {
            Some(path) => {
                print!("{}", describe::mermaid(&model, name, &path));
                // A path to an invariant is a counterexample.
                i32::from(insync_model::properties::is_invariant(name))
            }
            None => {
                eprintln!("insync: no path to {name} within the bounds");
                1
            }
        };
    }
    let options = CheckOptions {
        strategy,
        threads: args.threads.max(1),
        symmetry,
        seed: args.seed,
        ..CheckOptions::default()
    };
    if !args.json && args.diagram.is_none() {
        println!("configuration: {cfg}");
        println!(
            "strategy: {strategy}, threads {}, symmetry {}",
            options.threads,
            if symmetry { "on" } else { "off" }
        );
    }
    let quiet = args.json || args.diagram.is_some();
    let mut progress =
        |states: usize, unique: usize, depth: usize, elapsed: std::time::Duration| {
            if !quiet {
                print_progress(states, unique, depth, elapsed);
            }
        };
    if let Some(spec) = &args.shard {
        return super::shard::run_shard(
            &model,
            &options,
            spec,
            args.json,
            &args.addr,
            &mut progress,
        );
    }
    let report = checker::run(&model, &options, &mut progress);
    if !quiet {
        eprintln!();
    }
    if args.diagram.is_some() {
        let violated = report
            .properties
            .iter()
            .find(|p| p.status == Status::Violated);
        return match violated.and_then(|p| p.path.as_ref().map(|path| (p.name, path))) {
            Some((name, path)) => {
                print!("{}", describe::mermaid(&model, name, path));
                1
            }
            None => {
                eprintln!("insync: no property violated; name one with --witness");
                report.exit_code()
            }
        };
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print_report(&model, &report, &args.addr);
    }
    report.exit_code()
}

/// One progress line on stderr, overwritten by the next.
fn print_progress(states: usize, unique: usize, depth: usize, elapsed: std::time::Duration) {
    eprint!(
        "\r  {:.0}s: {states} states, {unique} unique, depth {depth}, {:.0} states/s   ",
        elapsed.as_secs_f64(),
        states as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let _ = std::io::stderr().flush();
}

pub(crate) fn print_report(model: &InsyncModel, report: &CheckReport, addr: &str) {
    println!(
        "states: {} ({} unique), max depth {}, {:.1} s, {:.0} states/s, {}",
        report.states,
        report.unique_states,
        report.max_depth,
        report.seconds,
        report.states as f64 / report.seconds.max(1e-9),
        if report.complete {
            "complete (fixed point)"
        } else {
            "NOT complete"
        }
    );
    for p in &report.properties {
        let length = if p.steps.is_empty() {
            String::new()
        } else {
            format!(" ({} steps)", p.steps.len())
        };
        println!(
            "  {:<22} {:<9} {}{length}",
            p.name,
            p.expectation,
            p.status.words()
        );
    }
    for p in report
        .properties
        .iter()
        .filter(|p| p.status == Status::Violated)
    {
        println!("\n{} VIOLATED; shortest counterexample:", p.name);
        if let Some(path) = &p.path {
            for line in describe::describe_state(model, &path[0].0) {
                println!("   0. {line}");
            }
        }
        for step in &p.steps {
            println!("  {:>2}. {}", step.number, step.text);
            for effect in &step.effects {
                println!("        {effect}");
            }
        }
        if let Some(path) = &p.path {
            println!(
                "  explore: {} (run `insync explore` with the same flags)",
                describe::explorer_url(model, addr, path)
            );
        }
    }
}

pub fn run_explore(args: ExploreArgs) -> i32 {
    if let Some(file) = &args.trace {
        return super::show::explore_trace(file, &args.addr);
    }
    let cfg = match args.model.config() {
        Ok(cfg) => cfg,
        Err(e) => return usage(e),
    };
    use stateright::Model;
    println!("configuration: {cfg}");
    println!("Explorer on http://{}", args.addr);
    InsyncModel::new(cfg).checker().serve(args.addr.as_str());
    0
}
