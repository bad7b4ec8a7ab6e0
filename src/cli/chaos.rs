//! `insync chaos`: a real-time cluster under a seeded fault schedule, with producers and
//! consumers, judged by three verdicts (docs/chaos.md). The run itself is
//! `insync_conformance::chaos`; this file is its flags, its progress line and its summary.
//!
//! Exit codes: 0 every verdict that ran passed, 1 one failed, 2 usage or the run could not
//! be made.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use insync_conformance::chaos::cluster::ClusterSpec;
use insync_conformance::chaos::schedule::{FaultKind, ScheduleClocks};
use insync_conformance::chaos::{self, ChaosReport, ChaosSpec, ModelVerdict, Plan};
use insync_conformance::history::{Finding, HistoryVerdict};

use super::node::ProtocolArgs;
use super::progress::Ticker;
use super::usage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanArg {
    /// Faults drawn from --seed, one at a time, until --duration is over.
    Seeded,
    /// Cut the leader off from the other brokers until the ISR shrinks, then crash it (with
    /// --unclean and --min-isr 1 this loses acknowledged records).
    LeaderCrash,
}

#[derive(Args)]
pub struct ChaosArgs {
    #[arg(long, default_value_t = 3)]
    pub brokers: u32,
    /// How long faults are injected: `90s`, `5m`, `1h`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the fault schedule: one seed, one schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fault kinds: kill, pause, partition, restart, disk.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,pause,partition,restart,disk"
    )]
    pub faults: Vec<FaultKind>,
    #[arg(long, value_enum, default_value_t = PlanArg::Seeded)]
    pub plan: PlanArg,
    /// Concurrent producers (acks=all, idempotent).
    #[arg(long, default_value_t = 2)]
    pub producers: u32,
    /// Concurrent consumers following the log.
    #[arg(long, default_value_t = 2)]
    pub consumers: u32,
    /// Records per produce request.
    #[arg(long, default_value_t = 10)]
    pub batch: u32,
    /// Each producer sends at most one batch per this many milliseconds.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub batch_interval_ms: u64,
    /// Keep the data directories and node logs here instead of a removed temporary directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// One JSON object at the end instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// `90s`, `5m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 5m or 1h"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

pub fn run_chaos(args: ChaosArgs) -> i32 {
    if args.protocol.stepped {
        return usage("chaos runs in real time: --stepped is for the conformance harness".into());
    }
    if args.brokers == 0 || args.producers == 0 || args.batch == 0 || args.faults.is_empty() {
        return usage("--brokers, --producers, --batch and --faults must not be empty".into());
    }
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(error) => return usage(format!("cannot find the insync binary: {error}")),
    };
    // Removed when dropped, unless --keep names a directory.
    let temporary = match &args.keep {
        Some(_) => None,
        None => match tempfile::Builder::new().prefix("insync-chaos-").tempdir() {
            Ok(dir) => Some(dir),
            Err(error) => return usage(format!("temporary directory: {error}")),
        },
    };
    let dir = match (&args.keep, &temporary) {
        (Some(keep), _) => keep.clone(),
        (None, Some(temporary)) => temporary.path().to_owned(),
        (None, None) => unreachable!("one of the two"),
    };
    let spec = spec(&args, binary, dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ticker = Ticker::start("chaos", args.json);
    // Ctrl-C drops the run: the supervisor kills its nodes, the disks are unmounted.
    let report = runtime.block_on(async {
        tokio::select! {
            report = chaos::run(&spec, ticker.status()) => report,
            _ = tokio::signal::ctrl_c() => Err("interrupted; every node stopped".to_string()),
        }
    });
    drop(ticker);
    drop(runtime);
    drop(temporary);
    match report {
        Ok(report) => {
            print_report(&args, &report);
            if report.passed {
                0
            } else {
                1
            }
        }
        Err(error) => {
            eprintln!("insync chaos: {error}");
            2
        }
    }
}

fn spec(args: &ChaosArgs, binary: PathBuf, dir: PathBuf) -> ChaosSpec {
    let plan = match args.plan {
        PlanArg::Seeded => Plan::Seeded {
            seed: args.seed,
            kinds: args.faults.clone(),
        },
        PlanArg::LeaderCrash => Plan::LeaderCrash,
    };
    let timing = &args.protocol.timing;
    // Every node records a trace log for the Model verdict: where --trace-log says, else in
    // the run's directory (kept with --keep).
    let trace_dir = args
        .protocol
        .trace_log
        .clone()
        .unwrap_or_else(|| dir.join("trace"));
    let mut protocol = args.protocol.clone();
    protocol.trace_log = Some(trace_dir.clone());
    ChaosSpec {
        cluster: ClusterSpec {
            binary,
            dir,
            brokers: args.brokers,
            cluster_id: args.protocol.cluster_id.clone(),
            node_args: protocol.flags(),
            disks: false,
        },
        plan,
        duration: args.duration,
        clocks: ScheduleClocks {
            session_timeout: Duration::from_millis(timing.session_timeout_ms),
            replica_lag_time_max: Duration::from_millis(timing.replica_lag_time_max_ms),
        },
        producers: args.producers,
        consumers: args.consumers,
        batch: args.batch,
        batch_interval: Duration::from_millis(args.batch_interval_ms),
        trace_dir,
    }
}

fn print_report(args: &ChaosArgs, report: &ChaosReport) {
    if args.json {
        let mut value = serde_json::to_value(report).expect("a report serialises");
        value["seed"] = args.seed.into();
        value["brokers"] = args.brokers.into();
        value["variant"] = args.protocol.variant.name().into();
        println!("{value}");
        return;
    }
    let kinds: Vec<String> = report
        .faults
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "insync chaos: seed {}, {} brokers, variant {}, {:.0} s",
        args.seed,
        args.brokers,
        args.protocol.variant.name(),
        report.wall_s
    );
    println!("faults: {} ({})", report.faults_total, kinds.join(", "));
    for skipped in &report.skipped {
        println!("  skipped {skipped}");
    }
    for exit in &report.unexpected_exits {
        println!("  unexpected: {exit}");
    }
    println!(
        "records: {} acknowledged, {} batches given up",
        report.acknowledged, report.failed_batches
    );
    let verdict = |passed: bool| if passed { "PASS" } else { "FAIL" };
    match (&report.history, &report.history_unchecked) {
        (Some(history), _) => print_history(history),
        (None, reason) => println!(
            "History:  NOT CHECKED ({})",
            reason.as_deref().unwrap_or("")
        ),
    }
    let liveness = &report.liveness;
    let seconds = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.1} s"));
    println!(
        "Liveness: {} (within {:.0} s of the last heal: commit {}, all {} brokers in the ISR {})",
        verdict(liveness.passed()),
        liveness.within_s,
        seconds(liveness.commit_s),
        liveness.brokers,
        seconds(liveness.isr_s)
    );
    if let Some(failure) = &liveness.failure {
        println!("  {failure}");
    }
    print_model(&report.model, args.keep.is_some());
}

/// The Model verdict; the re-validate command only when the logs are kept.
fn print_model(model: &ModelVerdict, kept: bool) {
    let again = |command: &str| match kept {
        true => format!("re-validate: {command}"),
        false => "the logs were removed with the run: keep them with --keep DIR".into(),
    };
    match model {
        ModelVerdict::Passed {
            variant,
            events,
            nodes,
            merges_searched,
            seconds,
            notes,
        } => {
            println!(
                "Model:    PASS ({events} events of {} nodes accepted by the {variant} model, \
                 {merges_searched} merge searched, {seconds:.1} s)",
                nodes.len()
            );
            for note in notes {
                println!("  note: {note}");
            }
        }
        ModelVerdict::Failed {
            report, command, ..
        } => {
            println!("Model:    FAIL");
            print_indented(report);
            // The report ends with the re-validate command; without --keep it is gone.
            if !kept {
                println!("  {}", again(command));
            }
        }
        ModelVerdict::Undecided {
            report, command, ..
        } => {
            println!("Model:    FAIL (not decided, so not passed)");
            print_indented(report);
            println!("  {}", again(command));
        }
        ModelVerdict::Unreadable { reason, .. } => {
            println!("Model:    FAIL (the trace logs cannot be read: {reason})")
        }
    }
}

fn print_indented(report: &str) {
    for line in report.lines() {
        println!("  {line}");
    }
}

fn print_history(history: &HistoryVerdict) {
    let verdict = if history.passed() { "PASS" } else { "FAIL" };
    println!(
        "History:  {verdict} ({} in the final read, {} consumed while the faults ran)",
        history.final_records, history.consumed
    );
    let findings: [(&str, &Finding); 6] = [
        ("lost", &history.lost),
        ("duplicated", &history.duplicated),
        ("poll-skip", &history.poll_skip),
        ("nonmonotonic", &history.nonmonotonic),
        ("gone", &history.gone),
        ("reordered", &history.reordered),
    ];
    for (name, finding) in findings {
        println!("  {name:<13} {}", finding.count);
        for example in &finding.examples {
            println!("    {example}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }
}
