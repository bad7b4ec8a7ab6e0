//! `insync traces` (write model traces as ITF JSON files) and `insync conform` (replay traces
//! on real processes in stepped mode and report divergences and coverage). Parsing and
//! printing only; the work is in `insync_conformance`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use insync_conformance::replay::ReplayOptions;
use insync_conformance::report::{self, Entry, Reachable};
use insync_conformance::sources::{self, CoverLimits};
use insync_conformance::trace::{trace_files, ModelTrace, Source, TraceFile};
use insync_model::{scenarios, Config, InsyncModel, Variant};

use super::check::ModelArgs;
use super::progress::Ticker;
use super::usage;

/// The model configuration: the flags of `insync check` (built by its `ModelArgs::config`, one
/// flag table), with the variant spelled `--model-variant` (`insync conform --variant` names the
/// nodes' variant) and 2 brokers by default.
#[derive(Args, Clone, Debug)]
pub struct TraceModelArgs {
    /// Protocol variant of the model: kip-966 (current), kip-320, kip-279, kip-101,
    /// hw-truncation.
    #[arg(long = "model-variant", default_value = "kip-966")]
    model_variant: String,
    /// A named scenario (kip-101-bug, kip-279-bug, kip-320-bug, kip-966-bug, min-isr-1-loss):
    /// its variant and bounds exactly as `insync check --scenario` runs them; they replace
    /// every other model flag, the nodes run its variant, and its property is the default
    /// --property.
    #[arg(long)]
    scenario: Option<String>,
    /// Number of brokers (1-7).
    #[arg(long, default_value_t = 2)]
    brokers: u8,
    #[arg(long)]
    records: Option<u8>,
    #[arg(long)]
    crashes: Option<u8>,
    #[arg(long)]
    expiries: Option<u8>,
    #[arg(long = "isr-shrinks")]
    isr_shrinks: Option<u8>,
    #[arg(long)]
    reads: Option<u8>,
    #[arg(long)]
    rejoins: Option<u8>,
    #[arg(long)]
    retries: Option<u8>,
    #[arg(long = "max-epoch")]
    max_epoch: Option<u8>,
    /// Unclean leader election: on or off.
    #[arg(long, default_value = "off")]
    unclean: String,
    /// Producer acks: all or 1.
    #[arg(long, default_value = "all")]
    acks: String,
    /// min.insync.replicas; default 2 with 2 or more brokers, 1 with one.
    #[arg(long = "min-isr")]
    min_isr: Option<u8>,
    /// lazy or always.
    #[arg(long, default_value = "lazy")]
    fsync: String,
}

impl TraceModelArgs {
    /// The configuration; `variant` (`insync conform --variant` with `--source`) replaces
    /// `--model-variant` and may not be combined with `--scenario`.
    fn config(&self, variant: Option<Variant>) -> Result<Config, String> {
        if let (Some(name), Some(v)) = (&self.scenario, variant) {
            return Err(format!(
                "--scenario {name} sets the variant; drop --variant {v}"
            ));
        }
        let model_variant = variant.map_or(self.model_variant.clone(), |v| v.name().to_owned());
        let args = ModelArgs {
            variant: model_variant,
            brokers: self.brokers,
            records: self.records,
            crashes: self.crashes,
            expiries: self.expiries,
            isr_shrinks: self.isr_shrinks,
            reads: self.reads,
            rejoins: self.rejoins,
            retries: self.retries,
            scenario: self.scenario.clone(),
            max_epoch: self.max_epoch,
            unclean: self.unclean.clone(),
            acks: self.acks.clone(),
            min_isr: self.min_isr,
            fsync: self.fsync.clone(),
        };
        args.config()
    }

    /// The scenario's property, the default `--property`.
    fn scenario_property(&self) -> Option<&'static str> {
        self.scenario
            .as_deref()
            .and_then(scenarios::find)
            .map(|s| s.property)
    }
}

/// Which traces to generate.
#[derive(Args, Clone, Debug)]
pub struct SourceArgs {
    /// cover (every reachable transition), random (seeded walks), counterexample or witness
    /// (the checker's shortest path for --property).
    #[arg(long)]
    source: Option<String>,
    /// The property for --source counterexample / witness.
    #[arg(long)]
    property: Option<String>,
    /// First seed for --source random.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of random walks.
    #[arg(long, default_value_t = 10)]
    count: u64,
    /// Longest random walk, in steps.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Cover: the most states enumerated; beyond it the cover is by action kind and message
    /// type, and says so.
    #[arg(long, default_value_t = 200_000)]
    states_max: usize,
    /// Cover: the most traces (0: no cap). Paths to one transition of each kind come first,
    /// then the rest deepest first; the default replays in minutes. A complete transition
    /// cover of small bounds: `--traces-max 0 --crashes 0 --expiries 0 --reads 0`.
    #[arg(long, default_value_t = 300)]
    traces_max: usize,
    #[command(flatten)]
    model: TraceModelArgs,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    insync traces --source cover --expiries 1 --crashes 0 --isr-shrinks 0 --reads 0 --out traces/\n  \
    insync traces --source counterexample --model-variant hw-truncation --property no_acked_record_lost --out cex/\n  \
    insync traces --scenario kip-320-bug --source counterexample --out tests/traces/")]
pub struct TracesArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Directory to write one JSON file per trace into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    insync conform --source cover --expiries 1 --crashes 0 --isr-shrinks 0 --reads 0\n  \
    insync conform --traces traces/\n  \
    insync conform --variant hw-truncation --source counterexample --property no_acked_record_lost\n  \
    insync conform --scenario kip-101-bug --source counterexample --property no_acked_record_lost\n\n\
    With --source, --variant is the variant of both the model and the nodes; with --traces it \
    is the nodes' only (replaying the default variant's traces on hw-truncation nodes must \
    diverge: the harness is sensitive).")]
pub struct ConformArgs {
    /// A trace file or a directory of them (from `insync traces`).
    #[arg(long, conflicts_with = "source")]
    traces: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// The variant the nodes run (and, with --source, the model). With --scenario, the
    /// scenario's variant, for both.
    #[arg(long)]
    variant: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// With --source: also write the traces into this directory (by default none is
    /// written: they are replayed from memory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep node data directories and logs of the last trace here.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Bound on each step's waits, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    step_timeout_ms: u64,
    /// Stop after this many traces.
    #[arg(long)]
    limit: Option<usize>,
}

/// Generates the traces `args` names, with the reachable graph's size for a cover.
fn generate(
    args: &SourceArgs,
    variant: Option<Variant>,
    ticker: &Ticker,
) -> Result<(Vec<ModelTrace>, Option<Reachable>), String> {
    // A scenario is about its counterexample.
    let default_source = if args.model.scenario.is_some() {
        "counterexample"
    } else {
        "cover"
    };
    let source = Source::from_str(args.source.as_deref().unwrap_or(default_source))?;
    let cfg = args.model.config(variant)?;
    let model = InsyncModel::new(cfg);
    match source {
        Source::Cover => {
            let limits = CoverLimits {
                states_max: args.states_max,
                traces_max: match args.traces_max {
                    0 => usize::MAX,
                    n => n,
                },
            };
            let mut progress = |states: usize, transitions: usize| {
                ticker.set(format!(
                    "enumerating the cover: {states} states, {transitions} transitions"
                ));
            };
            let set = sources::cover_within(&model, limits, &mut progress);
            if set.truncated {
                eprintln!(
                    "insync: the cover is capped at {} traces (--traces-max); every action \
                     kind first, then the deepest transitions",
                    limits.traces_max
                );
            }
            let reachable = Reachable {
                states: set.reachable_states,
                transitions: set.reachable_transitions,
                complete: set.complete,
            };
            Ok((set.traces, Some(reachable)))
        }
        Source::Random => Ok((
            sources::random(&model, args.seed, args.count, args.steps),
            None,
        )),
        Source::Counterexample | Source::Witness => {
            let property = args
                .property
                .as_deref()
                .or(args.model.scenario_property())
                .ok_or("--source counterexample and witness need --property (or --scenario)")?;
            match sources::discovery(&model, property)? {
                Some(trace) => Ok((vec![trace], None)),
                None => Err(format!("the model finds no path to {property} in {cfg}")),
            }
        }
    }
}

/// The file name a trace is written under.
fn trace_name(trace: &ModelTrace, number: usize, width: usize) -> String {
    match (&trace.meta.property, trace.meta.seed) {
        (Some(p), _) => format!(
            "{}-{}-{p}.json",
            trace.meta.source.name(),
            trace.meta.config.variant
        ),
        (None, Some(seed)) => format!("random-{}-seed-{seed}.json", trace.meta.config.variant),
        (None, None) => format!(
            "{}-{}-{number:0width$}.json",
            trace.meta.source.name(),
            trace.meta.config.variant
        ),
    }
}

/// The traces as entries, written into `dir` when one is given; otherwise each entry names
/// the file it would have (the divergence report then says to add `--out`).
fn entries(traces: Vec<ModelTrace>, dir: Option<&Path>) -> Result<Vec<Entry>, String> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let width = traces.len().to_string().len();
    traces
        .into_iter()
        .enumerate()
        .map(|(i, trace)| {
            let name = trace_name(&trace, i + 1, width);
            let Some(dir) = dir else {
                return Ok(Entry {
                    file: PathBuf::from(name),
                    trace,
                });
            };
            let file = dir.join(name);
            trace
                .write(&file)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(Entry { file, trace })
        })
        .collect()
}

pub fn run_traces(args: TracesArgs) -> i32 {
    let ticker = Ticker::start("traces", false);
    let generated = generate(&args.source, None, &ticker);
    drop(ticker);
    let (traces, reachable) = match generated {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let kinds = sources::kinds_of(&traces);
    let steps: usize = traces.iter().map(ModelTrace::steps).sum();
    let entries = match entries(traces, Some(&args.out)) {
        Ok(e) => e,
        Err(e) => return usage(e),
    };
    println!(
        "wrote {} traces ({steps} steps) to {}",
        entries.len(),
        args.out.display()
    );
    if let Some(r) = reachable {
        println!(
            "reachable within the bounds: {} states, {} transitions{}",
            r.states,
            r.transitions,
            if r.complete {
                "; the traces take every transition"
            } else {
                "; graph larger than --states-max: the traces cover every action kind and message type instead"
            }
        );
    }
    println!(
        "action kinds and message types in the traces ({}): {kinds:?}",
        kinds.len()
    );
    0
}

fn load(path: &Path) -> Result<Vec<Entry>, String> {
    let files = if path.is_dir() {
        trace_files(path).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        vec![path.to_owned()]
    };
    files
        .into_iter()
        .map(|file| {
            let parsed = TraceFile::read(&file).map_err(|e| e.to_string())?;
            let model = InsyncModel::new(parsed.meta.config);
            let trace = parsed.to_path(&model).map_err(|e| e.to_string())?;
            Ok(Entry { file, trace })
        })
        .collect()
}

pub fn run_conform(args: ConformArgs) -> i32 {
    let variant = match args.variant.as_deref().map(Variant::from_str).transpose() {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let ticker = Ticker::start("conform", args.json);
    let (entries, reachable, consequence) = match &args.traces {
        Some(path) => match load(path) {
            Ok(entries) => {
                let consequence = entries
                    .iter()
                    .any(|e| e.trace.meta.source == Source::Counterexample);
                (entries, None, consequence)
            }
            Err(e) => return usage(e),
        },
        None => {
            let (traces, reachable) = match generate(&args.source, variant, &ticker) {
                Ok(t) => t,
                Err(e) => return usage(e),
            };
            let consequence = traces
                .iter()
                .any(|t| t.meta.source == Source::Counterexample);
            match entries(traces, args.out.as_deref()) {
                Ok(entries) => (entries, reachable, consequence),
                Err(e) => return usage(e),
            }
        }
    };
    let limit = args.limit.unwrap_or(usize::MAX);
    let entries: Vec<Entry> = entries.into_iter().take(limit).collect();
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => return usage(format!("cannot locate the insync binary: {e}")),
    };
    let mut options = ReplayOptions::new(binary);
    options.impl_variant = if args.traces.is_some() { variant } else { None };
    options.step_timeout = Duration::from_millis(args.step_timeout_ms);
    options.keep_dir = args.keep.clone();
    options.consequence = consequence;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(format!("cannot start the runtime: {e}")),
    };
    let total = entries.len();
    ticker.set(format!("replaying {total} traces"));
    let summary = runtime.block_on(report::replay_all(
        &entries,
        &options,
        reachable,
        |done, s| {
            ticker.set(format!(
                "{done}/{total} traces, {} steps, {} divergences",
                s.steps,
                s.divergences.len()
            ));
        },
    ));
    drop(ticker);
    if args.json {
        println!("{}", report::json(&summary));
    } else {
        print!("{}", report::text(&summary));
    }
    if summary.divergences.is_empty() {
        0
    } else {
        1
    }
}
